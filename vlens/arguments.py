"""One vocabulary for checking the arguments of public entry points.

Every check raises `ArgumentError` (a `ValueError`) whose message names the argument, says what
was given, what is allowed and how to fix it, before any forward runs.

Negative indices are refused everywhere in vlens (as the knockouts' layer selections already do):
an option, layer or position index must lie in `0..size-1`. Python's wrap-around would make a
typo such as `answer=-1` silently mean "the last option", and the answer would have to be
resolved the same way by every metric, store record and report that reads it.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import SupportsIndex, cast

from torch import Tensor


class ArgumentError(ValueError):
    """A public entry point was given an argument it cannot use; the message names it."""


def as_index(value: object, name: str, size: int | None = None, what: str = "index") -> int:
    """`value` as a non-negative integer index below `size` (when given).

    Python and numpy integers and 0-d integer tensors are accepted; bools, floats (even 3.0) and
    strings are refused rather than truncated, and so are negative values (see the module docstring).

    Raises:
        ArgumentError: naming `name`, the value given and the allowed range."""
    if isinstance(value, bool):
        raise ArgumentError(f"{name} must be an integer {what}, got the bool {value!r}")
    if isinstance(value, Tensor) and value.ndim == 0 and not value.is_floating_point() and value.dtype.is_signed:
        value = int(value.item())
    try:
        index = operator.index(cast(SupportsIndex, value))
    except TypeError:
        raise ArgumentError(
            f"{name} must be an integer {what}, got {value!r} ({type(value).__name__}); pass an int "
            "(vlens does not round or truncate indices)"
        ) from None
    allowed = f"0..{size - 1}" if size is not None and size > 0 else "a non-negative int"
    if index < 0:
        raise ArgumentError(
            f"{name}={index} is negative; vlens refuses negative indices (no wrap-around): pass one of {allowed}"
        )
    if size is not None and index >= size:
        raise ArgumentError(f"{name}={index} is out of range: there are {size} ({allowed})")
    return index


def as_positive_int(value: object, name: str) -> int:
    """`value` as an integer >= 1 (a batch size, a count).

    Raises:
        ArgumentError: naming `name` and the value given."""
    n = as_index(value, name, what="count")
    if n < 1:
        raise ArgumentError(f"{name} must be at least 1, got {n}")
    return n


def as_token_ids(value: object, name: str, vocab_size: int | None = None, min_len: int = 2) -> list[int]:
    """`value` as a list of at least `min_len` token ids (each below `vocab_size` when given).

    Raises:
        ArgumentError: not a sequence of ints, too short, or an id out of the vocabulary."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, Tensor)):
        raise ArgumentError(
            f"{name} must be a sequence of token ids (one per option letter), got {type(value).__name__}"
        )
    ids = [as_index(v, f"{name}[{i}]", vocab_size, what="token id") for i, v in enumerate(value)]
    if len(ids) < min_len:
        raise ArgumentError(f"{name} must hold at least {min_len} token ids (one per option letter), got {len(ids)}")
    return ids


def as_layers(value: object, name: str, n_layers: int) -> list[int]:
    """`value` (an iterable of layer indices, or None for all) as a list of layers of a model of
    `n_layers` layers.

    Raises:
        ArgumentError: not an iterable of ints, empty, or a layer out of range."""
    if value is None:
        return list(range(n_layers))
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ArgumentError(f"{name} must be a list of layer indices (or None for all), got {value!r}")
    layers = [as_index(v, f"{name}[{i}]", n_layers, what="layer index") for i, v in enumerate(value)]  # type: ignore[arg-type]
    if not layers:
        raise ArgumentError(f"{name}=[] selects no layer; give at least one layer index or None for all")
    return layers
