"""Fitting one linear probe on tensors: softmax regression with an L2 penalty (L-BFGS from zeros),
the held-out split by sample, and the score with its bootstrap interval. `vlens.features.probes`
runs it over an activation store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from vlens.arguments import ArgumentError
from vlens.metrics import bootstrap_mean_ci, seed_from

SMALL_PROBLEM = 1 << 22  # rows x width below which a probe is fitted on one thread


class ProbeError(ArgumentError):
    """A probe asked of a store that cannot answer it (unknown label, empty group, too few samples)."""


@dataclass(frozen=True)
class LinearProbe:
    """A fitted probe: `logits = ((x - mean) / std) @ weight + bias`.

    Attributes:
        weight: `[d, n_classes]`. bias: `[n_classes]`. mean, std: `[d]` the training rows' statistics.
        classes: the label value of each class, in class order.
    """

    weight: Float[Tensor, "d c"]
    bias: Float[Tensor, " c"]
    mean: Float[Tensor, " d"]
    std: Float[Tensor, " d"]
    classes: tuple[str, ...]

    def predict(self, x: Float[Tensor, "n d"]) -> Int[Tensor, " n"]:
        """The class index of each row of `x`."""
        return (((x - self.mean) / self.std) @ self.weight + self.bias).argmax(-1)


def fit_probe(
    x: Float[Tensor, "n d"],
    y: Int[Tensor, " n"],
    n_classes: int,
    *,
    weight_decay: float = 1e-3,
    max_iter: int = 100,
    classes: Sequence[str] | None = None,
) -> LinearProbe:
    """Softmax regression on standardised `x`: mean cross-entropy + `weight_decay`·‖W‖², L-BFGS
    from zeros (deterministic: no random initialisation).

    Raises:
        ProbeError: no rows, a label outside 0..n_classes-1, or a negative weight_decay.
    """
    if len(x) == 0:
        raise ProbeError("fit_probe got no training rows; the group or label selects none")
    if n_classes < 1 or int(y.min()) < 0 or int(y.max()) >= n_classes:
        raise ProbeError(f"y holds labels {int(y.min())}..{int(y.max())} but n_classes={n_classes}")
    if not weight_decay >= 0:
        raise ProbeError(f"weight_decay={weight_decay!r} must be >= 0")
    x = x.double()
    mean, std = x.mean(0), x.std(0, correction=0).clamp_min(1e-6)
    z = (x - mean) / std
    w = torch.zeros(x.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z @ w + b, y) + weight_decay * (w * w).sum()
        loss.backward()
        return loss

    # small problems: one thread (many threads on tiny matrices spin; 20x slower on a busy machine)
    threads = torch.get_num_threads()
    if z.numel() < SMALL_PROBLEM:
        torch.set_num_threads(1)
    try:
        opt.step(closure)  # type: ignore[arg-type]
    finally:
        torch.set_num_threads(threads)
    names = tuple(classes) if classes is not None else tuple(str(i) for i in range(n_classes))
    return LinearProbe(w.detach().float(), b.detach().float(), mean.float(), std.float(), names)


def split_samples(samples: Int[Tensor, " n"], *, test_fraction: float = 0.25, key: str = "") -> Tensor:
    """`[n]` True for rows of the held-out samples: a seeded `test_fraction` of the distinct
    samples (at least one; at least one left to train on), the same for the same `key`.

    Raises:
        ProbeError: fewer than 2 distinct samples, or test_fraction outside (0, 1).
    """
    if not 0 < test_fraction < 1:
        raise ProbeError(f"test_fraction={test_fraction!r} must lie strictly between 0 and 1")
    ids = torch.unique(samples)
    if len(ids) < 2:
        raise ProbeError(f"a held-out probe needs at least 2 samples with the label, got {len(ids)}")
    gen = torch.Generator().manual_seed(seed_from(key) % (2**63))
    order = ids[torch.randperm(len(ids), generator=gen)]
    n_test = min(len(ids) - 1, max(1, round(test_fraction * len(ids))))
    return torch.isin(samples, order[:n_test])


def _per_sample_accuracy(correct: Tensor, samples: Tensor) -> list[float]:
    ids, inverse = torch.unique(samples, return_inverse=True)
    hits = torch.zeros(len(ids), dtype=torch.float64).index_add_(0, inverse, correct.double())
    rows = torch.zeros(len(ids), dtype=torch.float64).index_add_(0, inverse, torch.ones_like(hits[inverse]))
    return (hits / rows).tolist()


def evaluate_probe(
    x: Float[Tensor, "n d"],
    y: Int[Tensor, " n"],
    samples: Int[Tensor, " n"],
    *,
    test_fraction: float = 0.25,
    weight_decay: float = 1e-3,
    key: str = "",
) -> dict:
    """Fit on the training samples' rows, score on the held-out samples' (module docstring).

    Args:
        x: `[n, d]` rows. y: `[n]` class indices. samples: `[n]` each row's sample (the split's unit).
        key: seeds the split and the bootstrap (the same key, the same split across layers).

    Returns:
        `{"accuracy", "ci", "chance", "n_classes", "n_train", "n_test", "n_train_rows", "n_test_rows", "probe"}`.
    """
    if not (len(x) == len(y) == len(samples)):
        raise ProbeError(f"x, y and samples must have the same rows, got {len(x)}, {len(y)}, {len(samples)}")
    test = split_samples(samples, test_fraction=test_fraction, key=key)
    train = ~test
    n_classes = int(y.max()) + 1
    probe = fit_probe(x[train], y[train], n_classes, weight_decay=weight_decay)
    per_sample = _per_sample_accuracy(probe.predict(x[test]) == y[test], samples[test])
    majority = int(torch.bincount(y[train], minlength=n_classes).argmax())
    chance = _per_sample_accuracy(y[test] == majority, samples[test])
    return {
        "accuracy": sum(per_sample) / len(per_sample),
        "ci": bootstrap_mean_ci(per_sample, key=f"probe/{key}"),
        "chance": sum(chance) / len(chance),
        "n_classes": int(torch.unique(y[train]).numel()),
        "n_train": int(torch.unique(samples[train]).numel()),
        "n_test": len(per_sample),
        "n_train_rows": int(train.sum()),
        "n_test_rows": int(test.sum()),
        "probe": probe,
    }
