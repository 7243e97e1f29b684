"""Load a checkpoint, build video inputs, cache activations, read the layout.

Runs as is on a tiny random LLaVA-OneVision checkpoint built on the spot (no downloads); pass a
real checkpoint directory to use it instead:  python examples/01_load_and_cache.py [CHECKPOINT_DIR]
"""

import sys
import tempfile

import numpy as np
import torch

from vlens import HookedVideoLLM
from vlens.testing import make_tiny_onevision

ckpt = sys.argv[1] if len(sys.argv) > 1 else make_tiny_onevision(tempfile.mkdtemp() + "/tiny-onevision", n_layers=4)
model = HookedVideoLLM.from_pretrained(ckpt)
print(model)

# A video can be a file path, a frame folder, a list of frames or a uint8 [T,H,W,3] array.
video = np.random.default_rng(0).integers(0, 256, size=(16, 48, 64, 3), dtype=np.uint8)
inputs = model.to_inputs(video, "What color is the object?", n_frames=4)
print(inputs.layout)  # segments, frames, patch coordinates per position
print(model.to_str_tokens(inputs)[:8])  # '<f0 r0 c0>'-style labels for video positions
print("sampled frame indices:", inputs.videos[0].indices)

# Everything (attention patterns included: the explicit path) ...
logits, cache = model.run_with_cache(inputs)
print("cached", len(cache), "activations; last attention path:", model.last_attention_path)
# ... or only the residual stream (SDPA stays on: no N×N pattern is built).
logits, resid = model.run_with_cache(inputs, names_filter=lambda name: "resid" in name)
print("residual-only cache, attention path:", model.last_attention_path)

# TransformerLens' ActivationCache methods work: decompose the final residual stream.
parts, labels = cache.decompose_resid(return_labels=True)
print(
    "decompose_resid:",
    labels[:4],
    "... sums to the residual:",
    torch.allclose(parts.sum(0), cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"], atol=1e-4),
)

# Video positions' attention from the last position in the final layer:
lay = inputs.layout
pattern = cache[f"blocks.{model.cfg.n_layers - 1}.attn.hook_pattern"][0, :, -1]  # [head, key]
print("attention mass on video per head:", pattern[:, lay.is_vision].sum(-1))

answer = model.generate(inputs, max_new_tokens=5)
print("greedy answer:", model.tokenizer.decode(answer[0]))
