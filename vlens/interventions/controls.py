"""Random-edge controls: is a knockout's effect more than removing *any* edges would do?

A reviewer's first question about "blocking language → video attention costs 30 points" is how
much blocking the same number of arbitrary edges costs. `RandomEdges(spec, seed=...)` removes, in
every query row where `spec` removes edges, the same number of edges drawn uniformly (seeded)
from that row's causal edges — matched in edge count per row, in rows, and (run in the same
layers) per layer; map-the-flow controls its knockouts the same way with random blocks of the
same size. By default the draw may land on the spec's own edges too (a uniform random subset of
the row of the same size: always possible); `disjoint=True` draws only from the edges the spec
keeps. LV-K takes most of a text row right after the video, so its disjoint control often cannot
exist: that is an error, not a smaller control. It is an ordinary knockout spec: it composes with `|`, runs on the fused SDPA path and
equals HF with the same mask (tests/test_controls.py).

    control = RandomEdges(ko.LV(), seed=0)
    effect = score(knocked by ko.LV()) - score(clean)
    baseline = score(knocked by control) - score(clean)     # report effect − baseline

`among=` narrows where the random edges may be drawn (e.g. `ko.Edges("text", "text")`: text ←
text edges only); a row with fewer candidates than the spec removes there is a `KnockoutError`
naming the row and both counts, never a control with fewer edges.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool
from torch import Tensor

from vlens.components.per_call import KnockoutError
from vlens.inputs.layout import VideoLayout
from vlens.interventions.knockout import Spec


class RandomEdges(Spec):
    """As many random edges as `spec` removes, row by row, drawn from the row's other causal edges.

    Args:
        spec: the knockout to control for.
        seed: the draw's seed: the same seed and layout give the same edges (every layer, every call).
        among: a spec naming the edges the draw may use (default: every causal edge strictly below
            the diagonal between non-pad positions).
        disjoint: draw only among the edges `spec` does not remove.
    """

    def __init__(self, spec: Spec, seed: int = 0, among: Spec | None = None, *, disjoint: bool = False):
        if not isinstance(spec, Spec):
            raise TypeError(f"RandomEdges controls a knockout spec (e.g. ko.LV()), got {spec!r}")
        if among is not None and not isinstance(among, Spec):
            raise TypeError(f"among= takes a knockout spec naming the candidate edges, got {among!r}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int, got {seed!r}")
        self.spec, self.seed, self.among, self.disjoint = spec, seed, among, bool(disjoint)
        pool = ("" if among is None else f", among={among.label}") + (", disjoint" if disjoint else "")
        self.label = f"RandomEdges({spec.label}, seed={seed}{pool})"

    def blocked(self, layout: VideoLayout) -> Bool[Tensor, "q k"]:
        """`spec`'s per-row edge counts, drawn at random among the candidates: [q, k] bool."""
        target = self.spec.blocked(layout)
        n = len(layout)
        real = ~layout.mask("pad")
        candidates = torch.ones(n, n, dtype=torch.bool).tril(-1) & real[:, None] & real[None, :]
        if self.disjoint:
            candidates &= ~target
        if self.among is not None:
            candidates &= self.among.blocked(layout)
        counts = target.sum(-1)
        have = candidates.sum(-1)
        short = (have < counts).nonzero().flatten()
        if len(short):
            q = int(short[0])
            raise KnockoutError(
                f"{self.label}: query row {q} loses {int(counts[q])} edges to {self.spec.label} but has only "
                f"{int(have[q])} candidate edges ({len(short)} such rows); drop disjoint=True, widen among=, "
                "or use a spec that removes fewer edges per row"
            )
        # one uniform key per candidate, the `count` smallest kept: a uniform draw without replacement
        g = torch.Generator().manual_seed(self.seed)
        u = torch.rand(n, n, generator=g).masked_fill(~candidates, 2.0)
        rank = u.argsort(-1).argsort(-1)
        return (rank < counts[:, None]) & candidates
