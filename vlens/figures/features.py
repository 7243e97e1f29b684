"""One feature as a picture: its top samples' frames with the activation over their patches."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np

from vlens.figures.style import STYLE, save_figure

if TYPE_CHECKING:
    from vlens.features.feature_views import FeatureView


def _lens_line(view: FeatureView, n: int = 6) -> str:
    if view.lens is None:
        return view.lens_note
    top = ", ".join(repr(t) for t in view.lens.top_tokens[:n])
    bottom = ", ".join(repr(t) for t in view.lens.bottom_tokens[:n])
    how = "ln_final + unembed" if view.lens.norm.startswith("unembed(ln_final") else "unembed alone"
    return f"logit lens ({how}): promotes {top}; suppresses {bottom}"


def plot_feature(view: FeatureView, path: str | Path, *, max_samples: int = 4, max_frames: int = 8) -> Path:
    """The top samples of `view` (one row each) × their frames (one column each): the frame image
    under the feature's activation at each patch (no image: the heatmap alone, titled with the
    frame index), one colour scale for the figure; the title gives the density and the logit lens.

    Args:
        view: from `vlens.features.feature_views.feature_views`.
        path: output file (.png, .pdf or .svg).
        max_samples: top samples drawn.
        max_frames: frames drawn per sample (evenly spaced when the clip has more).

    Returns:
        `path`.

    Raises:
        ValueError: a view without top samples or without video patches in the store.
    """
    shown = [t for t in view.top[:max_samples] if t.heatmap is not None]
    if not shown:
        raise ValueError(
            f"feature {view.feature}: no top sample has video patches in the store; cache the hook at "
            "--positions video to draw it over the frames"
        )
    n_frames = max(int(t.heatmap.shape[0]) for t in shown if t.heatmap is not None)
    cols = min(n_frames, max_frames)
    picks = np.unique(np.linspace(0, n_frames - 1, cols).round().astype(int))
    values = np.concatenate([t.heatmap.numpy().ravel() for t in shown if t.heatmap is not None])
    values = values[~np.isnan(values)]
    vmax = float(values.max()) if values.size else 1.0
    vmin = min(0.0, float(values.min())) if values.size else 0.0
    vmax = vmax if vmax > vmin else vmin + 1.0
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            len(shown), len(picks), figsize=(1.25 * len(picks) + 1.2, 1.35 * len(shown) + 0.9), squeeze=False
        )
        image = None
        for r, t in enumerate(shown):
            assert t.heatmap is not None
            heat = t.heatmap.numpy()
            for c, f in enumerate(picks):
                ax = axes[r, c]
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                if f >= heat.shape[0]:
                    ax.axis("off")
                    continue
                rows, cols_ = heat.shape[1:]
                extent = (0.0, float(cols_), float(rows), 0.0)
                frame = t.frame_images[f] if t.frame_images is not None and f < len(t.frame_images) else None
                if frame is not None:
                    ax.imshow(frame, extent=extent, interpolation="bilinear")
                image = ax.imshow(
                    np.ma.masked_invalid(heat[f]),
                    extent=extent,
                    cmap="magma",
                    vmin=vmin,
                    vmax=vmax,
                    alpha=0.6 if frame is not None else 1.0,
                    interpolation="nearest",
                )
                if r == 0 or frame is None:
                    ax.set_title(f"frame {f}", fontsize=7)
                if c == 0:
                    answer = t.labels.get("answer_text")
                    label = f"{t.id}\nmax {t.activation:.3g}" + (f"\nanswer: {answer}" if answer else "")
                    ax.set_ylabel(label, fontsize=7)
        title = (
            f"feature {view.feature} at {view.hook}: fires at {view.density:.2%} of "
            f"{view.n_rows:,} stored positions; top {len(shown)} samples by their peak"
        )
        fig.suptitle(title + "\n" + _lens_line(view), fontsize=8)
        if image is not None:
            fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="activation")
        return save_figure(fig, path)
