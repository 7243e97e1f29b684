"""Qwen3-VL's two new routes for the video, and its MoE sparse MLP, on a tiny random checkpoint.

Qwen3-VL writes each frame group's time into the prompt (`<1.5 seconds>`) and adds features of
several vision-tower layers to the residual stream after the first LM blocks (DeepStack). This
script shows where the timestamps sit in the layout, how much DeepStack moves the answer, how an
LV-K study separates the two routes (`deepstack=False`), and the MoE router's hooks.

    python examples/09_deepstack_timestamps_moe.py      # a few seconds on a CPU, no downloads

With a real checkpoint, replace the builder with its directory:
    model = HookedVideoLLM.from_pretrained("/data/Qwen3-VL-30B-A3B-Instruct", dtype="bfloat16", device="cuda")
"""

import tempfile
from pathlib import Path

import numpy as np
import torch

from vlens import HookedVideoLLM
from vlens import knockout as ko
from vlens.testing import make_tiny_qwen3_vl_moe

path = make_tiny_qwen3_vl_moe(Path(tempfile.mkdtemp(prefix="vlens-qwen3vl-")) / "ckpt", n_layers=3)
model = HookedVideoLLM.from_pretrained(path)
clip = np.random.default_rng(0).integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
inputs = model.to_inputs(clip, "what color is the object", n_frames=4, fps=2.0)  # fps: timestamps need it

# 1. The layout: each group's timestamp text is a marker *of that group* (layout.frame).
lay, labels = inputs.layout, model.to_str_tokens(inputs)
for g in range(lay.n_frames):
    stamp = [labels[i] for i in range(len(lay)) if lay.segment[i] == "marker" and int(lay.frame[i]) == g]
    print(f"group {g}: markers {' '.join(stamp)}  + {len(lay.frame_positions(g))} video tokens")

# 2. DeepStack: what it adds, and the answer with and without it.
with torch.no_grad():
    logits, cache = model.run_with_cache(inputs)
    no_deep = model(inputs, deepstack=False)
for l in range(model.cfg.deepstack_layers):
    add = cache[f"blocks.{l}.hook_deepstack"][0]
    print(f"block {l}: DeepStack adds |x| = {add.norm(dim=-1)[lay.is_vision].mean():.2f} per vision position")
comps, names = cache.decompose_resid(return_labels=True)
print("residual components:", ", ".join(names))
print(f"answer logits move by {(logits[0, -1] - no_deep[0, -1]).abs().max():.3f} without DeepStack")

# 3. LV-K from layer 1, with and without the DeepStack route.
hooks = ko.LV().hooks(inputs, layers=ko.from_layer(1))
with torch.no_grad():
    lv = model.run_with_hooks(inputs, fwd_hooks=hooks)
    lv_no_deep = model.run_with_hooks(inputs, fwd_hooks=hooks, deepstack=False)
print(
    f"LV-K: Δ = {(lv[0, -1] - logits[0, -1]).abs().max():.3f}; "
    f"LV-K without DeepStack: Δ = {(lv_no_deep[0, -1] - logits[0, -1]).abs().max():.3f}"
)

# 4. The sparse MLP: which experts the last position chose in each MoE block.
_, moe_cache = model.run_with_cache(inputs, names_filter=lambda n: "topk" in n)
for l in model.cfg.moe.layers:
    experts = moe_cache[f"blocks.{l}.mlp.hook_topk_experts"][0, -1].tolist()
    weights = moe_cache[f"blocks.{l}.mlp.hook_topk_weights"][0, -1].tolist()
    print(f"block {l}: experts {experts} with weights {[round(w, 2) for w in weights]}")
