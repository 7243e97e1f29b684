# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # Getting started on the model organism
#
# The model organism is a tiny LLaVA-OneVision (8 layers, 4 heads) trained from scratch on
# synthetic video questions; it ships inside vlens, so this runs anywhere, offline, in seconds.
# Everything here works the same on a 7B checkpoint: only the path changes.
#
# You will: load a checkpoint, build inputs from a clip and a question, read the layout (what every
# position is), cache activations, run with hooks, and generate.

# %%
import torch

from vlens import HookedVideoLLM
from vlens.data import load_dataset
from vlens.inputs.prompts import mc_question
from vlens.organism import checkpoint_dir

torch.set_grad_enabled(False)  # inference only: no autograd graphs
model = HookedVideoLLM.from_pretrained(checkpoint_dir())  # any local HF checkpoint directory
print(model.cfg.n_layers, "layers,", model.cfg.n_heads, "heads, d_model", model.cfg.d_model)

# %% [markdown]
# ## A clip and a question
#
# `load_dataset("synthetic:SEED,n=N")` draws clips with exact answer keys (seed 1 is the
# organism's held-out set). A clip is any of: a video file path, a folder of frames, a list of
# `H×W×3` uint8 frames, or a `[T, H, W, 3]` uint8 array like this one.

# %%
sample = load_dataset("synthetic:1,n=4,frames=8")[0]
print(sample.question, sample.options, "answer:", sample.options[sample.answer])
print("clip:", sample.video.shape, sample.video.dtype)

inputs = model.to_inputs(sample.video, mc_question(sample.question, sample.options), n_frames=8, fps=sample.fps)
print(inputs)

# %% [markdown]
# ## The layout: what every position is
#
# `inputs.layout` labels each position with a segment (`system`, `video`, `separator`, `text`, …)
# and, for video positions, the frame and the patch row and column. Knockouts, patching and the
# viewer all read positions through it.

# %%
layout = inputs.layout
print(layout)
print("frames:", layout.n_frames, "| video positions of frame 0:", layout.frame_positions(0).tolist()[:8], "…")
labels = layout.labels(model.to_str_tokens(inputs))
print(labels[:6], "…", labels[-6:])

# %% [markdown]
# ## Run, cache, hook
#
# `model(inputs)` gives logits `[batch, pos, d_vocab]`. `run_with_cache` returns TransformerLens'
# `ActivationCache`; use `names_filter` to keep only what you need (caching every attention
# pattern of a 7B model at 32 frames takes tens of GB).

# %%
from vlens.inputs.prompts import letter_token_ids

letters = letter_token_ids(model.tokenizer, len(sample.options))
logits, cache = model.run_with_cache(inputs, names_filter=lambda n: n.endswith(("hook_resid_pre", "hook_pattern")))
p = logits[0, -1, letters].softmax(-1)
print("p(option):", {o: round(float(x), 3) for o, x in zip("ABCD", p)})
print("resid_pre of block 3:", tuple(cache["blocks.3.hook_resid_pre"].shape))
print("pattern of block 3:  ", tuple(cache["blocks.3.attn.hook_pattern"].shape), "[batch, head, query, key]")

# %% [markdown]
# A hook is `fn(tensor, hook)` returning the new tensor (or None to leave it). Here: how much of
# the answer position's attention goes to the video in each layer, then the same with head 0 of
# every layer cut off from the video.

# %%
video = layout.is_video


def to_video(pattern):
    return float(pattern[0, :, -1, video].sum(-1).mean())


print(
    "answer→video attention per layer:",
    [round(to_video(cache[f"blocks.{l}.attn.hook_pattern"]), 2) for l in range(model.cfg.n_layers)],
)


def head0_blind(pattern, hook):
    pattern = pattern.clone()
    pattern[:, 0, :, video] = 0
    return pattern / pattern.sum(-1, keepdim=True)  # rows stay distributions


hooks = [(f"blocks.{l}.attn.hook_pattern", head0_blind) for l in range(model.cfg.n_layers)]
with torch.no_grad():
    blind = model.run_with_hooks(inputs, fwd_hooks=hooks)
print("p(option) with head 0 blind:", [round(float(x), 3) for x in blind[0, -1, letters].softmax(-1)])

# %% [markdown]
# ## Generate
#
# Greedy decoding with a KV cache; `fwd_hooks` (knockouts included) apply at every step.

# %%
new = model.generate(inputs, max_new_tokens=3)
print(repr(model.tokenizer.decode(new[0])))

# %% [markdown]
# Next: [the study](02_the_study.md) — knockouts in chosen layers, and the three protocols.
