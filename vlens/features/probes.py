"""Linear probes on the activation store: per hook (layer) and position group, held-out accuracy
with a bootstrap interval.

    from vlens.features.probes import probe_store
    results = probe_store("acts/", ["answer_text", "frame"], groups=["video", "last"])
    for r in results:
        print(r.hook, r.group, r.label, f"{r.accuracy:.1%}", r.ci)

A probe is softmax regression (logistic regression for two classes) on standardised activations
with an L2 penalty, fitted full-batch with L-BFGS from zeros: a convex problem with one answer,
the same on every run. Labels are a sample's (`answer`, `answer_text`, `kind`, `color`,
`direction`, ... as `vlens cache-activations` stored them; samples without the label are left
out) or a row's own (`frame`, `row`, `col`: video rows only). **Cross-validated by sample**: the
samples are dealt into `folds` (4) seeded folds; each fold is scored by a probe fitted on the
others, so every sample is scored once by a probe that never saw any of its rows (the many rows
of one clip cannot leak its answer). Accuracy is the mean over samples of each sample's accuracy
over its rows (one row per sample at `last`: the plain accuracy); the interval is the percentile
bootstrap of that mean over samples (`vlens.metrics.bootstrap_mean_ci`). `chance` is the same
score for always guessing the most common class of the fold's training samples.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vlens.features.probe_fit import LinearProbe, ProbeError, assign_folds, evaluate_probe, fit_probe
from vlens.features.store import ActivationBatch, ActivationStore
from vlens.inputs.layout import ROLES, SEGMENTS, VISION_SEGMENTS

ROW_LABELS = ("frame", "row", "col")  # labels each video row carries itself
GROUP_NAMES = ("all", "vision", *SEGMENTS, *ROLES)
POOLS = (None, "sample", "frame")
__all__ = [
    "GROUP_NAMES",
    "POOLS",
    "ROW_LABELS",
    "LinearProbe",
    "ProbeError",
    "ProbeResult",
    "assign_folds",
    "available_labels",
    "evaluate_probe",
    "fit_probe",
    "group_mask",
    "hook_layer",
    "probe_store",
    "results_table",
]


@dataclass(frozen=True)
class ProbeResult:
    """One probe's held-out score.

    Attributes:
        hook: the store's hook. layer: its block (None for hooks outside the blocks).
        group: the position group. label: the label probed.
        accuracy: mean over samples of the per-sample accuracy (each scored by a probe fitted
            without it). ci: its 95% bootstrap interval.
        chance: the same score for always guessing the most common class of the training folds.
        n_classes: the classes. n_samples: samples scored. n_examples: rows (or pooled rows with
            `pool`). folds: the cross-validation folds.
        pool: None (every row), "sample" or "frame" (the mean of a sample's / a frame's rows).
    """

    hook: str
    layer: int | None
    group: str
    label: str
    accuracy: float
    ci: tuple[float, float]
    chance: float
    n_classes: int
    n_samples: int
    n_examples: int
    folds: int
    pool: str | None = None


def group_mask(batch: ActivationBatch, group: str) -> Tensor:
    """`[n]` the rows of `batch` in `group`: a segment, a role, `vision`, `all`, or a union of
    them joined by `,` or `+` (`"video,last"`; the store's manifest writes `"video+last"`).

    Raises:
        ProbeError: an unknown name (the message lists the known ones).
    """
    names = [g.strip() for g in re.split(r"[,+|]", group) if g.strip()]
    bad = [g for g in names if g not in GROUP_NAMES]
    if not names or bad:
        raise ProbeError(
            f"groups: {group!r} is not a position group; use one of {GROUP_NAMES} (or a comma-separated union)"
        )
    mask = torch.zeros(len(batch), dtype=torch.bool)
    for g in names:
        if g == "all":
            mask |= True
        elif g == "vision":
            mask |= batch.segment_mask(*VISION_SEGMENTS)
        elif g in SEGMENTS:
            mask |= batch.segment_mask(g)
        else:
            mask |= batch.role_mask(g)
    return mask


def available_labels(store: ActivationStore) -> list[str]:
    """The labels the store's samples carry (the union over samples), then the row labels."""
    names = sorted({k for s in store.samples for k in s.get("labels", {})})
    return [*names, *ROW_LABELS]


def _labels(
    store: ActivationStore, batch: ActivationBatch, label: str, given: Mapping[str, Any] | None
) -> tuple[Tensor, tuple[str, ...]]:
    """`[n]` class index per row (−1: the row has no such label) and the class names."""
    if given is not None:
        values = [given.get(s["sample"]) for s in store.samples]
        per_row = [values[i] for i in batch.sample.tolist()]
    elif label in ROW_LABELS:
        coord = getattr(batch, label)
        per_row = [int(v) if v >= 0 else None for v in coord.tolist()]
    else:
        values = [s.get("labels", {}).get(label) for s in store.samples]
        if all(v is None for v in values):
            raise ProbeError(
                f"label={label!r} is not a label of {store.dir}'s samples; its samples carry {available_labels(store)} "
                "(or pass values={sample id: value})"
            )
        per_row = [values[i] for i in batch.sample.tolist()]
    keys = sorted({str(v) for v in per_row if v is not None}, key=_natural)
    if len(keys) < 2:
        raise ProbeError(
            f"label={label!r} takes {'one value, ' + repr(keys[0]) if keys else 'no value'} on these samples: a probe "
            "of it would score 100% and mean nothing; probe a label with two or more classes (more samples, or "
            "another label)"
        )
    code = {k: i for i, k in enumerate(keys)}
    y = torch.tensor([code[str(v)] if v is not None else -1 for v in per_row], dtype=torch.long)
    return y, tuple(keys)


def _natural(name: str) -> list:
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name)]


