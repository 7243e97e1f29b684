"""Fitting one linear probe on tensors: softmax regression with an L2 penalty (L-BFGS from zeros),
cross-validated by sample, and the score with its bootstrap interval. `vlens.features.probes`
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


def assign_folds(samples: Int[Tensor, " n"], folds: int = 4, *, key: str = "") -> Int[Tensor, " n"]:
    """`[n]` the fold (0..folds-1) of each row: the distinct samples, in a seeded order, dealt
    round-robin into `folds` folds (sizes differ by at most one; every row of a sample in its
    sample's fold), the same for the same `key`.

    Raises:
        ProbeError: folds < 2, or fewer distinct samples than folds.
    """
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ProbeError(
            f"folds={folds!r} must be an integer >= 2 (each sample is scored by a probe fitted without it)"
        )
    ids, inverse = torch.unique(samples, return_inverse=True)
    if len(ids) < folds:
        raise ProbeError(
            f"a {folds}-fold probe needs at least {folds} samples with the label, got {len(ids)}; "
            "cache more samples or pass fewer folds"
        )
    gen = torch.Generator().manual_seed(seed_from(key) % (2**63))
    fold_of_id = torch.empty(len(ids), dtype=torch.long)
    fold_of_id[torch.randperm(len(ids), generator=gen)] = torch.arange(len(ids)) % folds
    return fold_of_id[inverse]


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
    folds: int = 4,
    weight_decay: float = 1e-3,
    key: str = "",
) -> dict:
    """Cross-validated by sample: for each fold, a probe fitted on the other folds' rows scores
    this fold's, so every sample is scored once by a probe that never saw it (module docstring).

    Args:
        x: `[n, d]` rows. y: `[n]` class indices. samples: `[n]` each row's sample (the folds' unit).
        folds: the number of folds. weight_decay: the L2 penalty.
        key: seeds the folds and the bootstrap (the same key, the same folds across layers).

    Returns:
        `{"accuracy", "ci", "chance", "n_classes", "n_samples", "n_rows", "probes"}` (`probes`:
        the fitted probe of each fold).

    Raises:
        ProbeError: rows that do not line up, one class only, or too few samples for the folds.
    """
    if not (len(x) == len(y) == len(samples)):
        raise ProbeError(f"x, y and samples must have the same rows, got {len(x)}, {len(y)}, {len(samples)}")
    if torch.unique(y).numel() < 2:
        raise ProbeError(
            f"every row has the same class ({int(y[0]) if len(y) else 'no rows'}): a probe would score 100% and mean "
            "nothing; probe a label with two or more classes in the rows probed"
        )
    fold = assign_folds(samples, folds, key=key)
    n_classes = int(y.max()) + 1
    correct = torch.zeros(len(y), dtype=torch.bool)
    guess = torch.zeros(len(y), dtype=torch.bool)
    probes = []
    for f in range(folds):
        test = fold == f
        train = ~test
        probe = fit_probe(x[train], y[train], n_classes, weight_decay=weight_decay)
        correct[test] = probe.predict(x[test]) == y[test]
        guess[test] = y[test] == int(torch.bincount(y[train], minlength=n_classes).argmax())
        probes.append(probe)
    per_sample = _per_sample_accuracy(correct, samples)
    chance = _per_sample_accuracy(guess, samples)
    return {
        "accuracy": sum(per_sample) / len(per_sample),
        "ci": bootstrap_mean_ci(per_sample, key=f"probe/{key}"),
        "chance": sum(chance) / len(chance),
        "n_classes": int(torch.unique(y).numel()),
        "n_samples": len(per_sample),
        "n_rows": len(y),
        "probes": probes,
    }
