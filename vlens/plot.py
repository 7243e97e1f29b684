"""Figures like the study's, in one style, and the markdown report of a run directory.

* global1: LV-K on layers i … L−1 for each first layer i, performance ratio vs i (top axis: the
  fraction of layers knocked);
* global2: one bar per knockout type (all layers), with 95% intervals;
* windows: performance ratio per knockout type vs the window's layers (x−k+1 … x);
* patching: normalised effect, layers × position groups (one heatmap per site/corruption);
* lens: correct-letter probability and top-1 rate per layer, question→frame attention per layer;
* layers: the window knockouts, the patching effect of the video and final position and the lens
  on one shared layer axis (x = layer l: the window ending at l, the residual entering block l).

Every accuracy figure draws chance (a uniform guess over each question's options, as a ratio of
clean accuracy) beside the clean level; intervals are 95% bootstrap bands or error bars; colours
are one per knockout type everywhere (Okabe–Ito, readable in grey and by colour-blind readers);
`format="pdf"|"svg"` gives vector figures with embedded TrueType text for papers.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from vlens.store import load_results, run_key  # noqa: E402

TYPE_COLORS = {"lv": "#D55E00", "vt": "#0072B2", "vs": "#009E73", "all": "#555555"}
TYPE_LABELS = {"lv": "LV-K", "vt": "VT-K", "vs": "VS-K", "all": "LV+VT+VS"}
CLEAN_COLOR, CHANCE_COLOR, PRIOR_COLOR = "#000000", "#888888", "#CC79A7"
FORMATS = ("png", "pdf", "svg")
STYLE = {
    "font.family": "DejaVu Sans", "font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9,
    "legend.fontsize": 8, "legend.frameon": False, "xtick.labelsize": 8, "ytick.labelsize": 8,
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.25,
    "grid.linewidth": 0.5, "lines.linewidth": 1.5, "lines.markersize": 4, "savefig.dpi": 200,
    "savefig.bbox": "tight", "pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none",
}


# data ------------------------------------------------------------------------------------------
def load_summary(out_dir: str | Path) -> tuple[dict, list[dict], dict[str, dict]]:
    """Read a run directory and summarise it per configuration.

    Args:
        out_dir: a directory written by `vlens run`.

    Returns:
        `(settings, records, summary)`: summary maps a configuration name to its n, accuracy,
        ratio, 95% intervals, mean p(correct), logit difference, KL and layers.

    Raises:
        StoreError: `out_dir` is not a run directory.
    """
    from vlens.analysis import summarise  # the analysis layer, between the store and the plots

    settings, records = load_results(out_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = summarise(records, run_key(settings))
    return settings, records, summary


def chance_accuracy(records: Sequence[dict]) -> float | None:
    """Expected accuracy of a uniform guess: the mean of 1 / (number of options) over the samples
    scored clean (the option count is the length of their `letter_logits`).

    Args:
        records: result records of a run.

    Returns:
        The chance accuracy, or None when no clean record has letter logits.
    """
    sizes = [len(r["letter_logits"]) for r in records if r.get("config") == "clean" and r.get("letter_logits")]
    return sum(1 / n for n in sizes) / len(sizes) if sizes else None


def fmt_value(v: float | None, pct: bool = False) -> str:
    """A table cell: `–` for a missing or NaN value, a percentage or 3 decimals otherwise.

    Args:
        v: the value.
        pct: format as a percentage with one decimal.

    Returns:
        The cell text.
    """
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.1%}" if pct else f"{v:.3f}"


def config_label(name: str, layers: Sequence[int] | None) -> str:
    """A configuration's readable name: windows carry their layer range (`windows/lv/4–7`).

    Args:
        name: the stored configuration name (`windows/lv/7` names a window by its last layer).
        layers: the configuration's layers.

    Returns:
        The label; names other than windows are returned as they are.
    """
    if name.startswith("windows/") and layers:
        kind = name.split("/")[1]
        return f"windows/{kind}/{layers[0]}–{layers[-1]}" if len(layers) > 1 else f"windows/{kind}/{layers[0]}"
    return name


def _span(layers: Sequence[int] | None) -> str:
    return "" if not layers else (f"{layers[0]}–{layers[-1]}" if len(layers) > 1 else str(layers[0]))


# figure helpers ---------------------------------------------------------------------------------
def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise ValueError(f"figure path {path} ends in .{fmt}; use one of {', '.join('.' + f for f in FORMATS)}")
    fig.savefig(path, format=fmt, metadata={"Software": None} if fmt == "png" else None)
    plt.close(fig)
    return path


def _ci(rows: Sequence[dict]) -> tuple[list[float], list[float]]:
    return [r["ratio_ci"][0] for r in rows], [r["ratio_ci"][1] for r in rows]


def _yerr(rows: Sequence[dict]) -> list[list[float]]:
    lo = [0.0 if math.isnan(r["ratio"]) or math.isnan(r["ratio_ci"][0]) else max(0.0, r["ratio"] - r["ratio_ci"][0]) for r in rows]
    hi = [0.0 if math.isnan(r["ratio"]) or math.isnan(r["ratio_ci"][1]) else max(0.0, r["ratio_ci"][1] - r["ratio"]) for r in rows]
    return [lo, hi]


def _reference_lines(ax, chance: float | None, clean: float | None) -> None:
    """Clean (ratio 1) and chance (the uniform guess's accuracy over clean accuracy)."""
    ax.axhline(1.0, color=CLEAN_COLOR, lw=0.8, ls=":", label="clean" + (f" ({clean:.0%})" if clean is not None else ""))
    if chance is not None and clean:
        ax.axhline(chance / clean, color=CHANCE_COLOR, lw=1.0, ls="--", label=f"chance ({chance:.0%} accuracy)")


def _integer_layer_axis(ax, ticks: Sequence[int], labels: Sequence[str] | None = None) -> None:
    step = max(1, math.ceil(len(ticks) / 14))  # at most ~14 labels; every layer still has a point
    shown = list(ticks)[::step]
    ax.set_xticks(shown, None if labels is None else list(labels)[::step])
    ax.xaxis.set_minor_locator(matplotlib.ticker.FixedLocator(list(ticks)))


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
        lo, hi = _ci(vals)
        ax.fill_between(x, lo, hi, color=TYPE_COLORS["lv"], alpha=0.18, lw=0, label="95% CI")
        ax.plot(x, [v["ratio"] for v in vals], marker="o", color=TYPE_COLORS["lv"], label="LV-K on layers i … L−1")
        _reference_lines(ax, chance, summary.get("clean", {}).get("accuracy"))
        _integer_layer_axis(ax, x)
        ax.set_xlabel(f"first knocked layer i (of L = {n_layers})")
        ax.set_ylabel("performance ratio (knocked / clean)")
        top = ax.secondary_xaxis("top", functions=(lambda i: (n_layers - i) / n_layers, lambda f: n_layers - f * n_layers))
        top.set_xlabel("fraction of layers knocked", fontsize=8)
        ax.set_title("Global setting 1: LV-K on layers i … L−1")
        ax.legend(loc="best")
        return _save(fig, path)


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
        ax.bar([TYPE_LABELS[n] for n in names], [v["ratio"] for v in vals], yerr=_yerr(vals), capsize=3,
               color=[TYPE_COLORS[n] for n in names], error_kw={"lw": 1}, zorder=2)
        _reference_lines(ax, chance, summary.get("clean", {}).get("accuracy"))
        ax.set_ylabel("performance ratio (knocked / clean)")
        ax.set_title("Global setting 2: one knockout type in all layers")
        ax.grid(axis="x", visible=False)
        ax.legend(ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.1))  # below: error bars reach the top
        return _save(fig, path)


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
    series = {n: sorted((int(k.rsplit("/", 1)[1]), v) for k, v in summary.items() if k.startswith(f"windows/{n}/"))
              for n in ("lv", "vt", "vs")}
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
            spans.update({end: _span(v.get("layers")) or str(end) for end, v in rows})
            lo, hi = _ci(vals)
            ax.fill_between(x, lo, hi, color=TYPE_COLORS[n], alpha=0.15, lw=0)
            ax.plot(x, [v["ratio"] for v in vals], marker="o", color=TYPE_COLORS[n], label=TYPE_LABELS[n])
        _reference_lines(ax, chance, summary.get("clean", {}).get("accuracy"))
        ends = sorted(spans)
        _integer_layer_axis(ax, ends, [spans[e] for e in ends])
        plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
        ax.set_xlabel("layers knocked (a window of " + (f"k = {window} layers" if window else "k layers") + "; shading: 95% CI)")
        ax.set_ylabel("performance ratio (knocked / clean)")
        ax.set_title("Fine-grained: each knockout type in a window of layers")
        ax.legend(ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.38))  # below: the bands fill the axes
        return _save(fig, path)


