"""Dose-response over α: a metric as a spec's edges are scaled from removed (α = 0) through clean
(α = 1) to strengthened (α > 1), in chosen layers and heads (vlens.interventions.scaling).

    curve = dose_response(model, inputs, ko.LV(), [0, 0.25, 0.5, 1], metric, layers=[2], heads=[2])
    print(curve.table())
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from vlens.components.per_call import KnockoutError
from vlens.interventions.knockout import Spec
from vlens.interventions.scaling import check_alpha


@dataclass(frozen=True)
class DoseResponse:
    """The metric at each α of a sweep.

    Attributes:
        label: the spec, layers and heads scaled (the hook's description).
        alphas: the α grid, in the order given.
        values: the metric at each α.
        renormalise: whether the scaled rows were renormalised."""

    label: str
    alphas: tuple[float, ...]
    values: tuple[float, ...]
    renormalise: bool

    def table(self) -> str:
        """The curve as a two-column markdown table (α, metric)."""
        rows = [f"| {a:g} | {v:+.4f} |" for a, v in zip(self.alphas, self.values)]
        return "\n".join([f"{self.label}", "| α | metric |", "|---|---|", *rows])


@torch.no_grad()
def dose_response(
    model,
    inputs,
    spec: Spec,
    alphas: Sequence[float],
    metric: Callable[[Tensor], Tensor | float],
    *,
    layers=None,
    heads: Iterable[int] | None = None,
    renormalise: bool = True,
) -> DoseResponse:
    """Run `inputs` once per α with `spec`'s edges scaled by α and read `metric` from the logits.

    Args:
        model: a HookedVideoLLM.
        inputs: VideoInputs from `model.to_inputs` (they carry the layouts).
        spec: the edges to scale (any knockout spec).
        alphas: the α grid (each a finite number ≥ 0; 0 with renormalise=True is the knockout).
        metric: logits of the last position [batch, d_vocab] → a number (or a tensor, averaged),
            e.g. `lambda l: logit_diff(l, letters, answer)` (vlens.interventions.patching).
        layers: the layer selection (all by default), as in `spec.hooks`.
        heads: the query heads (all by default), as in `spec.hooks`.
        renormalise: renormalise the scaled rows (log α on the scores, every path) or not (α·w on
            the pattern, the explicit path).

    Returns:
        A DoseResponse with one value per α.

    Raises:
        KnockoutError: an empty grid, or an α that is not a finite number ≥ 0 (before any forward)."""
    grid = tuple(check_alpha(a, renormalise, "pattern") for a in alphas)
    if not grid:
        raise KnockoutError("dose_response needs at least one α (e.g. [0, 0.25, 0.5, 0.75, 1])")
    values, label = [], ""
    for alpha in grid:
        hooks = spec.hooks(inputs, layers=layers, heads=heads, alpha=alpha, renormalise=renormalise)
        label = label or str(hooks[0][1]).rsplit(" ×", 1)[0]
        logits = model.run_with_hooks(inputs, fwd_hooks=hooks, logits_to_keep=1)[:, -1]
        values.append(float(torch.as_tensor(metric(logits)).float().mean()))
    return DoseResponse(label, grid, tuple(values), renormalise)
