"""Probe accuracy per layer: one line per (label, position group), its bootstrap band, its chance."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt

from vlens.figures.style import STYLE, integer_layer_axis, save_figure

if TYPE_CHECKING:
    from vlens.features.probes import ProbeResult

# Okabe-Ito: distinguishable in colour-blind vision, as the knockout colours
LINE_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")


def _line_name(r: ProbeResult) -> str:
    return f"{r.label} @ {r.group}" + (f" (mean per {r.pool})" if r.pool else "")


def plot_probes(results: Sequence[ProbeResult], path: str | Path, *, title: str | None = None) -> Path:
    """Held-out probe accuracy against layer: a line with its 95% band per (label, group, pool),
    and that line's chance (the most common training class) dotted in the same colour.

    Args:
        results: from `vlens.features.probes.probe_store` (hooks outside the blocks are placed
            before layer 0 in the order given).
        path: output file (.png, .pdf or .svg).
        title: the figure's title (default: the number of test samples).

    Returns:
        `path`.

    Raises:
        ValueError: no results.
    """
    if not results:
        raise ValueError("plot_probes got no results; run vlens.features.probes.probe_store first")
    lines: dict[str, list[ProbeResult]] = {}
    for r in results:
        lines.setdefault(_line_name(r), []).append(r)
    extra = list(dict.fromkeys(r.hook for r in results if r.layer is None))
    layers = sorted({r.layer for r in results if r.layer is not None})
    x_of = {h: i - len(extra) for i, h in enumerate(extra)}
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 3.4))
        for k, (name, rows) in enumerate(lines.items()):
            color = LINE_COLORS[k % len(LINE_COLORS)]
            rows = sorted(rows, key=lambda r: x_of[r.hook] if r.layer is None else r.layer)
            x = [x_of[r.hook] if r.layer is None else r.layer for r in rows]
            ax.plot(x, [r.accuracy for r in rows], marker="o", color=color, label=f"{name} (n = {rows[0].n_samples})")
            ax.fill_between(x, [r.ci[0] for r in rows], [r.ci[1] for r in rows], color=color, alpha=0.15, lw=0)
            ax.plot(x, [r.chance for r in rows], color=color, ls=":", lw=1)
        ticks = [x_of[h] for h in extra] + layers
        integer_layer_axis(ax, ticks, [h.removeprefix("hook_") for h in extra] + [str(v) for v in layers])
        suffixes = {r.hook.split(".", 2)[2] for r in results if r.layer is not None}
        ax.set_xlabel(f"layer l (blocks.l.{suffixes.pop()})" if len(suffixes) == 1 else "layer")
        ax.set_ylabel("held-out accuracy")
        ax.set_ylim(0, 1.02)
        ax.set_title(title or "Linear probes per layer (dotted: the most common class; band: 95% bootstrap)")
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
        return save_figure(fig, path)
