"""Attention scaling: multiply the weights of a spec's edges by α instead of removing them.

`spec.hooks(inputs, layers=..., heads=..., alpha=0.5, renormalise=True)` keeps the edges a
knockout would remove and changes their weight w_qk (docs/knockouts.md, "Scaling heads (α)"):

| renormalise | weights                                   | equals                        | paths |
|-------------|-------------------------------------------|-------------------------------|-------|
| True        | α·w_qk on the edges, then rows sum to 1   | softmax(s + log α · [edge])   | every path (an additive mask) |
| False       | α·w_qk on the edges, the others unchanged | softmax(s) · (α on the edges) | explicit only (the pattern)   |

With renormalise=True, α = 0 is the knockout exactly (log 0 = −∞: the same bool mask), α = 1 is
clean and α > 1 strengthens the edges. With renormalise=False, α = 0 zeroes the edges' weights
and leaves the rest as it was (rows sum to less than 1: not the knockout, which renormalises);
α > 1 lets rows sum to more than 1. α must be a finite number ≥ 0 either way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from vlens.components.per_call import KnockoutError
from vlens.inputs.layout import VideoLayout
from vlens.interventions.knockout import HookSite, KnockoutHook, Spec
from vlens.interventions.layer_selection import LayerSelection


def check_alpha(alpha: object, renormalise: object, on: str) -> float:
    """α as a float, refused where no path can honour it.

    Args:
        alpha: the factor on the edges' weights.
        renormalise: whether the rows are renormalised after scaling.
        on: the hook site ("pattern" or "attn_scores").

    Returns:
        α as a float.

    Raises:
        KnockoutError: α not a finite number ≥ 0; renormalise not a bool; renormalise=False on
            attn_scores (a post-softmax multiply has no scores form)."""
    if not isinstance(renormalise, bool):
        raise KnockoutError(f"renormalise must be True or False, got {renormalise!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha < 0:
        raise KnockoutError(
            f"alpha={alpha!r}: a scaling takes a finite number α ≥ 0 (0: the knockout, 1: clean, > 1: the edges "
            "weigh more); a negative α has no log (renormalise=True) and is no attention weight (renormalise=False)"
        )
    if not renormalise and on == "attn_scores":
        raise KnockoutError(
            "renormalise=False multiplies the attention pattern after the softmax, so it acts on hook_pattern: "
            "use on='pattern', or renormalise=True (then log α is added on attn_scores)"
        )
    return float(alpha)


class ScaleHook(KnockoutHook):
    """A spec's edges weighted by α in a layer selection (and heads) for a batch of layouts.

    An attention intervention like `KnockoutHook` (resolved and checked before the forward, alive
    for one call): `blocked` names the scaled edges, and `alpha`/`renormalise` tell the layer
    mask to turn them into log α on the scores or a factor on the pattern instead of −∞. As a
    plain TransformerLens hook it edits the pattern (or, renormalised, the scores) it is given."""

    def __init__(
        self,
        spec: Spec,
        selection: LayerSelection,
        layouts: Sequence[VideoLayout],
        alpha: float,
        renormalise: bool = True,
        on: HookSite = "pattern",
        heads: Iterable[int] | None = None,
    ):
        self.alpha = check_alpha(alpha, renormalise, on)
        self.renormalise = renormalise
        super().__init__(spec, selection, layouts, on, heads=heads)

    def __repr__(self) -> str:
        how = "renormalised" if self.renormalise else "not renormalised"
        return f"{super().__repr__()} ×{self.alpha:g} ({how})"

    def _factor(self, t: Tensor, q_start: int) -> Float[Tensor, "batch head q k"]:
        return torch.where(self._rows_for(t, q_start), self.alpha, 1.0).to(t.device)

    def apply_to_scores(self, scores: Float[Tensor, "batch head q k"], q_start: int = 0) -> Tensor:
        """log α added at the scaled edges (−∞ for α = 0: the knockout)."""
        if self.alpha == 0:
            return super().apply_to_scores(scores, q_start)
        return scores + self._factor(scores, q_start).log().to(scores.dtype)

    def apply_to_pattern(self, pattern: Float[Tensor, "batch head q k"], q_start: int = 0) -> Tensor:
        """α·w at the scaled edges, in fp32; renormalised rows are divided by their new sum (a
        row whose weights all became 0 gets weights 0, no NaN)."""
        if self.alpha == 0 and self.renormalise:
            return super().apply_to_pattern(pattern, q_start)
        factor = self._factor(pattern, q_start)
        scaled = pattern.float() * factor
        if self.renormalise:
            total = scaled.sum(-1, keepdim=True)
            scaled = torch.where(total > 0, scaled / total.clamp_min(torch.finfo(torch.float32).tiny), 0.0)
        rows = (factor != 1).any(-1, keepdim=True)  # rows without a scaled edge stay bit-identical
        return torch.where(rows, scaled.to(pattern.dtype), pattern)
