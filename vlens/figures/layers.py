"""Per-layer figures beside the knockouts: activation patching, the logit lens, and all of them on
one shared layer axis.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt

if TYPE_CHECKING:
    from vlens.experiments.analysis import ConfigSummary, LensSummary, PatchingSummary

from vlens.figures.style import (
    CHANCE_COLOR,
    CLEAN_COLOR,
    STYLE,
    TYPE_COLORS,
    TYPE_LABELS,
    integer_layer_axis,
    reference_lines,
    save_figure,
)


def plot_patching(name: str, agg: PatchingSummary, path: Path) -> Path:
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
        return save_figure(fig, path)


def plot_lens(agg: LensSummary, path: Path, *, chance: float | None = None) -> Path:
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
        return save_figure(fig, path)


def plot_layer_axis(
    summary: dict[str, ConfigSummary],
    patching: dict[str, PatchingSummary],
    lens: LensSummary | None,
    n_layers: int,
    path: Path,
    *,
    chance: float | None = None,
) -> Path | None:
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
    windows = {
        n: sorted((int(k.rsplit("/", 1)[1]), v["ratio"]) for k, v in summary.items() if k.startswith(f"windows/{n}/"))
        for n in ("lv", "vt", "vs")
    }
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
                    ax.plot(
                        [x for x, _ in rows],
                        [y for _, y in rows],
                        marker="o",
                        color=TYPE_COLORS[n],
                        label=TYPE_LABELS[n],
                    )
            reference_lines(ax, chance, summary.get("clean", {}).get("accuracy"))
            ax.set_ylabel("knockout ratio")
            ax.set_title("window knockouts (x = the window's last layer)")
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
        if patching:
            ax = axes.pop(0)
            for name, agg in patching.items():
                for g, style in (("video", "-"), ("final", "--"), ("question", ":")):
                    if g in agg["groups"]:
                        j = agg["groups"].index(g)
                        ax.plot(
                            agg["layers"],
                            agg["effect"][:, j].numpy(),
                            style,
                            marker=".",
                            label=f"{name.split('/', 1)[1]}: {g}",
                        )
            ax.set_ylabel("patching effect")
            ax.set_title("activation patching (x = layer whose input is patched)")
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
        if lens is not None:
            ax = axes.pop(0)
            ax.plot(
                range(len(lens["labels"])),
                lens["p_correct"].numpy(),
                marker="o",
                color=CLEAN_COLOR,
                label="p(correct letter)",
            )
            ax.plot(
                range(len(lens["labels"])),
                lens["top1"].numpy(),
                marker="s",
                color=TYPE_COLORS["vt"],
                label="ranked first",
            )
            ax.set_ylabel("logit lens")
            ax.set_title(f"logit lens (x = residual entering layer x; x = {n_layers}: final)")
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
        integer_layer_axis(fig.axes[-1], list(range(n_layers + 1)))
        fig.axes[-1].set_xlabel("layer")
        return save_figure(fig, path)