def plot_patching(name: str, agg: dict, path: Path) -> Path:
    """One activation-patching heatmap: normalised effect per layer (rows) and position group.

    Args:
        name: the configuration (`patching/{site}/{corruption}`), used in the title.
        agg: `{"effect": [layer, group] tensor, "groups", "layers", "n"}`.
        path: output file (.png, .pdf or .svg).

    Returns:
        `path`.
    """
    effect = agg["effect"].numpy()
    with plt.rc_context({**STYLE, "axes.grid": False}):
        fig, ax = plt.subplots(figsize=(1.6 + 0.45 * len(agg["groups"]), 1.3 + 0.28 * len(agg["layers"])))
        im = ax.imshow(effect, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, origin="lower")
        ax.set_xticks(range(len(agg["groups"])), agg["groups"], rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(agg["layers"])), agg["layers"], fontsize=7)
        ax.set_xlabel("position group")
        ax.set_ylabel("layer (patched at its input)" if "resid_pre" in name else "layer")
        ax.set_title(f"{name} (n = {agg['n']})")
        cb = fig.colorbar(im, ax=ax, fraction=0.05)
        cb.set_label("normalised effect (0 = corrupted, 1 = clean)", fontsize=7)
        return _save(fig, path)


def plot_lens(agg: dict, path: Path, *, chance: float | None = None) -> Path:
    """Logit lens at the final position, and question→frame attention, per layer.

    Args:
        agg: `{"labels", "p_correct", "top1", "frame_mass": [layer, frames + 2], "n"}`.
        path: output file (.png, .pdf or .svg).
        chance: chance accuracy, drawn on the top-1 scale.

    Returns:
        `path`.
    """
    with plt.rc_context(STYLE):
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
        x = list(range(len(agg["labels"])))
        a.plot(x, agg["p_correct"].numpy(), marker="o", color=CLEAN_COLOR, label="p(correct letter) among letters")
        a.plot(x, agg["top1"].numpy(), marker="s", color=TYPE_COLORS["vt"], label="correct letter ranked first")
        if chance is not None:
            a.axhline(chance, color=CHANCE_COLOR, ls="--", lw=1, label=f"chance ({chance:.0%})")
        a.set_xticks(x, [lbl.replace("_pre", "") for lbl in agg["labels"]])
        a.set_xlabel("residual stream entering layer l (final = after the last layer)")
        a.set_ylim(0, 1.02)
        a.set_title(f"Logit lens at the final position (n = {agg['n']})")
        a.legend(loc="upper left")
        mass = agg["frame_mass"].numpy()  # [layer, frames + 2]
        F = mass.shape[1] - 2
        im = b.imshow(mass[:, :F].T, aspect="auto", origin="lower", cmap="viridis")
        b.grid(False)
        b.set_xticks(range(mass.shape[0]))
        b.set_yticks(range(F))
        b.set_xlabel("layer")
        b.set_ylabel("frame")
        b.set_title(f"Attention question→frame (mean over heads); to text/other: {mass[:, F + 1].mean():.0%}")
        cb = fig.colorbar(im, ax=b, fraction=0.05)
        cb.set_label("attention mass", fontsize=8)
        return _save(fig, path)


