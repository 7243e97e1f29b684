"""Head-level knockout attribution: the effect of a knockout on each (layer, query head) alone,
estimated from one backward and checked against exact per-head knockouts.

The estimate is `vlens.interventions.attribution`'s linearisation restricted to one head: a knockout on
query head h of layer l changes only z_{l,h}, so Δm ≈ ⟨∂m/∂z_{l,h}, z_{l,h}^ko − z_{l,h}⟩
(`KnockoutAttribution.per_head`); one forward and one backward per readout direction give every
(layer, head) of every spec. The readout correction applies as for layers: the estimated letter
logits are scored exactly (`KnockoutAttribution.record(spec, [l], heads=[h])`).

    est = attribute_heads(model, inputs, [ko.LV(), ko.VT()], letter_ids, answer)
    est.map(ko.LV())                               # [layer, head] estimated Δ logit diff
    top = est.top(ko.LV(), 5)                      # [(layer, head), ...], largest |Δ| first
    exact = exact_heads(model, inputs, ko.LV(), top, letter_ids, answer)   # (l, h) → exact record
    agreement(est.map(ko.LV()), exact_head_map(model, inputs, ko.LV(), letter_ids, answer), k=5)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from vlens.arguments import ArgumentError, as_index
from vlens.interventions.attribution import AttributionError, KnockoutAttribution, attribute_knockouts
from vlens.interventions.attribution_validation import spearman, top_k_overlap
from vlens.interventions.knockout import Spec
from vlens.metrics import kl_letters, score

HEAD_METRICS = ("logit_diff", "p_correct")  # the changes estimated and checked per head

Cell = tuple[int, int]  # (layer, query head)


def check_top_k(k: object, n_layers: int, n_heads: int, name: str = "top_k") -> int:
    """`k` as a count of heads between 1 and n_layers × n_heads.

    Raises:
        ArgumentError: naming `name`, the value given and the allowed range."""
    total = n_layers * n_heads
    if isinstance(k, bool) or not isinstance(k, int):
        raise ArgumentError(f"{name} must be an integer number of heads (1..{total}), got {k!r}")
    if not 1 <= k <= total:
        raise ArgumentError(
            f"{name}={k} is out of range: the model has {n_layers} layers × {n_heads} query heads = {total} "
            f"heads; pass {name} between 1 and {total}"
        )
    return k


@dataclass
class HeadAttribution:
    """Estimated effects of each spec's knockout on each (layer, query head) alone, for one sample.

    Attributes:
        attribution: the underlying KnockoutAttribution (its `per_head` holds the raw estimates).
        specs: the distinct specs, in the order of `estimate`'s first axis.
        estimate: metric → [spec, layer, head] estimated change of the metric (knocked − clean):
            "logit_diff" always, "p_correct" unless readout="logit_diff".
        clean: the clean scores over the option letters (`vlens.metrics.score` of the clean letter logits).
    """

    attribution: KnockoutAttribution
    specs: list[Spec]
    estimate: dict[str, Float[Tensor, "spec layer head"]]
    clean: dict

    def _index(self, spec: Spec) -> int:
        if spec not in self.specs:
            raise AttributionError(f"{spec!r} was not attributed; attributed specs: {', '.join(map(repr, self.specs))}")
        return self.specs.index(spec)

    def map(self, spec: Spec, metric: str = "logit_diff") -> Float[Tensor, "layer head"]:
        """[layer, head] estimated change of `metric` when `spec` is knocked out on that head alone."""
        if metric not in self.estimate:
            raise AttributionError(f"metric must be one of {', '.join(self.estimate)}, got {metric!r}")
        return self.estimate[metric][self._index(spec)]

    def top(self, spec: Spec, k: int, metric: str = "logit_diff") -> list[Cell]:
        """The `k` (layer, head) cells with the largest |estimated change| of `metric`, largest
        first (ties: lower layer, then lower head, first).

        Raises:
            ArgumentError: k not between 1 and layers × heads."""
        m = self.map(spec, metric)
        L, H = m.shape
        k = check_top_k(k, L, H, "k")
        order = sorted(range(L * H), key=lambda i: (-abs(float(m.flatten()[i])), i))[:k]
        return [divmod(i, H) for i in order]


def attribute_heads(
    model,
    inputs,
    specs: Sequence[Spec],
    letter_ids: Sequence[int],
    answer: int,
    *,
    readout: str = "letters",
    chunk_rows: int = 1024,
) -> HeadAttribution:
    """Every spec's knockout on every (layer, query head) alone, estimated from one forward and
    one backward per readout direction (`attribute_knockouts`, whose arguments these are).

    Returns:
        HeadAttribution: `estimate[metric]` [spec, layer, head] of the change of each metric.

    Raises:
        AttributionError / ArgumentError / TypeError: as `attribute_knockouts`.
    """
    attr = attribute_knockouts(model, inputs, specs, letter_ids, answer, readout=readout, chunk_rows=chunk_rows)
    clean = score(attr.clean_letters, list(range(len(attr.letter_ids))), answer)
    L, H = model.cfg.n_layers, model.cfg.n_heads
    first = attr.record(attr.specs[0], [0], heads=[0]) if attr.specs else {}
    metrics = [m for m in HEAD_METRICS if m in first]
    est = {m: torch.zeros(len(attr.specs), L, H) for m in metrics}
    for s, spec in enumerate(attr.specs):
        for l in range(L):
            for h in range(H):
                rec = attr.record(spec, [l], heads=[h])
                for m in metrics:
                    est[m][s, l, h] = rec[m] - clean[m]
    return HeadAttribution(attr, list(attr.specs), est, clean)


def _check_cells(cells: object, n_layers: int, n_heads: int) -> list[Cell]:
    if isinstance(cells, (str, bytes)) or not isinstance(cells, Sequence):
        raise ArgumentError(f"cells must be a list of (layer, head) pairs, got {cells!r}")
    out = []
    for c in cells:
        if not isinstance(c, (tuple, list)) or len(c) != 2:
            raise ArgumentError(f"cells must be (layer, head) pairs, got {c!r}")
        out.append(
            (as_index(c[0], "layer", n_layers, what="layer index"), as_index(c[1], "head", n_heads, what="query head"))
        )
    return out


@torch.no_grad()
def exact_heads(
    model, inputs, spec: Spec, cells: Sequence[Cell], letter_ids: Sequence[int], answer: int
) -> dict[Cell, dict]:
    """`spec` knocked out exactly on each (layer, query head) of `cells` alone, one forward each,
    resumed at that layer from the clean residual stream (the layers below are unchanged; equal
    to a full forward with `spec.hooks(inputs, layers=[l], heads=[h])`).

    Returns:
        (layer, head) → `vlens.metrics.score` of the knocked logits, plus `kl` (from clean) and
        the changes `d_logit_diff`, `d_p_correct` (knocked − clean).

    Raises:
        ArgumentError: a cell out of range; KnockoutError: a spec that cannot run on `inputs`.
    """
    if getattr(inputs, "batch_size", None) != 1:
        raise AttributionError("exact_heads takes one sample (the VideoInputs of model.to_inputs(video, question))")
    L, H = model.cfg.n_layers, model.cfg.n_heads
    cells = _check_cells(cells, L, H)
    starts = {l for l, _ in cells}
    n_deep = model.cfg.deepstack_layers  # Qwen3-VL: a resumed forward needs the DeepStack additions
    names = {f"blocks.{l}.hook_resid_pre" for l in starts}
    names |= {f"blocks.{l}.hook_deepstack" for l in range(min(starts, default=n_deep), n_deep)}
    logits, cache = model.run_with_cache(
        inputs, names_filter=lambda n: n in names, logits_to_keep=1, return_cache_object=False
    )
    clean = score(logits[0, -1], list(letter_ids), answer)
    step = {"input_ids": inputs["input_ids"], "position_ids": model.position_ids(inputs)}
    if inputs.get("attention_mask") is not None:
        step["attention_mask"] = inputs["attention_mask"]
    out: dict[Cell, dict] = {}
    for l, h in cells:
        deep = {d: cache[f"blocks.{d}.hook_deepstack"] for d in range(l, n_deep)}
        knocked = model.run_with_hooks(
            step,
            fwd_hooks=spec.hooks(inputs, layers=[l], heads=[h]),
            start_at_layer=l,
            resid=cache[f"blocks.{l}.hook_resid_pre"].clone(),
            logits_to_keep=1,
            deepstack_adds=deep,
        )[0, -1]
        s = score(knocked, list(letter_ids), answer)
        s["kl"] = kl_letters(clean["letter_logits"], s["letter_logits"])
        s["d_logit_diff"] = s["logit_diff"] - clean["logit_diff"]
        s["d_p_correct"] = s["p_correct"] - clean["p_correct"]
        out[(l, h)] = s
    return out


def exact_head_map(
    model, inputs, spec: Spec, letter_ids: Sequence[int], answer: int, metric: str = "logit_diff"
) -> Float[Tensor, "layer head"]:
    """[layer, head] exact change of `metric` ("logit_diff" or "p_correct") under `spec` on each
    head alone: `exact_heads` over every cell (layers × heads resumed forwards)."""
    if metric not in HEAD_METRICS:
        raise AttributionError(f"metric must be one of {', '.join(HEAD_METRICS)}, got {metric!r}")
    L, H = model.cfg.n_layers, model.cfg.n_heads
    res = exact_heads(model, inputs, spec, [(l, h) for l in range(L) for h in range(H)], letter_ids, answer)
    out = torch.zeros(L, H)
    for (l, h), r in res.items():
        out[l, h] = r[f"d_{metric}"]
    return out


def agreement(estimate: Tensor, exact: Tensor, k: int = 5) -> dict[str, float]:
    """How well estimated per-head changes match exact ones (any matching shapes, e.g. [layer, head]).

    Returns:
        `spearman` (rank correlation), `pearson`, `top_k_overlap` (|top-k by |estimate| ∩ top-k
        by |exact|| / k), `sign_agreement` (fraction of cells whose exact |change| ≥ 1e-6 with
        the same sign estimated), `k`."""
    a, b = estimate.flatten().double().numpy(), exact.flatten().double().numpy()
    if a.shape != b.shape:
        raise ArgumentError(
            f"estimate and exact must have the same shape, got {tuple(estimate.shape)} and {tuple(exact.shape)}"
        )
    import numpy as np

    pearson = float(np.corrcoef(a, b)[0, 1]) if len(a) > 1 and a.std() > 0 and b.std() > 0 else math.nan
    moved = np.abs(b) >= 1e-6
    signs = float(np.mean(np.sign(a[moved]) == np.sign(b[moved]))) if moved.any() else math.nan
    k = min(k, len(a))
    return {
        "spearman": spearman(a.tolist(), b.tolist()),
        "pearson": pearson,
        "top_k_overlap": top_k_overlap(a.tolist(), b.tolist(), k),
        "sign_agreement": signs,
        "k": k,
    }
