"""VideoLLaMA3's layout on a tiny random checkpoint: per-frame "Time t s:" markers, and the
tokens its processor prunes from frames that barely change.

VideoLLaMA3's video processor drops every token of frame f > 0 whose pixels hardly differ from
frame f−1 (differential frame pruning), so a still scene's later frames hold only the patches that
moved. The layout follows the processor's `video_compression_mask` token by token; knockouts then
act on the kept tokens only.

    python examples/13_videollama3_timestamps_pruning.py      # a few seconds on a CPU, no downloads

With a real checkpoint, replace the builder with its directory:
    model = HookedVideoLLM.from_pretrained("/data/VideoLLaMA3-7B-Image-HF", dtype="bfloat16", device="cuda")
"""

import tempfile
from pathlib import Path

import numpy as np
import torch

from vlens import HookedVideoLLM
from vlens import knockout as ko
from vlens.testing import make_tiny_video_llama3

path = make_tiny_video_llama3(Path(tempfile.mkdtemp(prefix="vlens-videollama3-")) / "ckpt", n_layers=3)
model = HookedVideoLLM.from_pretrained(path)

# a still 32×32 scene; in frame f one 8×8 patch (one token) changes
rng = np.random.default_rng(0)
clip = np.repeat(rng.integers(0, 256, size=(1, 32, 32, 3), dtype=np.uint8), 4, axis=0)
for f, (r, c) in {1: (0, 3), 2: (1, 2), 3: (2, 1)}.items():
    clip[f:, 8 * r : 8 * r + 8, 8 * c : 8 * c + 8] = rng.integers(0, 256, size=(8, 8, 3))
inputs = model.to_inputs(clip, "what color is the object", n_frames=4, fps=2.0)  # fps: timestamps need it

# 1. The layout: each frame's "Time t s:" text is a marker *of that frame*; frames 1-3 keep the
#    one token that changed.
lay, labels = inputs.layout, model.to_str_tokens(inputs)
for f in range(lay.n_frames):
    stamp = "".join(labels[i] for i in lay.positions("marker").tolist() if int(lay.frame[i]) == f)
    kept = [labels[i] for i in lay.frame_positions(f).tolist()]
    print(
        f"frame {f}: marker {stamp!r:14} {len(kept):2} kept tokens {' '.join(kept[:3])}{' …' if len(kept) > 3 else ''}"
    )
print("kept per frame (the processor's mask):", inputs["video_compression_mask"].view(4, -1).sum(1).tolist())

# 2. LV-K in every layer: the timestamps stay readable by the question (markers are no keys),
#    so a study that wants the question blind to time too adds question <- marker edges.
with torch.no_grad():
    clean = model(inputs)[0, -1].log_softmax(-1)
    for name, spec in {"LV-K": ko.LV(), "LV-K + text<-marker": ko.LV() | ko.Edges("text", "marker")}.items():
        out = model.run_with_hooks(inputs, fwd_hooks=spec.hooks(inputs))[0, -1].log_softmax(-1)
        print(f"{name:20} KL(clean || knocked) at the last position: {(clean.exp() * (clean - out)).sum().item():.4f}")