def plot_layer_axis(summary: dict, patching: dict, lens: dict | None, n_layers: int, path: Path, *,
                    chance: float | None = None) -> Path | None:
    """Window knockouts, patching effects and the lens stacked on one shared layer axis.

    Args:
        summary: per-configuration summary (window rows, optional).
        patching: `{name: agg}` as for `plot_patching` (may be empty).
        lens: the lens aggregate as for `plot_lens`, or None.
        n_layers: the model's depth.
        path: output file (.png, .pdf or .svg).
        chance: chance accuracy, drawn as a ratio of clean accuracy in the knockout panel.

    Returns:
        `path`, or None when there is neither patching nor lens to show.
    """
    windows = {n: sorted((int(k.rsplit("/", 1)[1]), v["ratio"]) for k, v in summary.items() if k.startswith(f"windows/{n}/"))
               for n in ("lv", "vt", "vs")}
    if not patching and lens is None:
        return None
    panels = int(any(windows.values())) + int(bool(patching)) + int(lens is not None)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(panels, 1, figsize=(6.5, 2.3 * panels), sharex=True, squeeze=False)
        axes = list(axes[:, 0])
        if any(windows.values()):
            ax = axes.pop(0)
            for n, rows in windows.items():
                if rows:
                    ax.plot([x for x, _ in rows], [y for _, y in rows], marker="o", color=TYPE_COLORS[n], label=TYPE_LABELS[n])
            _reference_lines(ax, chance, summary.get("clean", {}).get("accuracy"))
            ax.set_ylabel("knockout ratio")
            ax.set_title("window knockouts (x = the window's last layer)")
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
        if patching:
            ax = axes.pop(0)
            for name, agg in patching.items():
                for g, style in (("video", "-"), ("final", "--"), ("question", ":")):
                    if g in agg["groups"]:
                        j = agg["groups"].index(g)
                        ax.plot(agg["layers"], agg["effect"][:, j].numpy(), style, marker=".", label=f"{name.split('/', 1)[1]}: {g}")
            ax.set_ylabel("patching effect")
            ax.set_title("activation patching (x = layer whose input is patched)")
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
        if lens is not None:
            ax = axes.pop(0)
            ax.plot(range(len(lens["labels"])), lens["p_correct"].numpy(), marker="o", color=CLEAN_COLOR, label="p(correct letter)")
            ax.plot(range(len(lens["labels"])), lens["top1"].numpy(), marker="s", color=TYPE_COLORS["vt"], label="ranked first")
            ax.set_ylabel("logit lens")
            ax.set_title(f"logit lens (x = residual entering layer x; x = {n_layers}: final)")
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
        _integer_layer_axis(fig.axes[-1], list(range(n_layers + 1)))
        fig.axes[-1].set_xlabel("layer")
        return _save(fig, path)



