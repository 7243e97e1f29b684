"""How good the knockout attribution is: the top estimates re-run exactly (`verify_top`), and the
agreement of estimates with exact effects (`spearman`, `top_k_overlap`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from vlens.interventions.attribution import METRICS, AttributionError
from vlens.interventions.sweep import SweepConfig, run_sweep
from vlens.metrics import kl_letters, score


def verify_top(
    model,
    inputs,
    records: dict[str, dict],
    configs: Sequence[SweepConfig],
    k: int,
    letter_ids: Sequence[int],
    answer: int,
    *,
    metric: str = "logit_diff",
) -> dict[str, dict]:
    """Re-run exactly (vlens.interventions.sweep.run_sweep) the `k` configurations whose estimated change of
    `metric` is largest in magnitude.

    Args:
        records: `attribute_sample`'s output for the same inputs and configs.
        k: how many to verify (0 verifies none).
        metric: "logit_diff", "p_correct" or "log_p_correct": the record's value of it ranks
            (readout-corrected where the record has one, else its `*_linear` first-order value).

    Returns:
        config name → exact record (`score` fields, `kl`, `spec`, `layers`, method="exact",
        `estimate`: the attribution record's value of `metric`), largest estimate first.

    Raises:
        AttributionError: an unknown metric, a negative k, or a config missing from `records`.
    """
    if metric not in METRICS:
        raise AttributionError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if k < 0:
        raise AttributionError(f"k must be >= 0, got {k}")
    missing = [c.name for c in configs if c.name not in records]
    if missing:
        raise AttributionError(
            f"configs {missing[:3]} have no attribution record; run attribute_sample on the same configs"
        )
    # rank by the record's best estimate: the readout-corrected value where there is one
    # (readout="letters": logit_diff, p_correct), else the first-order `*_linear` one
    first = records[configs[0].name] if configs else {}
    field = metric if metric in first else f"{metric}_linear"
    if configs and field not in first:
        raise AttributionError(
            f"the records carry no {metric} estimate (readout='logit_diff'); verify by metric='logit_diff'"
        )
    clean = records["clean"]
    base = clean["logit_diff"] if metric == "logit_diff" else clean["p_correct"]
    base = math.log(base) if metric == "log_p_correct" else base
    top = sorted(configs, key=lambda c: -abs(records[c.name][field] - base))[:k]
    if not top:
        return {}
    logits = run_sweep(model, inputs, top)
    clean_exact = score(logits["clean"], list(letter_ids), answer)
    out = {}
    for c in top:
        s = score(logits[c.name], list(letter_ids), answer)
        s["kl"] = kl_letters(clean_exact["letter_logits"], s["letter_logits"])
        out[c.name] = {
            "spec": repr(c.spec),
            "layers": list(c.layers.resolve(model.cfg.n_layers)),
            **s,
            "method": "exact",
            "estimate": records[c.name][field],
        }
    return out


# ------------------------------------------------------------------------------------------------
# Agreement with exact results
# ------------------------------------------------------------------------------------------------
def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 0..n−1, ties sharing their average rank (as scipy.stats.rankdata, minus one)."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    return (np.bincount(inverse, weights=ranks) / counts)[inverse]


def spearman(estimate: Sequence[float], exact: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant or
    fewer than 2 values are given."""
    a, b = np.asarray(estimate, dtype=float), np.asarray(exact, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"estimate and exact must have the same length, got {a.shape} and {b.shape}")
    if len(a) < 2:
        return math.nan
    ra, rb = _ranks(a), _ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


def top_k_overlap(estimate: Sequence[float], exact: Sequence[float], k: int) -> float:
    """|top-k of |estimate| ∩ top-k of |exact|| / k (the k largest changes by magnitude)."""
    a, b = np.abs(np.asarray(estimate, dtype=float)), np.abs(np.asarray(exact, dtype=float))
    if not 1 <= k <= len(a):
        raise ValueError(f"k must be between 1 and {len(a)}, got {k}")
    top = lambda x: set(np.argsort(-x, kind="mergesort")[:k].tolist())  # noqa: E731
    return len(top(a) & top(b)) / k
