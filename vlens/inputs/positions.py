"""Position selectors: which positions of a layout are queries or keys of an `ko.Edges` knockout.

A selector is a function of the layout returning `bool [pos]`, with a name (it is part of the
knockout's label, and two specs with the same label are the same spec). Strings are selectors:

| string          | positions                                                              |
|-----------------|------------------------------------------------------------------------|
| a segment name  | `video`, `separator`, `image`, `marker`, `system`, `text`, `pad`       |
| `vision`        | `video` or `separator` (what LV-K cuts the text from)                  |
| `after_vision`  | non-vision, non-image, non-pad positions after the last vision position (LV-K's queries) |
| `all`           | every position                                                         |
| a role name     | `template`, `question`, `option`, `answer_prompt`, `last`, `generated` (`layout.role`) |

The string `system` is the *segment* (every text token before the first vision position); the
system prompt's role is `ko.role("system")`. Selectors combine with `|`
(either), `&` (both) and `~` (not).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from jaxtyping import Bool
from torch import Tensor

from vlens.inputs.layout import (
    ROLES,
    SEGMENTS,
    VISION_SEGMENTS,
    LayoutError,
    VideoLayout,
)


class Positions:
    """A named set of positions, as a function of the layout.

    Args:
        fn: `fn(layout) -> bool [pos]`.
        name: how the set reads in labels (`question`, `video`, `option B`, ...).
    """

    def __init__(self, fn: Callable[[VideoLayout], Tensor], name: str):
        self.fn, self.name = fn, name

    def __call__(self, layout: VideoLayout) -> Bool[Tensor, " pos"]:
        out = torch.as_tensor(self.fn(layout))
        if out.shape != (len(layout),) or out.dtype != torch.bool:
            raise LayoutError(
                f"position selector {self.name!r} must give a bool tensor of shape ({len(layout)},), "
                f"got {out.dtype} {tuple(out.shape)}"
            )
        return out

    def __or__(self, other: object) -> Positions:
        o = as_positions(other)
        return Positions(lambda l: self(l) | o(l), f"{self.name}+{o.name}")

    def __and__(self, other: object) -> Positions:
        o = as_positions(other)
        return Positions(lambda l: self(l) & o(l), f"({self.name}&{o.name})")

    def __invert__(self) -> Positions:
        return Positions(lambda l: ~self(l), f"~{self.name}")

    def __repr__(self) -> str:
        return self.name


def segment(*names: str) -> Positions:
    """Positions whose segment is one of `names` (see vlens.inputs.layout).

    Raises:
        LayoutError: an unknown segment name.
    """
    unknown = set(names) - set(SEGMENTS)
    if unknown or not names:
        raise LayoutError(f"unknown segment names {sorted(unknown)}; segments are {SEGMENTS}")
    return Positions(lambda l: l.mask(*names), "+".join(names))


def role(*names: str) -> Positions:
    """Positions whose text role is one of `names` (`layout.role`; `system` is the system prompt).

    Raises:
        LayoutError: an unknown role name.
    """
    unknown = set(names) - set(ROLES)
    if unknown or not names:
        raise LayoutError(f"unknown role names {sorted(unknown)}; roles are {ROLES}")
    return Positions(lambda l: l.role_mask(*names), "+".join(names))


def option(letter: str | None = None, *, correct: bool | None = None) -> Positions:
    """Option positions: all of them, one letter's (`option("B")`), or the correct option's
    (`option(correct=True)`) / the others' (`correct=False`).

    Raises:
        LayoutError: (when resolved) `correct` is asked but the layout does not know the answer.
    """
    if letter is not None and correct is not None:
        raise LayoutError("option(): give a letter or correct=, not both")

    def fn(l: VideoLayout) -> Tensor:
        is_opt = l.role_mask("option")
        assert l.option_letter is not None  # filled by VideoLayout.__post_init__
        if letter is not None:
            return is_opt & torch.tensor([x == letter for x in l.option_letter], dtype=torch.bool)
        if correct is not None:
            if l.correct is None:
                raise LayoutError(
                    "this layout does not know the correct option; build it with "
                    "vlens.inputs.roles.with_roles(..., answer=...) to use option(correct=...)"
                )
            same = torch.tensor([x == l.correct for x in l.option_letter], dtype=torch.bool)
            return is_opt & (same if correct else ~same)
        return is_opt

    name = (
        "option"
        if letter is None and correct is None
        else (f"option {letter}" if letter is not None else ("true option" if correct else "false options"))
    )
    return Positions(fn, name)


def at(fn: Callable[[VideoLayout], Tensor], name: str) -> Positions:
    """Any positions: `fn(layout) -> bool [pos]`, labelled `name`."""
    return Positions(fn, name)


def _after_vision(l: VideoLayout) -> Tensor:
    n = len(l)
    if l.last_vision < 0:
        return torch.zeros(n, dtype=torch.bool)
    return ~l.is_vision & ~l.mask("pad", "image") & (torch.arange(n) > l.last_vision)


_SPECIAL = {
    "vision": lambda: Positions(lambda l: l.mask(*VISION_SEGMENTS), "vision"),
    "after_vision": lambda: Positions(_after_vision, "after_vision"),
    "all": lambda: Positions(lambda l: torch.ones(len(l), dtype=torch.bool), "all"),
}


def as_positions(sel: object) -> Positions:
    """A selector from what users pass: a `Positions`, a segment/role/special name, or a tuple
    of them (their union).

    Raises:
        LayoutError: an unknown name (the message lists the known ones).
        TypeError: anything else.
    """
    if isinstance(sel, Positions):
        return sel
    if isinstance(sel, (tuple, list)) and sel:
        out = as_positions(sel[0])
        for s in sel[1:]:
            out = out | s
        return out
    if isinstance(sel, str):
        if sel in _SPECIAL:
            return _SPECIAL[sel]()
        if sel in SEGMENTS:
            return segment(sel)
        if sel in ROLES:
            return role(sel)
        raise LayoutError(
            f"unknown position selector {sel!r}; use a segment {SEGMENTS}, a role {ROLES}, "
            f"one of {tuple(_SPECIAL)}, or ko.at(fn, name)"
        )
    raise TypeError(f"a position selector is a name, a tuple of names or ko.at(fn, name); got {sel!r}")
