"""The figure of `vlens run flow`: map-the-flow's pathways per window centre, the effective
pathway, and the attention from `last` and `question` to every frame and role.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from vlens.figures.style import (
    CHANCE_COLOR,
    CLEAN_COLOR,
    STYLE,
    integer_layer_axis,
    save_figure,
)

# map-the-flow's pathways: one colour per pathway (tab10, then navy and maroon: twelve that stay
# apart); dashed once the colours run out. The effective pathway is black, the key roles of the
# attention panels take colours no viridis frame line comes near.
FLOW_COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#1a1a6e",
    "#6e1a1a",
)


ROLE_COLORS = ("#d62728", "#ff7f0e", "#e377c2", "#8c564b", "#7f7f7f", "#000000", "#1f77b4", "#6e1a1a")


def plot_flow(
    curves: dict,
    effective,
    attention,
    n_layers: int,
    path: Path,
    *,
    clean_accuracy: float | None = None,
    chance: float | None = None,
    window: int | None = None,
) -> Path | None:
    """map-the-flow's knockouts and the attention flow on one shared layer axis.

    Panels (top to bottom, x = layer l): accuracy with each pathway knocked out in the centred
    window around l (no bands: a dozen curves would hide each other; the 95% intervals are in the
    report's table; the effective pathway as a dashed level); map-the-flow's change in
    p(answer) (%, clean-correct samples); then, for each source role, the attention mass to each
    frame (viridis, early → late) and each text role, in layer l.

    Args:
        curves: `{pathway: FlowCurve}` (vlens.experiments.analysis.aggregate_flow).
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
                acc.plot(
                    c.centres, [p.accuracy for p in pts], ls, marker=".", color=color, label=name.replace("<-", " ← ")
                )
                dp.plot(c.centres, [p.dp_answer for p in pts], ls, marker=".", color=color)
            if clean_accuracy is not None:
                acc.axhline(clean_accuracy, color=CLEAN_COLOR, lw=0.8, ls=":", label=f"clean ({clean_accuracy:.0%})")
            if chance is not None:
                acc.axhline(chance, color=CHANCE_COLOR, lw=1.0, ls="--", label=f"chance ({chance:.0%})")
            if effective is not None:
                acc.axhline(
                    effective.accuracy,
                    color="#000000",
                    lw=1.4,
                    ls="-.",
                    label=f"effective pathway, all layers ({effective.accuracy:.0%})",
                )
            acc.set_ylabel("accuracy")
            acc.set_ylim(-0.02, 1.02)
            acc.set_title(
                "pathway knocked out in the centred window around layer l"
                + (f" (k = {window}, clipped)" if window else "")
            )
            acc.legend(loc="upper left", bbox_to_anchor=(1.01, 1.05), fontsize=7)
            dp.axhline(0, color=CLEAN_COLOR, lw=0.8, ls=":")
            dp.set_ylabel("Δp(answer), %")
            dp.set_title(
                "Δp(answer) over the vocabulary, clean top token = answer (map-the-flow's relative_diff)", fontsize=9
            )
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
                    ax.plot(
                        x,
                        attention.mass[:, s, j].numpy(),
                        color=cmap(i / max(1, len(frames) - 1)),
                        lw=1.2,
                        label=attention.groups[j] + ends[i] if i in ends else None,
                    )
                for i, j in enumerate(others):
                    if float(attention.mass[:, s, j].abs().max()) < 1e-6:
                        continue  # a group this source never reads (a later position)
                    ax.plot(
                        x,
                        attention.mass[:, s, j].numpy(),
                        "--",
                        color=ROLE_COLORS[i % len(ROLE_COLORS)],
                        lw=1.2,
                        label=attention.groups[j],
                    )
                ax.set_ylabel("attention mass")
                ax.set_title(f"attention from `{source}` in layer l (mean over heads, n = {attention.n})")
                ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.05), fontsize=7, ncol=1)
        integer_layer_axis(fig.axes[-1], list(range(n_layers)))
        fig.axes[-1].set_xlabel("layer l (knockouts: the window's centre)")
        return save_figure(fig, path)
