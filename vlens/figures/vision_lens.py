"""The vision positions' logit lens as a figure: tower layers through the projector, then LM layers.

    plot_vision_lens(tower_lens(model, inputs), vision_token_lens(model, inputs), model.tokenizer, "lens.png")

One row per layer — the tower's blocks (each through the rest of the vision path), then the
residual stream entering each LM block and after the last — and one column per vision position of
the chosen frames; each cell is coloured by the top-1 token's probability and labelled with the
token (when there are few enough columns to read). A side panel shows the share of positions whose
top-1 token already equals the last layer's of its part, tower or LM (`VisionLensResult.agreement`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from vlens.figures.style import STYLE, TYPE_COLORS, save_figure

MAX_LABELLED_COLUMNS = 40  # beyond this the words are unreadable: colour only


def plot_vision_lens(
    tower,
    lm,
    tokenizer,
    path: str | Path,
    *,
    frames: Sequence[int] | None = None,
    title: str = "Logit lens of the vision positions",
) -> Path:
    """Draw the top-1 token of every vision position per layer (tower, then LM).

    Args:
        tower: `tower_lens(...)`'s `VisionLensResult` (or None to draw the LM only).
        lm: `vision_token_lens(...)`'s `VisionLensResult` (the same inputs and row).
        tokenizer: decodes the token ids (`model.tokenizer`).
        path: output file (.png, .pdf or .svg).
        frames: the frames whose positions to draw (default: the first; −1 selects separators).

    Returns:
        `path`.

    Raises:
        ValueError: the two results cover different positions, or the frames select none.
    """
    if tower is not None and not torch.equal(tower.positions, lm.positions):
        raise ValueError("tower and lm lens results cover different positions: compute both on the same inputs and row")
    chosen = [int(lm.frame[lm.frame >= 0].min())] if frames is None else list(frames)
    cols = torch.isin(lm.frame, torch.tensor(chosen)).nonzero().flatten()
    if not len(cols):
        raise ValueError(
            f"frames={chosen} select no vision position (frames present: {sorted(set(lm.frame.tolist()))})"
        )
    parts = [r for r in (tower, lm) if r is not None]
    ids = torch.cat([r.top_ids[:, cols, 0] for r in parts])
    probs = torch.cat([r.top_probs[:, cols, 0] for r in parts])
    labels = [lbl for r in parts for lbl in r.labels]
    agree = torch.cat([r.agreement() for r in parts])
    with plt.rc_context(STYLE):
        width = min(14.0, 3.0 + 0.42 * len(cols))
        fig, (a, b) = plt.subplots(
            1, 2, figsize=(width + 2.2, 1.0 + 0.36 * len(labels)), gridspec_kw={"width_ratios": [width, 2.2]}
        )
        im = a.imshow(probs.numpy(), aspect="auto", cmap="Blues", vmin=0, vmax=1, origin="lower")
        a.grid(False)
        if len(cols) <= MAX_LABELLED_COLUMNS:
            for r in range(ids.shape[0]):
                for c in range(ids.shape[1]):
                    word = tokenizer.decode([int(ids[r, c])]).strip()[:8] or "␣"
                    a.text(
                        c,
                        r,
                        word,
                        ha="center",
                        va="center",
                        fontsize=5.5,
                        color="white" if probs[r, c] > 0.6 else "black",
                    )
        a.set_yticks(range(len(labels)), [lbl.replace("_pre", "") for lbl in labels])
        a.set_xticks(range(len(cols)), [str(int(p)) for p in lm.positions[cols]], rotation=90, fontsize=6)
        a.set_xlabel(f"sequence position (frames {chosen})")
        a.set_ylabel("layer (tower blocks, then LM)")
        if tower is not None:
            a.axhline(len(tower.labels) - 0.5, color=TYPE_COLORS["lv"], lw=1.2)
        a.set_title(title)
        cb = fig.colorbar(im, ax=a, fraction=0.03)
        cb.set_label("p(top-1 token)", fontsize=8)
        start = 0
        for r, color in zip(parts, [TYPE_COLORS["lv"], TYPE_COLORS["vt"]][-len(parts) :]):
            n = len(r.labels)  # one line per part: each agrees with its own last layer
            b.plot(agree[start : start + n].numpy(), range(start, start + n), marker="o", color=color)
            start += n
        b.set_xlim(0, 1.02)
        b.set_ylim(-0.5, len(labels) - 0.5)
        b.set_yticks([])
        b.set_xlabel("top-1 = last layer's")
        return save_figure(fig, path)
