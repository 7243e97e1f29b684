"""The figure of `vlens run heads`: per spec, the layer × head map of the estimated effect of
knocking out each head alone (every head, from one backward) beside the exact effect of the
heads that were verified.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np

from vlens.figures.style import STYLE, save_figure

if TYPE_CHECKING:
    from vlens.experiments.heads_analysis import HeadsSummary

METRIC_LABELS = {"logit_diff": "Δ logit diff", "p_correct": "Δ p(correct)"}


def plot_heads(summaries: dict[str, HeadsSummary], path: Path, *, metric: str = "logit_diff") -> Path | None:
    """One row per spec: the mean estimated change of `metric` per (layer, head) (left) and the
    mean exact change over the samples that verified each head (right; blank: never verified;
    the number in a cell is how many samples verified it). Each panel has its own symmetric
    colour scale (blue: the knockout lowers the metric): the estimate is read for its ranking,
    a first-order estimate of a large knockout is often smaller than the exact change.

    Args:
        summaries: `vlens.experiments.heads_analysis.summarise_heads(records)`.
        path: output file (.png, .pdf or .svg).
        metric: "logit_diff" or "p_correct".

    Returns:
        `path`, or None when there is nothing to draw.
    """
    if not summaries:
        return None
    rows = list(summaries.values())
    L, H = rows[0].estimate[metric].shape
    label = METRIC_LABELS[metric]
    with plt.rc_context({**STYLE, "axes.grid": False}):
        fig, axes = plt.subplots(
            len(rows),
            2,
            figsize=(2 * (1.9 + 0.32 * H), len(rows) * (1.5 + 0.26 * L)),
            squeeze=False,
            layout="constrained",
        )
        for (ax_est, ax_exact), s in zip(axes, rows):
            est, exact = s.estimate[metric].numpy(), s.exact[metric].numpy()
            for ax, data, title in (
                (ax_est, est, f"{s.spec}: estimated, every head (n = {s.n})"),
                (ax_exact, exact, f"{s.spec}: exact, top {s.top_k} per sample"),
            ):
                finite = data[np.isfinite(data)]
                vmax = float(np.abs(finite).max()) if finite.size and np.abs(finite).max() > 0 else 1.0
                im = ax.imshow(
                    np.ma.masked_invalid(data), aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax, origin="lower"
                )
                ax.set_xticks(range(H), [str(h) for h in range(H)], fontsize=7)
                step = max(1, math.ceil(L / 16))
                ax.set_yticks(range(0, L, step), [str(l) for l in range(0, L, step)], fontsize=7)
                ax.set_xlabel("query head")
                ax.set_ylabel("layer")
                ax.set_title(title, fontsize=8)
                cb = fig.colorbar(im, ax=ax, fraction=0.08)
                cb.set_label(f"{label} (knocked − clean)", fontsize=7)
            if L * H <= 256:  # small maps: how many samples verified each head
                for l in range(L):
                    for h in range(H):
                        if int(s.n_verified[l, h]):
                            ax_exact.text(h, l, str(int(s.n_verified[l, h])), ha="center", va="center", fontsize=5)
        return save_figure(fig, path)
