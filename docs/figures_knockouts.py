"""Draw docs/img/knockout_masks.png: each knockout's removed edges on a small layout.

python docs/figures_knockouts.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from vlens import knockout as ko
from vlens.inputs.layout import VideoLayout, VisionToken

# 2 system tokens, 3 frames × 2×2 video tokens, 1 separator, 4 question tokens
tokens = [VisionToken("video", f, r, c) for f in range(3) for r in range(2) for c in range(2)] + [
    VisionToken("separator")
]
is_vision = torch.tensor([False] * 2 + [True] * len(tokens) + [False] * 4)
layout = VideoLayout.build(is_vision, tokens)
colors = {"system": "#bbbbbb", "video": None, "separator": "#8c564b", "text": "#1f77b4"}
frame_colors = ["#2ca02c", "#ff7f0e", "#9467bd"]


def seg_color(i):
    s = layout.segment[i]
    return frame_colors[int(layout.frame[i])] if s == "video" else colors[s]


specs = [("LV-K", ko.LV()), ("VT-K", ko.VT()), ("VS-K", ko.VS()), ("LV | VT | VS", ko.LV() | ko.VT() | ko.VS())]
n = len(layout)
fig, axes = plt.subplots(1, len(specs), figsize=(4 * len(specs), 4.4))
for ax, (title, spec) in zip(axes, specs):
    blocked = spec.blocked(layout).numpy()
    img = np.ones((n, n, 3))
    causal = np.tril(np.ones((n, n), dtype=bool))
    img[causal] = (0.85, 0.92, 1.0)  # kept edges
    img[blocked] = (0.85, 0.1, 0.1)  # removed edges
    ax.imshow(img, interpolation="nearest")
    for i in range(n):
        c = seg_color(i)
        ax.add_patch(plt.Rectangle((-1.6, i - 0.5), 1, 1, color=c, clip_on=False))
        ax.add_patch(plt.Rectangle((i - 0.5, n - 0.4), 1, 1, color=c, clip_on=False))
    ax.set_title(f"{title}: {int(blocked.sum())} edges removed")
    ax.set_xlabel("key position", labelpad=14)
    ax.set_ylabel("query position", labelpad=14)
    ax.set_xticks([])
    ax.set_yticks([])
fig.text(
    0.5,
    0.01,
    "strip colours: grey system, green/orange/purple frames 0–2, brown separator, blue question text; "
    "light blue = causal edge kept, red = removed",
    ha="center",
    fontsize=9,
)
out = Path(__file__).parent / "img" / "knockout_masks.png"
fig.tight_layout(rect=(0, 0.04, 1, 1))
fig.savefig(out, dpi=110)
print("wrote", out)
