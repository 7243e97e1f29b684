"""The study's three models as their authors released them: load, read the layout, knock out, convert.

LongVA-7B and LLaVA-NeXT-Video-32B-Qwen (LLaVA-style `LlavaQwenForCausalLM`) and
InternVideo2.5-Chat-8B (remote-code `InternVLChatModel`) are not HF-format checkpoints, and
transformers loads them only with `trust_remote_code`. vlens reads them as downloaded:
`HookedVideoLLM.from_pretrained(dir)` recognises the release from its config.json and converts it
in memory (no remote code runs). docs/models.md has the key mappings and what was verified.

This script runs as is (well under 30 s on a CPU, no downloads): vlens.testing writes tiny random
checkpoints in each release's own format (the same config.json keys, safetensors key names and
tokenizer files as the real downloads, only small and random). With the real checkpoints, the
one thing to change is the paths in CHECKPOINTS below.

    python examples/06_released_checkpoints.py
"""

import atexit
import contextlib
import io
import os
import shutil
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import torch

from vlens import HookedVideoLLM
from vlens import knockout as ko
from vlens.cli import main as vlens_cli
from vlens.testing import (
    make_tiny_internvideo2_5,
    make_tiny_llava_next_video_qwen,
    make_tiny_longva,
)

root = Path(tempfile.mkdtemp(prefix="vlens-releases-"))
# The tiny checkpoints are scratch: removed when the script ends (also on an error), unless
# VLENS_KEEP=1 keeps them to look at.
if os.environ.get("VLENS_KEEP") != "1":
    atexit.register(shutil.rmtree, root, ignore_errors=True)

# With the real downloads, point these at their directories instead, e.g.
#   "LongVA-7B": "/data/LongVA-7B",   (config.json, model-*.safetensors, tokenizer files)
# LLaVA releases name their vision tower in config.json (`mm_vision_tower`); vlens knows the public
# configs of the CLIP and SigLIP towers they use, and the tower weights are in the release's
# safetensors. Nothing else below changes (on a GPU, add dtype="bfloat16", device="cuda" to
# from_pretrained: the 32B model needs ~65 GB in bf16).
CHECKPOINTS = {
    "LongVA-7B": make_tiny_longva(root / "LongVA-7B", n_layers=4),
    "LLaVA-NeXT-Video-32B-Qwen": make_tiny_llava_next_video_qwen(root / "LLaVA-NeXT-Video-32B-Qwen", n_layers=4),
    "InternVideo2.5-Chat-8B": make_tiny_internvideo2_5(root / "InternVideo2.5-Chat-8B", n_layers=4),
}

# A clip: here 8 random 64×64 frames; a video file path or a frame folder works the same.
# 8 frames, because InternVideo2.5 compresses frames in groups of 4 (a multiple of 4 is required).
video = np.random.default_rng(0).integers(0, 256, size=(8, 64, 64, 3), dtype=np.uint8)
question = "What color is the ball?"


def describe_layout(model, inputs) -> None:
    """Vision positions per frame, and which of them have no (row, col) patch position."""
    lay = inputs.layout
    n_vision = int(lay.is_video.sum())
    gridless = int((lay.is_video & (lay.row < 0)).sum())
    per_unit, fpg = n_vision // lay.n_frames, lay.frames_per_group
    unit = "frame" if fpg == 1 else f"temporal group of {fpg} frames"  # layout.frame counts groups
    print(f"  {lay}")
    print(
        f"  {lay.n_frames} × {unit}: {per_unit} vision positions each"
        + (f" ({per_unit // fpg} in each frame's block)" if fpg > 1 else "")
        + f", {gridless // lay.n_frames} of them without a (row, col) patch position"
    )
    newline = getattr(model.family, "newline", None)  # the LLaVA releases' newline setting
    if newline == "none":
        print("  newlines: none (LongVA's video branch adds no image_newline)")
    elif newline == "grid":
        print("  newlines: 'grid': image_newline after every pooled row of every frame (the row = −1 positions)")
    elif fpg > 1:
        print(
            f"  HiCo compression: each group's {per_unit} merged tokens mix its {fpg} frames (no row/col); "
            f"the {lay.counts().get('marker', 0)} 'FrameN: <img>…</img>' text positions are markers"
        )
    labels = model.to_str_tokens(inputs)
    first = [labels[int(p)] for p in lay.frame_positions(0)]
    print(f"  {'frame' if fpg == 1 else 'group'} 0: {' '.join(first[:8])}{' …' if len(first) > 8 else ''}")


for name, path in CHECKPOINTS.items():
    # Exactly what a user does with the real download: the directory, nothing else.
    model = HookedVideoLLM.from_pretrained(path)
    # sampling: the releases' own policies (LongVA linspace, LLaVA-NeXT-Video 1 fps, InternVideo2.5
    # get_index) need a real clip; this 8-frame array takes the centre of each segment instead
    inputs = model.to_inputs(video, question, n_frames=8, sampling="centres")
    print(
        f"\n{name}: family {model.family.name!r}, {model.cfg.n_layers} layers, in-memory "
        f"{type(model.hf_model).__name__}"
    )
    describe_layout(model, inputs)

    # A clean forward and LV-K (language → video attention removed) from the middle layer on. The
    # tiny weights are random, so the tokens mean nothing; the real checkpoints answer the question.
    with torch.no_grad():
        clean = model(inputs)[0, -1].log_softmax(-1)
        hooks = ko.LV().hooks(inputs, layers=ko.from_layer(model.cfg.n_layers // 2))
        knocked = model.run_with_hooks(inputs, fwd_hooks=hooks)[0, -1].log_softmax(-1)
    kl = (clean.exp() * (clean - knocked)).sum().item()
    top = lambda logp, tok=model.tokenizer: repr(tok.decode(int(logp.argmax())))
    print(f"  clean top token {top(clean)}; {hooks[0][1]}: top token {top(knocked)}, KL(clean‖knocked) = {kl:.4f}")


# `vlens convert DIR OUT` writes an HF-format directory, but only where a transformers class
# computes the release exactly; otherwise it refuses and says why (then load the release itself).
def convert(*args: str) -> None:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = vlens_cli(["convert", *args])
    said = out.getvalue() if code == 0 else err.getvalue()  # (stderr also holds save progress bars)
    print(f"\n$ vlens convert {' '.join(Path(a).name if '/' in a else a for a in args)}   → exit {code}")
    print(textwrap.fill(said.strip(), 100, initial_indent="  ", subsequent_indent="  "))


convert(str(CHECKPOINTS["LongVA-7B"]), str(root / "longva-hf"))  # refused: no HF class pools like it
convert(str(CHECKPOINTS["InternVideo2.5-Chat-8B"]), str(root / "iv-hf-hico"))  # refused: HF has no HiCo compression
convert(str(CHECKPOINTS["InternVideo2.5-Chat-8B"]), str(root / "iv-hf"), "--no-token-compression")

# The converted directory is an ordinary HF InternVL checkpoint: transformers loads it, and so does
# vlens (family "internvl"). It is the plain InternVL2.5 path: every frame keeps all its tokens.
plain = HookedVideoLLM.from_pretrained(root / "iv-hf")
inputs = plain.to_inputs(video, question, n_frames=8, sampling="centres")
print(f"\nconverted InternVideo2.5 (no token compression): family {plain.family.name!r}")
describe_layout(plain, inputs)
print(
    f"\ncheckpoints in {root}"
    + ("" if os.environ.get("VLENS_KEEP") == "1" else " (removed at exit; VLENS_KEEP=1 keeps them)")
)