# map-the-flow's pathways: one colour per pathway (tab10, then navy and maroon: twelve that stay
# apart); dashed once the colours run out. The effective pathway is black, the key roles of the
# attention panels take colours no viridis frame line comes near.
FLOW_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf", "#1a1a6e", "#6e1a1a")
ROLE_COLORS = ("#d62728", "#ff7f0e", "#e377c2", "#8c564b", "#7f7f7f", "#000000", "#1f77b4", "#6e1a1a")


def plot_flow(curves: dict, effective, attention, n_layers: int, path: Path, *, clean_accuracy: float | None = None,
              chance: float | None = None, window: int | None = None) -> Path | None:
    """map-the-flow's knockouts and the attention flow on one shared layer axis.

    Panels (top to bottom, x = layer l): accuracy with each pathway knocked out in the centred
    window around l (no bands: a dozen curves would hide each other; the 95% intervals are in the
    report's table; the effective pathway as a dashed level); map-the-flow's change in
    p(answer) (%, clean-correct samples); then, for each source role, the attention mass to each
    frame (viridis, early → late) and each text role, in layer l.

    Args:
        curves: `{pathway: FlowCurve}` (vlens.analysis.aggregate_flow).
        effective: the effective pathway's FlowPoint, or None.
        attention: AttentionFlowSummary, or None.
        n_layers: the model's depth.
        path: output file (.png, .pdf or .svg).
        clean_accuracy: the clean level of the accuracy panel.
        chance: the chance level of the accuracy panel.
        window: k, for the axis label.

    Returns:
        `path`, or None when there is nothing to draw.
    """
    if not curves and attention is None:
        return None
    n_att = len(attention.sources) if attention is not None else 0
    panels = (2 if curves else 0) + n_att
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(panels, 1, figsize=(7.5, 2.2 * panels + 0.4), sharex=True, squeeze=False)
        axes = list(axes[:, 0])
        if curves:
            acc, dp = axes.pop(0), axes.pop(0)
            for i, (name, c) in enumerate(curves.items()):
                color = FLOW_COLORS[i % len(FLOW_COLORS)]
                ls = "-" if i < len(FLOW_COLORS) else "--"
                pts = c.points  # 95% intervals: in the report's table (bands of a dozen curves hide each other)
                acc.plot(c.centres, [p.accuracy for p in pts], ls, marker=".", color=color, label=name.replace("<-", " ← "))
                dp.plot(c.centres, [p.dp_answer for p in pts], ls, marker=".", color=color)
            if clean_accuracy is not None:
                acc.axhline(clean_accuracy, color=CLEAN_COLOR, lw=0.8, ls=":", label=f"clean ({clean_accuracy:.0%})")
            if chance is not None:
                acc.axhline(chance, color=CHANCE_COLOR, lw=1.0, ls="--", label=f"chance ({chance:.0%})")
            if effective is not None:
                acc.axhline(effective.accuracy, color="#000000", lw=1.4, ls="-.",
                            label=f"effective pathway, all layers ({effective.accuracy:.0%})")
            acc.set_ylabel("accuracy")
            acc.set_ylim(-0.02, 1.02)
            acc.set_title("pathway knocked out in the centred window around layer l" + (f" (k = {window}, clipped)" if window else ""))
            acc.legend(loc="upper left", bbox_to_anchor=(1.01, 1.05), fontsize=7)
            dp.axhline(0, color=CLEAN_COLOR, lw=0.8, ls=":")
            dp.set_ylabel("Δp(answer), %")
            dp.set_title("Δp(answer) over the vocabulary, clean top token = answer (map-the-flow's relative_diff)",
                         fontsize=9)
        if attention is not None:
            frames = [j for j, g in enumerate(attention.groups) if g.startswith("frame ")]
            others = [j for j in range(len(attention.groups)) if j not in frames]
            cmap = plt.get_cmap("viridis")
            x = list(range(attention.mass.shape[0]))
            for s, source in enumerate(attention.sources):
                ax = axes.pop(0)
                for i, j in enumerate(frames):
                    # frames in viridis order, dark (first) to yellow (last); the legend names both ends
                    ends = {0: " (dark)", len(frames) - 1: " (yellow)"} if len(frames) > 1 else {0: ""}
                    ax.plot(x, attention.mass[:, s, j].numpy(), color=cmap(i / max(1, len(frames) - 1)), lw=1.2,
                            label=attention.groups[j] + ends[i] if i in ends else None)
                for i, j in enumerate(others):
                    if float(attention.mass[:, s, j].abs().max()) < 1e-6:
                        continue  # a group this source never reads (a later position)
                    ax.plot(x, attention.mass[:, s, j].numpy(), "--", color=ROLE_COLORS[i % len(ROLE_COLORS)], lw=1.2,
                            label=attention.groups[j])
                ax.set_ylabel("attention mass")
                ax.set_title(f"attention from `{source}` in layer l (mean over heads, n = {attention.n})")
                ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.05), fontsize=7, ncol=1)
        _integer_layer_axis(fig.axes[-1], list(range(n_layers)))
        fig.axes[-1].set_xlabel("layer l (knockouts: the window's centre)")
        return _save(fig, path)
