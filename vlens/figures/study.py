"""The study's figures: global setting 1 (LV-K on layers ≥ i), global setting 2 (each knockout in
all layers) and the windows of k consecutive layers.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from vlens.figures.style import (
    STYLE,
    TYPE_COLORS,
    TYPE_LABELS,
    ci_bounds,
    integer_layer_axis,
    layer_span,
    reference_lines,
    save_figure,
    yerr,
)


# figures ---------------------------------------------------------------------------------------
def plot_global1(summary: dict, n_layers: int, path: Path, *, chance: float | None = None) -> Path | None:
    """Global setting 1: LV-K on layers i … L−1, performance ratio vs the first knocked layer i.

    Args:
        summary: per-configuration summary (`load_summary`); reads `global1/from{i}`.
        n_layers: the model's depth L (the top axis shows the fraction (L − i) / L knocked).
        path: output file; its suffix (.png, .pdf, .svg) is the format.
        chance: chance accuracy, drawn as a ratio of clean accuracy.

    Returns:
        `path`, or None when the summary has no global1 rows.
    """
    rows = sorted((int(k.split("from")[1]), v) for k, v in summary.items() if k.startswith("global1/"))
    if not rows:
        return None
    x = [i for i, _ in rows]
    vals = [v for _, v in rows]
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(5, 3.4))
        lo, hi = ci_bounds(vals)
        ax.fill_between(x, lo, hi, color=TYPE_COLORS["lv"], alpha=0.18, lw=0, label="95% CI")
        ax.plot(x, [v["ratio"] for v in vals], marker="o", color=TYPE_COLORS["lv"], label="LV-K on layers i … L−1")
        reference_lines(ax, chance, summary.get("clean", {}).get("accuracy"))
        integer_layer_axis(ax, x)
        ax.set_xlabel(f"first knocked layer i (of L = {n_layers})")
        ax.set_ylabel("performance ratio (knocked / clean)")
        top = ax.secondary_xaxis(
            "top",
            # matplotlib's stub types these callables over ArrayLike (str, bytes...); they get arrays
            functions=(lambda i: (n_layers - i) / n_layers, lambda f: n_layers - f * n_layers),  # pyright: ignore[reportOperatorIssue]
        )
        top.set_xlabel("fraction of layers knocked", fontsize=8)
        ax.set_title("Global setting 1: LV-K on layers i … L−1")
        ax.legend(loc="best")
        return save_figure(fig, path)


def plot_global2(summary: dict, path: Path, *, chance: float | None = None) -> Path | None:
    """Global setting 2: one bar per knockout type in all layers, with 95% intervals.

    Args:
        summary: per-configuration summary; reads `global2/{lv,vt,vs,all}`.
        path: output file (.png, .pdf or .svg).
        chance: chance accuracy, drawn as a ratio of clean accuracy.

    Returns:
        `path`, or None when the summary has no global2 rows.
    """
    names = [n for n in ("lv", "vt", "vs", "all") if f"global2/{n}" in summary]
    if not names:
        return None
    vals = [summary[f"global2/{n}"] for n in names]
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(4.6, 3.4))
        ax.bar(
            [TYPE_LABELS[n] for n in names],
            [v["ratio"] for v in vals],
            yerr=yerr(vals),
            capsize=3,
            color=[TYPE_COLORS[n] for n in names],
            error_kw={"lw": 1},
            zorder=2,
        )
        reference_lines(ax, chance, summary.get("clean", {}).get("accuracy"))
        ax.set_ylabel("performance ratio (knocked / clean)")
        ax.set_title("Global setting 2: one knockout type in all layers")
        ax.grid(axis="x", visible=False)
        ax.legend(ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.1))  # below: error bars reach the top
        return save_figure(fig, path)


def plot_windows(summary: dict, path: Path, window: int | None = None, *, chance: float | None = None) -> Path | None:
    """Each knockout type in every window of k consecutive layers.

    Args:
        summary: per-configuration summary; reads `windows/{lv,vt,vs}/{x}` (x = the window's last layer).
        path: output file (.png, .pdf or .svg).
        window: k, for the axis label (the tick labels come from each row's layers).
        chance: chance accuracy, drawn as a ratio of clean accuracy.

    Returns:
        `path`, or None when the summary has no window rows.
    """
    series = {
        n: sorted((int(k.rsplit("/", 1)[1]), v) for k, v in summary.items() if k.startswith(f"windows/{n}/"))
        for n in ("lv", "vt", "vs")
    }
    if not any(series.values()):
        return None
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6, 3.4))
        spans: dict[int, str] = {}
        for n, rows in series.items():
            if not rows:
                continue
            x = [end for end, _ in rows]
            vals = [v for _, v in rows]
            spans.update({end: layer_span(v.get("layers")) or str(end) for end, v in rows})
            lo, hi = ci_bounds(vals)
            ax.fill_between(x, lo, hi, color=TYPE_COLORS[n], alpha=0.15, lw=0)
            ax.plot(x, [v["ratio"] for v in vals], marker="o", color=TYPE_COLORS[n], label=TYPE_LABELS[n])
        reference_lines(ax, chance, summary.get("clean", {}).get("accuracy"))
        ends = sorted(spans)
        integer_layer_axis(ax, ends, [spans[e] for e in ends])
        plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
        ax.set_xlabel(
            "layers knocked (a window of " + (f"k = {window} layers" if window else "k layers") + "; shading: 95% CI)"
        )
        ax.set_ylabel("performance ratio (knocked / clean)")
        ax.set_title("Fine-grained: each knockout type in a window of layers")
        ax.legend(ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.38))  # below: the bands fill the axes
        return save_figure(fig, path)
