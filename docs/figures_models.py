"""Draw docs/img/layouts.png: the sequence layout of every supported family on a 4-frame clip.

    python docs/figures_models.py                  # every family -> docs/img/layouts.png
    python docs/figures_models.py perception-lm    # some families -> docs/img/layouts-perception-lm.png

Each family's tiny random checkpoint (vlens.testing) is built and loaded like a user would; the
strip shows, position by position, what its processor put in the sequence: system/text, each
frame's video tokens (one colour per frame), separators (image_newline) and markers (template
text around or between frames).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch

from vlens import HookedVideoLLM, testing

BUILDERS = {
    "llava-onevision": (testing.make_tiny_onevision, {}),
    "llava-next-video": (testing.make_tiny_llava_next_video, {}),
    "video-llava": (testing.make_tiny_video_llava, {}),
    "qwen2.5-vl": (testing.make_tiny_qwen2_5_vl, {"fps": 2.0}),
}
if hasattr(testing, "make_tiny_internvl"):
    BUILDERS["internvl"] = (testing.make_tiny_internvl, {})
BUILDERS.update(
    {
        "qwen2-vl": (testing.make_tiny_qwen2_vl, {}),
        "qwen3-vl": (testing.make_tiny_qwen3_vl, {"fps": 2.0}),
        "smolvlm2": (testing.make_tiny_smolvlm, {"fps": 2.0}),
        "videollama3": (testing.make_tiny_video_llama3, {"fps": 2.0}),
        "glm4v": (testing.make_tiny_glm4v, {"fps": 2.0}),
        "perception-lm": (testing.make_tiny_perception_lm, {}),  # needs timm
    }
)


def static_clip(n_frames: int) -> np.ndarray:
    """A still 32×32 scene in which one 8×8 patch changes every frame: what VideoLLaMA3's token
    compression prunes (its own picture shows the kept tokens only)."""
    rng = np.random.default_rng(0)
    clip = np.repeat(rng.integers(0, 256, size=(1, 32, 32, 3), dtype=np.uint8), n_frames, axis=0)
    for f in range(1, n_frames):
        r, c = divmod(3 * f, 4)
        clip[f:, 8 * r : 8 * r + 8, 8 * c : 8 * c + 8] = rng.integers(0, 256, size=(8, 8, 3))
    return clip


COLORS = {"system": "#dddddd", "text": "#999999", "separator": "#000000", "marker": "#ff7f0e", "pad": "#ffffff"}
FRAME_COLORS = ["#1f77b4", "#2ca02c", "#9467bd", "#d62728"]


def main(out: Path | None = None, n_frames: int = 4, families: list[str] | None = None) -> Path:
    chosen = {name: BUILDERS[name] for name in families} if families else BUILDERS
    if out is None:
        out = Path(__file__).parent / "img" / ("layouts.png" if not families else f"layouts-{'-'.join(families)}.png")
    clip = np.random.default_rng(0).integers(0, 256, size=(n_frames, 32, 32, 3), dtype=np.uint8)
    if families == ["videollama3"]:  # its own picture: what token compression prunes
        clip = static_clip(n_frames)
    fig, axes = plt.subplots(len(chosen), 1, figsize=(11, 0.9 * len(chosen) + 0.8), squeeze=False)
    with tempfile.TemporaryDirectory() as tmp:
        for ax, (name, (build, kwargs)) in zip(axes[:, 0], chosen.items()):
            model = HookedVideoLLM.from_pretrained(build(Path(tmp) / name, n_layers=1))
            lay = model.to_inputs(clip, "what color is the object", n_frames=n_frames, **kwargs).layout
            colors = [
                FRAME_COLORS[int(f) % len(FRAME_COLORS)] if s == "video" else COLORS[s]
                for s, f in zip(lay.segment, lay.frame.tolist())
            ]
            ax.bar(range(len(lay)), 1, width=1.0, color=colors, edgecolor="none")
            ax.set_xlim(-0.5, len(lay) - 0.5)
            ax.set_yticks([])
            c = lay.counts()
            extra = f", {lay.frames_per_group} frames per temporal group" if lay.frames_per_group > 1 else ""
            ax.set_title(
                f"{name}: {len(lay)} positions, {c.get('video', 0)} video, {c.get('separator', 0)} separator, "
                f"{c.get('marker', 0)} marker{extra}",
                fontsize=9,
                loc="left",
            )
    what = "a still 32×32 clip with one patch changing a frame" if families == ["videollama3"] else "a 32×32 clip"
    axes[-1, 0].set_xlabel(f"position ({n_frames} frames, {what}, tiny configs)")
    handles = [Patch(color=FRAME_COLORS[i], label=f"video, frame/group {i}") for i in range(len(FRAME_COLORS))]
    handles += [Patch(color=COLORS[s], label=s) for s in ("system", "text", "separator", "marker")]
    fig.legend(handles=handles, loc="lower center", ncol=8, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    import sys

    print(main(families=sys.argv[1:] or None))
