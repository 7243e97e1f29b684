"""Layer selections: in which layers an intervention runs (`ko.all_layers()`, `ko.from_layer(i)`,
`ko.window(x, k, align=…)`, `ko.layers([...])`).

A selection is data (a kind and its arguments) resolved against the model's depth only when the
hooks run, so one selection serves models of any depth; `str()` names the layer range for
reports. Layer indices must be integers: vlens never rounds or truncates them.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, SupportsIndex, cast

import torch
from torch import Tensor

from vlens.components.per_call import KnockoutError


@dataclass(frozen=True)
class LayerSelection:
    """Layers are resolved against the model's depth when the hooks run (`resolve`)."""

    kind: str
    args: tuple = ()

    def resolve(self, n_layers: int) -> tuple[int, ...]:
        """The selected layer indices for a model of `n_layers` layers, sorted.

        Raises:
            KnockoutError: a selected layer does not exist (the message names the model's range)."""
        if self.kind == "all":
            return tuple(range(n_layers))
        if self.kind == "from":
            (i,) = self.args
            if not 0 <= i < n_layers:
                raise KnockoutError(
                    f"from_layer({i}) is out of range: the model has {n_layers} layers (0..{n_layers - 1})"
                )
            return tuple(range(i, n_layers))
        if self.kind == "window":
            lo, hi = _window_range(self.args)
            if lo < 0 or hi >= n_layers:
                raise KnockoutError(
                    f"{_window_call(self.args)} covers layers {lo}..{hi}, which must all exist: "
                    f"the model has {n_layers} layers (0..{n_layers - 1})"
                )
            return tuple(range(lo, hi + 1))
        (ls,) = self.args
        bad = [l for l in ls if not 0 <= l < n_layers]
        if bad:
            raise KnockoutError(f"layers {bad} are out of range: the model has {n_layers} layers (0..{n_layers - 1})")
        return tuple(sorted(set(ls)))

    def __contains__(self, layer: int) -> bool:
        if self.kind == "all":
            return True
        if self.kind == "from":
            return layer >= self.args[0]
        if self.kind == "window":
            lo, hi = _window_range(self.args)
            return lo <= layer <= hi
        return layer in self.args[0]

    def __str__(self) -> str:
        if self.kind == "all":
            return "all layers"
        if self.kind == "from":
            return f"layers {self.args[0]}–end"
        if self.kind == "window":
            lo, hi = _window_range(self.args)
            return f"layers {lo}–{hi}"
        ls = self.args[0]
        if len(ls) > 1 and list(ls) == list(range(ls[0], ls[-1] + 1)):
            return f"layers {ls[0]}–{ls[-1]}"
        return f"layer{'s' if len(ls) != 1 else ''} {', '.join(map(str, ls))}"


def _layer_index(value: object, what: str) -> int:
    """`value` as a layer index: Python and numpy integers (and 0-d integer tensors) are accepted;
    floats (even 3.0), bools and strings are refused rather than truncated (1.9 is not layer 1)."""
    if isinstance(value, bool) or (isinstance(value, Tensor) and value.dtype == torch.bool):
        raise KnockoutError(f"{what} must be an integer layer index, got the bool {value!r}")
    if isinstance(value, Tensor) and value.ndim == 0 and not value.is_floating_point():
        return int(value.item())
    try:
        # int, numpy integers; not float, str, ...: anything else raises TypeError, caught below
        return operator.index(cast(SupportsIndex, value))
    except TypeError:
        raise KnockoutError(
            f"{what} must be an integer layer index, got {value!r} ({type(value).__name__}); "
            "pass an int (vlens does not round or truncate layer indices)"
        ) from None


def all_layers() -> LayerSelection:
    """Every layer of the model."""
    return LayerSelection("all")


def from_layer(i: int) -> LayerSelection:
    """Layers i..L−1 (L: the model's depth, known when the hooks run).

    Raises:
        KnockoutError: `i` is not an integer (e.g. 1.9 or "3").
    """
    return LayerSelection("from", (_layer_index(i, "from_layer(i)"),))


def _window_range(args: tuple) -> tuple[int, int]:
    """First and last layer of a window: `end` is x−k+1 .. x; `center` is x−k//2 .. x+k//2 for
    odd k and x−k//2 .. x+k//2−1 for even k (k layers, one more before x than after)."""
    x, k = args[0], args[1]
    if len(args) > 2 and args[2] == "center":
        return x - k // 2, x - k // 2 + k - 1
    return x - k + 1, x


def _window_call(args: tuple) -> str:
    return f"window({args[0]}, k={args[1]}" + (", align='center')" if len(args) > 2 else ")")


def window(x: int, k: int = 4, align: Literal["end", "center"] = "end") -> LayerSelection:
    """k consecutive layers around layer x.

    `align="end"` (the default, the seed study's): x−k+1 .. x, the window ending at x.
    `align="center"` (map-the-flow's): x−k//2 .. x+k//2 for odd k (window(x, 9, "center") is
    x−4 .. x+4); for even k the window has one more layer before x than after:
    x−k//2 .. x+k//2−1 (window(x, 4, "center") is x−2 .. x+1). Layers are checked against the
    model's depth when the hooks run; `str()` names the layer range.

    Raises:
        KnockoutError: `x` or `k` is not an integer, k < 1, or an unknown `align`.
    """
    x, k = _layer_index(x, "window(x, k): x"), _layer_index(k, "window(x, k): k")
    if k < 1:
        raise KnockoutError(f"window(x, k) needs k >= 1 layers, got k={k}")
    if align not in ("end", "center"):
        raise KnockoutError(f"window(x, k, align={align!r}): align must be 'end' or 'center'")
    # `end` keeps the two-element args it always had (stored sweep configs compare equal)
    return LayerSelection("window", (x, k) if align == "end" else (x, k, "center"))


def layers(ls: Iterable[int] | int) -> LayerSelection:
    """Exactly the listed layers (one integer is a list of one).

    Raises:
        KnockoutError: no layer given, or an entry is not an integer.
    """
    if isinstance(ls, (str, bytes)):
        raise KnockoutError(f"layers(...) takes integer layer indices, got the string {ls!r}")
    if isinstance(ls, Tensor):
        given: object = ls.reshape(-1).tolist() if ls.ndim else [ls]
    else:
        given = ls
    try:
        items = list(given)  # type: ignore[arg-type]  # whatever iterates; a lone index raises TypeError
    except TypeError:
        items = [given]  # a single index (int, numpy integer)
    out = tuple(sorted({_layer_index(l, "layers([...]): each entry") for l in items}))
    if not out:
        raise KnockoutError("layers([]) selects no layer; give at least one layer index")
    return LayerSelection("list", (out,))


def as_selection(sel: LayerSelection | int | Iterable[int] | None) -> LayerSelection:
    """A layer selection from what users pass as `layers=`: None (all layers), a
    `LayerSelection`, one integer or a list of integers."""
    if sel is None:
        return all_layers()
    if isinstance(sel, LayerSelection):
        return sel
    return layers(sel)


__all__ = ["LayerSelection", "all_layers", "as_selection", "from_layer", "layers", "window"]
