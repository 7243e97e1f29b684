"""`vlens run heads` records → per-spec summaries: the mean estimated and exact layer × head
maps and how estimates agree with the exact runs (the layer the heads figure and report read).

Every number is a function of the set of records (rows sorted by sample, sums with `math.fsum`),
as in `vlens.experiments.analysis`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from vlens.interventions.attribution_validation import spearman, top_k_overlap

METRICS = ("logit_diff", "p_correct")
_EST = {"logit_diff": "estimate", "p_correct": "estimate_p_correct"}
_EXACT = {"logit_diff": "exact", "p_correct": "exact_p_correct"}


@dataclass(frozen=True)
class HeadRow:
    """One (layer, head) of a spec: its mean estimated change of the logit difference over every
    sample (`estimate`), and over the samples where it was among the top K (`n_verified` of
    them) the mean estimate (`estimate_verified`) and the mean exact change (`exact`); likewise
    for p(correct)."""

    layer: int
    head: int
    estimate: float
    n_verified: int
    estimate_verified: float
    exact: float
    estimate_p_correct: float
    estimate_verified_p_correct: float
    exact_p_correct: float


@dataclass(frozen=True)
class HeadsSummary:
    """One spec of `vlens run heads` over the samples that have its record.

    Attributes:
        name: the record name (`heads/lv`); spec: the spec's label (`LV-K`); n: samples.
        estimate: metric → [layer, head] mean estimated change (knocked − clean) over the samples.
        exact: metric → [layer, head] mean exact change over the samples where the head was verified
            (NaN where it never was); estimate_verified: the mean estimate over those same samples.
        n_verified: [layer, head] how many samples verified each head.
        agreement: metric → over every verified (sample, head) pair: `spearman`, `pearson`,
            `sign_agreement` (same sign where the exact |change| ≥ 1e-6), `n_pairs`; and, only when
            every head was verified in every sample, `map_spearman` and `map_top_k_overlap` of the
            mean maps (k = `overlap_k`) and `top1_in_top_k`: the fraction of samples whose
            largest exact change is among their k largest estimates.
        top_k: heads verified per sample (the run's K); overlap_k: k of `map_top_k_overlap`.
        clean_logit_diff, clean_p_correct: the clean means.
    """

    name: str
    spec: str
    n: int
    estimate: dict[str, Float[Tensor, "layer head"]]
    exact: dict[str, Float[Tensor, "layer head"]]
    estimate_verified: dict[str, Float[Tensor, "layer head"]]
    n_verified: Int[Tensor, "layer head"]
    agreement: dict[str, dict[str, float]]
    top_k: int
    overlap_k: int
    clean_logit_diff: float
    clean_p_correct: float

    def ranked(self, metric: str = "logit_diff") -> list[HeadRow]:
        """Every head, largest mean |estimated change| of `metric` first (ties: lower layer, head)."""
        est = self.estimate[metric]
        L, H = est.shape
        order = sorted(range(L * H), key=lambda i: (-abs(float(est.flatten()[i])), i))
        rows = []
        for i in order:
            l, h = divmod(i, H)
            rows.append(
                HeadRow(
                    l,
                    h,
                    float(self.estimate["logit_diff"][l, h]),
                    int(self.n_verified[l, h]),
                    float(self.estimate_verified["logit_diff"][l, h]),
                    float(self.exact["logit_diff"][l, h]),
                    float(self.estimate["p_correct"][l, h]),
                    float(self.estimate_verified["p_correct"][l, h]),
                    float(self.exact["p_correct"][l, h]),
                )
            )
        return rows


def _pair_agreement(est: list[float], exact: list[float]) -> dict[str, float]:
    import numpy as np

    a, b = np.asarray(est, dtype=float), np.asarray(exact, dtype=float)
    n = len(a)
    pearson = float(np.corrcoef(a, b)[0, 1]) if n > 1 and a.std() > 0 and b.std() > 0 else math.nan
    moved = np.abs(b) >= 1e-6
    signs = float(np.mean(np.sign(a[moved]) == np.sign(b[moved]))) if moved.any() else math.nan
    return {
        "spearman": spearman(est, exact) if n else math.nan,
        "pearson": pearson,
        "sign_agreement": signs,
        "n_pairs": n,
    }


def _top1_recall(rows: Sequence[dict], metric: str, k: int) -> float:
    """The fraction of samples whose head with the largest exact |change| is among the k largest
    |estimates| of that sample (every head verified: each sample's exact map is whole)."""
    hits = []
    for r in rows:
        exact = {(v["layer"], v["head"]): abs(v[_EXACT[metric]]) for v in r["verified"]}
        best = min(exact, key=lambda c: (-exact[c], c))
        est = [(-abs(x), (l, h)) for l, row in enumerate(r[_EST[metric]]) for h, x in enumerate(row)]
        hits.append(best in {c for _, c in sorted(est)[:k]})
    return math.fsum(hits) / len(hits)


def summarise_heads(records: Sequence[dict], order: Sequence[str] = (), overlap_k: int = 5) -> dict[str, HeadsSummary]:
    """Per `heads/<spec>` record name: `HeadsSummary`.

    Args:
        records: a run's records (any order); only `heads/…` records with maps are read.
        order: spec keys in the order wanted (the run's `settings["heads"]["specs"]`); others
            follow by name.
        overlap_k: k of the map-level top-k overlap (at most layers × heads).

    Returns:
        `{name: HeadsSummary}`; samples whose maps have another shape than the first are left out.
    """
    by_name: dict[str, list[dict]] = {}
    for r in sorted(records, key=lambda r: r["sample"]):
        if r["config"].startswith("heads/") and "estimate" in r:
            by_name.setdefault(r["config"], []).append(r)
    rank = {f"heads/{key}": i for i, key in enumerate(order)}
    out = {}
    for name, rows in sorted(by_name.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])):
        shape = (len(rows[0]["estimate"]), len(rows[0]["estimate"][0]))
        rows = [r for r in rows if (len(r["estimate"]), len(r["estimate"][0])) == shape]
        L, H = shape
        k = min(overlap_k, L * H)
        estimate, exact, est_verified, agreement = {}, {}, {}, {}
        counts = torch.zeros(L, H, dtype=torch.long)
        for v in (v for r in rows for v in r["verified"]):
            counts[v["layer"], v["head"]] += 1
        for m in METRICS:
            est = torch.tensor([r[_EST[m]] for r in rows], dtype=torch.float64)
            estimate[m] = torch.tensor(
                [[math.fsum(est[:, l, h].tolist()) / len(rows) for h in range(H)] for l in range(L)]
            ).float()
            sums: dict[tuple[int, int], list[tuple[float, float]]] = {}
            pairs_est, pairs_exact = [], []
            for r in rows:
                for v in r["verified"]:
                    sums.setdefault((v["layer"], v["head"]), []).append((v[_EST[m]], v[_EXACT[m]]))
                    pairs_est.append(v[_EST[m]])
                    pairs_exact.append(v[_EXACT[m]])
            ex, ev = torch.full((L, H), math.nan), torch.full((L, H), math.nan)
            for (l, h), vals in sums.items():
                ev[l, h] = math.fsum(e for e, _ in vals) / len(vals)
                ex[l, h] = math.fsum(x for _, x in vals) / len(vals)
            exact[m], est_verified[m] = ex, ev
            agreement[m] = _pair_agreement(pairs_est, pairs_exact)
            if bool((counts == len(rows)).all()):  # every head verified in every sample: whole maps
                a, b = estimate[m].flatten().tolist(), ex.flatten().tolist()
                agreement[m]["map_spearman"] = spearman(a, b)
                agreement[m]["map_top_k_overlap"] = top_k_overlap(a, b, k)
                agreement[m]["top1_in_top_k"] = _top1_recall(rows, m, k)
        out[name] = HeadsSummary(
            name=name,
            spec=rows[0]["spec"],
            n=len(rows),
            estimate=estimate,
            exact=exact,
            estimate_verified=est_verified,
            n_verified=counts,
            agreement=agreement,
            top_k=max(len(r["verified"]) for r in rows),
            overlap_k=k,
            clean_logit_diff=math.fsum(r["clean_logit_diff"] for r in rows) / len(rows),
            clean_p_correct=math.fsum(r["clean_p_correct"] for r in rows) / len(rows),
        )
    return out
