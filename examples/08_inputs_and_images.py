"""Inputs beyond to_inputs: your own HF kwargs, images next to a video, a mixed-resolution batch,
frame-sampling policies, and what run_with_cache would cost.

    python examples/08_inputs_and_images.py [QWEN2.5-VL_CHECKPOINT_DIR]
"""

import sys
import tempfile

import numpy as np
import torch

from vlens import HookedVideoLLM
from vlens import knockout as ko
from vlens.model import cache_memory
from vlens.testing import make_tiny_qwen2_5_vl

ckpt = sys.argv[1] if len(sys.argv) > 1 else make_tiny_qwen2_5_vl(tempfile.mkdtemp() + "/tiny-qwen", seed=0)
model = HookedVideoLLM.from_pretrained(ckpt)
rng = np.random.default_rng(0)
video = rng.integers(0, 256, size=(16, 56, 56, 3), dtype=np.uint8)
picture = rng.integers(0, 256, size=(42, 56, 3), dtype=np.uint8)

# 1. An image and a video in one prompt: the image is segment "image", with its own index and grid.
inputs = model.to_inputs(
    video, "Is the object in the video the one in the picture?", images=[picture], n_frames=4, fps=8.0
)
print(inputs.layout)
labels = model.to_str_tokens(inputs)
print("first image positions:", [labels[int(p)] for p in inputs.layout.positions("image")[:3]])
with torch.no_grad():
    print("max |vlens − HF| logits:", float((model(inputs) - model.hf_model(**inputs).logits).abs().max()))

# 2. The same tensors as plain HF kwargs (e.g. your own preprocessing), without mm_token_type_ids:
#    HF then uses plain positions, and so does vlens.
kwargs = {k: v for k, v in inputs.items() if k != "mm_token_type_ids"}
mine = model.inputs_from_hf(kwargs)
with torch.no_grad():
    print("inputs_from_hf vs HF:", float((model(mine) - model.hf_model(**kwargs).logits).abs().max()))

# 3. LV-K leaves the picture alone: it cuts the question from the video positions only.
blocked = ko.LV().blocked(inputs.layout)
print(
    "LV-K edges into the image:",
    int(blocked[:, inputs.layout.is_image].sum()),
    "into the video:",
    int(blocked[:, inputs.layout.is_video].sum()),
)

# 4. Videos of different resolutions in one batch: each row equals the row run alone.
small, large = video[:, :28, :28], rng.integers(0, 256, size=(16, 84, 112, 3), dtype=np.uint8)
batch = model.to_inputs([small, large], ["what colour", "what moves"], n_frames=4, fps=8.0)
with torch.no_grad():
    alone = model(model.to_inputs(large, "what moves", n_frames=4, fps=8.0))
    print("row 1 vs alone:", float((model(batch)[1, -alone.shape[1] :] - alone[0]).abs().max()))

# 5. Frame sampling: the policies pick different frames of the same clip.
for policy in ("centres", "linspace", "fps"):
    print(policy, model.to_inputs(video, "q", n_frames=4, fps=8.0, sampling=policy).videos[0].indices)

# 6. What would caching everything keep? (refused above memory_budget, "auto" = half the free memory)
print(cache_memory.estimate(model, inputs))
