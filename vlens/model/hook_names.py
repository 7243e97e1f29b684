"""Hook names given as strings are checked against the model's hook points before anything runs:
TransformerLens raises a bare `KeyError` for a misspelt name in `run_with_hooks`, and caches
nothing for one in a `names_filter` list, silently."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from vlens.arguments import ArgumentError


def check_hook_names(names: Iterable[object], hook_dict: Mapping[str, object], where: str) -> None:
    """Every string in `names` that is not a vision-tower name (`vision.…`, checked by
    vlens.model.vision_hooks) is a hook point of the model.

    Args:
        names: hook names or filter functions (functions are not checked).
        hook_dict: the model's hook points by name.
        where: the argument the names came from (named in the error).

    Raises:
        ArgumentError: the first unknown name, with the closest names that exist."""
    for name in names:
        if not isinstance(name, str) or name.startswith("vision.") or name in hook_dict:
            continue
        close = difflib.get_close_matches(name, list(hook_dict), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(map(repr, close))}?" if close else "see model.hook_dict for the names"
        raise ArgumentError(f"{where}: {name!r} is not a hook point of this model; {hint}")
