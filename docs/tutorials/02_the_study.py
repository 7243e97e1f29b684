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
# # The study: attention knockouts and the three protocols
#
# Gou et al. (arXiv 2508.15360) ask how video LLMs answer video questions by cutting attention
# edges and watching accuracy. Three knockouts:
#
# | knockout | removes attention from | to |
# |---|---|---|
# | LV-K | the question / answer positions (text after the video) | every vision position |
# | VT-K | a video position of frame *i* | video positions of other frames |
# | VS-K | a video position of frame *i* | other video positions of frame *i* |
#
# and three protocols: **global1** (LV-K on layers *i … L−1* for every *i*), **global2** (each type
# in all layers), **windows** (each type in every window of *k* consecutive layers). Here on the
# organism, with 16 held-out clips so it runs in seconds; `vlens run` does the same at scale.

# %%
import matplotlib.pyplot as plt
import torch

from vlens import HookedVideoLLM
from vlens import knockout as ko
from vlens.data import load_dataset
from vlens.inputs.prompts import letter_token_ids, mc_question
from vlens.organism import checkpoint_dir

torch.set_grad_enabled(False)
model = HookedVideoLLM.from_pretrained(checkpoint_dir())
L = model.cfg.n_layers
samples = load_dataset("synthetic:1,n=16,frames=8")
inputs = [model.to_inputs(s.video, mc_question(s.question, s.options), n_frames=8, fps=s.fps) for s in samples]

# %% [markdown]
# ## What a knockout removes
#
# `spec.blocked(layout)` is a boolean `[query, key]` matrix of exactly the removed edges — always
# strictly below the diagonal, so no attention row is ever empty.

# %%
layout = inputs[0].layout
fig, axes = plt.subplots(1, 3, figsize=(10, 3.3))
for ax, spec in zip(axes, (ko.LV(), ko.VT(), ko.VS())):
    ax.imshow(spec.blocked(layout), cmap="Greys", interpolation="nearest")
    ax.set_title(f"{spec}: {int(spec.blocked(layout).sum())} edges")
    ax.set_xlabel("key position")
axes[0].set_ylabel("query position")
fig.tight_layout()

# %% [markdown]
# ## Scoring every configuration
#
# Multiple choice is read from the option letters' logits at the answer position. A configuration
# is a knockout spec in a layer selection; `spec.hooks(inputs, layers=...)` turns it into
# `fwd_hooks` for `model.run_with_hooks`, and `vlens.interventions.sweep.run_sweep` runs many configurations of
# one sample at once, sharing the computation before the first knocked layer (same logits).

# %%
from vlens.figures.style import TYPE_COLORS, TYPE_LABELS
from vlens.interventions.sweep import SweepConfig, run_sweep

specs = {"lv": ko.LV(), "vt": ko.VT(), "vs": ko.VS(), "all": ko.LV() | ko.VT() | ko.VS()}
k = 4
configs = (
    [SweepConfig(f"global1/{i}", ko.LV(), ko.from_layer(i)) for i in range(L)]
    + [SweepConfig(f"global2/{n}", spec, ko.all_layers()) for n, spec in specs.items()]
    + [SweepConfig(f"windows/{n}/{x}", specs[n], ko.window(x, k)) for n in ("lv", "vt") for x in range(k - 1, L)]
)
letters = {n: letter_token_ids(model.tokenizer, n) for n in {len(s.options) for s in samples}}
right = dict.fromkeys(["clean"] + [c.name for c in configs], 0)
for s, x in zip(samples, inputs):
    logits = run_sweep(model, x, configs)  # {name: last-position logits}
    for name, v in logits.items():
        right[name] += int(v[letters[len(s.options)]].argmax()) == s.answer
acc = {name: r / len(samples) for name, r in right.items()}
clean = acc["clean"]
chance = sum(1 / len(s.options) for s in samples) / len(samples)
print(f"{len(configs)} configurations × {len(samples)} clips: clean {clean:.0%}, chance {chance:.0%}")

# %%
# the same number through plain hooks, for one configuration and one clip
x, s = inputs[0], samples[0]
hooked = model.run_with_hooks(x, fwd_hooks=ko.VT().hooks(x, layers=ko.window(5, k)), logits_to_keep=1)[0, -1]
print(
    "run_with_hooks vs run_sweep, max |Δ logit|:",
    float((hooked - run_sweep(model, x, [SweepConfig("w", ko.VT(), ko.window(5, k))])["w"]).abs().max()),
)

# %% [markdown]
# ## global2: each knockout type in all layers

# %%
global2 = {n: acc[f"global2/{n}"] for n in specs}
print({TYPE_LABELS[n]: f"{v:.0%}" for n, v in global2.items()})
fig, ax = plt.subplots(figsize=(4.5, 3))
ax.bar([TYPE_LABELS[n] for n in global2], list(global2.values()), color=[TYPE_COLORS[n] for n in global2])
ax.axhline(clean, color="k", ls=":", label=f"clean ({clean:.0%})")
ax.axhline(chance, color="grey", ls="--", label=f"chance ({chance:.0%})")
ax.set_ylabel("accuracy")
ax.legend()

# %% [markdown]
# Cutting language→video attention everywhere takes the organism to about chance. Knocking out
# attention across frames (VT-K) or within a frame (VS-K) costs far less: on the demo's 120 clips
# VT-K costs 12 points, mostly on *shape* questions, which the organism pools across frames.
#
# ## global1 and windows: *where* the question reads the video

# %%
fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.2))
a.plot(range(L), [acc[f"global1/{i}"] for i in range(L)], marker="o", color=TYPE_COLORS["lv"])
a.set_xlabel("first knocked layer i (LV-K on layers i … L−1)")
a.set_xticks(range(L))
ends = list(range(k - 1, L))
for n in ("lv", "vt"):
    b.plot(ends, [acc[f"windows/{n}/{x}"] for x in ends], marker="o", color=TYPE_COLORS[n], label=TYPE_LABELS[n])
b.set_xticks(ends, [f"{x - k + 1}–{x}" for x in ends])
b.set_xlabel(f"layers knocked (a window of {k})")
b.legend()
for ax in (a, b):
    ax.axhline(clean, color="k", ls=":")
    ax.axhline(chance, color="grey", ls="--")
    ax.set_ylabel("accuracy")

# %% [markdown]
# With 16 clips these curves are noisy (one clip is 6 points): `vlens run global1,global2,windows`
# scores a whole dataset with bootstrap intervals, resumes after interruptions, and writes a
# report with these figures; `vlens demo` does it for 120 held-out clips.
#
# Next: [patching and the logit lens](03_patching_and_lens.md).