def _units(
    batch: ActivationBatch, keep: Tensor, y_all: Tensor, pool: str | None, label: str
) -> tuple[Tensor, Tensor, Tensor]:
    """The examples of the kept rows: (`[rows]` each row's example, `[examples]` its class,
    `[examples]` its sample)."""
    sample, y = batch.sample[keep], y_all[keep]
    if pool is None:
        return torch.arange(len(y)), y, sample
    key = sample if pool == "sample" else sample * (int(batch.frame.max()) + 1) + batch.frame[keep]
    ids, unit = torch.unique(key, return_inverse=True)
    lo = torch.full((len(ids),), len(y), dtype=torch.long).scatter_reduce(0, unit, y, "amin")
    hi = torch.full((len(ids),), -1, dtype=torch.long).scatter_reduce(0, unit, y, "amax")
    if not torch.equal(lo, hi):
        raise ProbeError(
            f"label={label!r} differs between the rows of one {pool}: pool={pool!r} cannot give it one value"
        )
    first_sample = torch.zeros(len(ids), dtype=torch.long).scatter_(0, unit, sample)
    return unit, lo, first_sample


def _pooled(acts: Tensor, unit: Tensor) -> Tensor:
    """The mean of the rows of each example (`unit` from `_units`)."""
    n = int(unit.max()) + 1 if len(unit) else 0
    if torch.equal(unit, torch.arange(n)):
        return acts
    sums = torch.zeros(n, acts.shape[1], dtype=torch.float64).index_add_(0, unit, acts.double())
    counts = torch.zeros(n, dtype=torch.float64).index_add_(0, unit, torch.ones(len(unit), dtype=torch.float64))
    return (sums / counts[:, None]).float()


def hook_layer(hook: str) -> int | None:
    """The block of `blocks.{l}.…` hooks; None for others (`hook_embed`, `hook_video_features`, …)."""
    m = re.match(r"blocks\.(\d+)\.", hook)
    return int(m.group(1)) if m else None


def probe_store(
    store: str | Path | ActivationStore,
    labels: str | Sequence[str],
    *,
    hooks: Sequence[str] | None = None,
    groups: str | Sequence[str] = ("all",),
    folds: int = 4,
    weight_decay: float = 1e-3,
    seed: int = 0,
    model: Any = None,
    values: Mapping[str, Any] | None = None,
    pool: str | None = None,
) -> list[ProbeResult]:
    """A probe for every hook × position group × label of a store.

    Args:
        store: the store (or its directory).
        labels: label names (`available_labels`): sample labels or the row labels `frame`, `row`, `col`.
        hooks: which of the store's hooks (default all, in the store's order).
        groups: position groups (`group_mask`), each probed on its own rows.
        folds: cross-validation folds (by sample). weight_decay: the L2 penalty. seed: the folds'.
        model: if given, the store must have been written by this model at this revision.
        values: your own labels, `{sample id: value}` (then `labels` is one name for them).
        pool: None: every row is an example; "sample": the mean of a sample's rows in the group
            is one example; "frame": the mean of each frame's rows (video rows only).

    Returns:
        One `ProbeResult` per (label, group, hook), in that nesting order.

    Raises:
        ProbeError: an unknown label or group, a group with no rows in the store, fewer samples
            with the label than folds. ActivationStoreError: not a finished store, a hook it lacks,
            or (with `model`) a store written by another model.
    """
    store = store if isinstance(store, ActivationStore) else ActivationStore(store)
    if model is not None:
        store.check_model(model)
    names = [labels] if isinstance(labels, str) else list(labels)
    if not names:
        raise ProbeError("labels: none given; pass a label such as 'answer_text' or 'frame'")
    if values is not None and len(names) != 1:
        raise ProbeError(f"labels={names!r}: with values={{sample id: value}}, give one name for them")
    if pool not in POOLS:
        raise ProbeError(f"pool={pool!r} is not a pooling; use one of {POOLS}")
    group_list = [groups] if isinstance(groups, str) else list(groups)
    chosen = list(store.hooks) if hooks is None else [store._hook(h) for h in hooks]
    results = []
    batches = {h: store.all(h) for h in chosen}
    first = batches[chosen[0]]
    for label in names:
        y_all, _ = _labels(store, first, label, values)
        for group in group_list:
            rows = group_mask(first, group)
            if not bool(rows.any()):
                raise ProbeError(
                    f"groups: {group!r} has no rows in {store.dir} (written at positions "
                    f"{store.manifest.get('positions')!r}); probe a group inside those positions"
                )
            keep = rows & (y_all >= 0)
            if pool == "frame":
                keep &= first.frame >= 0
            if not bool(keep.any()):
                raise ProbeError(
                    f"label={label!r} is set on no row of group {group!r}"
                    + (" with pool='frame'" if pool == "frame" else "")
                    + " (frame, row, col and pool='frame' need video rows)"
                )
            unit, y, unit_sample = _units(first, keep, y_all, pool, label)
            key = f"{label}/{group}/{pool}/{seed}"
            for hook in chosen:
                b = batches[hook]
                r = evaluate_probe(
                    _pooled(b.acts[keep], unit),
                    y,
                    unit_sample,
                    folds=folds,
                    weight_decay=weight_decay,
                    key=key,
                )
                results.append(
                    ProbeResult(
                        hook=hook,
                        layer=hook_layer(hook),
                        group=group,
                        label=label,
                        accuracy=r["accuracy"],
                        ci=(float(r["ci"][0]), float(r["ci"][1])),
                        chance=r["chance"],
                        n_classes=r["n_classes"],
                        n_samples=r["n_samples"],
                        n_examples=r["n_rows"],
                        folds=folds,
                        pool=pool,
                    )
                )
    return results


def _where(r: ProbeResult) -> str:
    return r.group + (f" (mean per {r.pool})" if r.pool else "")


def results_table(results: Sequence[ProbeResult]) -> str:
    """The results as a markdown table: one row per hook, one column per (label, group)."""
    cols = list(dict.fromkeys((r.label, _where(r)) for r in results))
    hooks = list(dict.fromkeys(r.hook for r in results))
    cell = {(r.hook, r.label, _where(r)): r for r in results}
    n = {(r.label, _where(r)): r.n_samples for r in results}
    head = "| hook | " + " | ".join(f"{lab} @ {g}, n = {n[lab, g]}" for lab, g in cols) + " |"
    lines = [head, "|" + "---|" * (len(cols) + 1)]
    for h in hooks:
        parts = []
        for lab, g in cols:
            r = cell.get((h, lab, g))
            parts.append(
                "" if r is None or math.isnan(r.accuracy) else f"{r.accuracy:.0%} [{r.ci[0]:.0%}, {r.ci[1]:.0%}]"
            )
        lines.append(f"| {h} | " + " | ".join(parts) + " |")
    chance = " · ".join(
        f"{lab} @ {g}: {next(r.chance for r in results if (r.label, _where(r)) == (lab, g)):.0%}" for lab, g in cols
    )
    return "\n".join([*lines, "", f"chance (the most common training class): {chance}"])
