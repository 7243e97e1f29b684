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
# # Activation patching, the logit lens, and the attention viewer
#
# Knockouts say *which attention edges matter*. Two more views of the same question:
#
# - **activation patching**: run the model on a corrupted input (another clip, same prompt), patch
#   one clean activation back in at a (layer, position group), and see how much of the clean answer
#   comes back (0 = corrupted, 1 = clean);
# - **the logit lens**: decode the residual stream at the answer position after every layer — when
#   does the answer appear?
#
# And the **viewer**: one HTML file with the frames and the attention over their patches.

# %%
import matplotlib.pyplot as plt
import torch

from vlens import HookedVideoLLM
from vlens.data import load_dataset
from vlens.inputs.prompts import letter_token_ids, mc_question
from vlens.interventions.lens import attention_to_frames, logit_lens
from vlens.interventions.patching import corrupt, patch_sweep
from vlens.organism import checkpoint_dir

torch.set_grad_enabled(False)
model = HookedVideoLLM.from_pretrained(checkpoint_dir())
sample, other = load_dataset("synthetic:1,n=2,frames=8")
question = mc_question(sample.question, sample.options)
clean = model.to_inputs(sample.video, question, n_frames=8, fps=sample.fps)
letters = letter_token_ids(model.tokenizer, len(sample.options))
print(sample.question, "→", sample.options[sample.answer])

# %% [markdown]
# ## Patching the residual stream
#
# The corrupted run gets the other sample's clip with this sample's question. `patch_sweep`
# patches `blocks.{l}.hook_resid_pre` for every layer and position group (each frame, all video,
# the question, the final position), batching the runs.

# %%
corrupted = corrupt(model, clean, "video", other=model.to_inputs(other.video, question, n_frames=8).videos[0])
res = patch_sweep(model, clean, corrupted, letters, sample.answer, site="resid_pre")
print(f"logit diff of the right answer: clean {res.clean_diff:.2f}, corrupted {res.corrupted_diff:.2f}")

fig, ax = plt.subplots(figsize=(5.5, 3.6))
im = ax.imshow(res.effect, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1)
ax.set_xticks(range(len(res.groups)), res.groups, rotation=60, ha="right")
ax.set_ylabel("layer (patched at its input)")
fig.colorbar(im, label="normalised effect (0 = corrupted, 1 = clean)")

# %% [markdown]
# Patched at the input of layer 0, the video positions carry the whole clean answer; from layer 1
# on, the final position (and partly the question) carries it: on this clip the text has read what
# it needs from the video by then. `vlens run patching` averages this over a dataset, and the
# report draws it on one layer axis with the window knockouts.
#
# ## The logit lens

# %%
lens = logit_lens(model, clean, letters, sample.answer)
fig, ax = plt.subplots(figsize=(5.5, 3))
for i, opt in enumerate(sample.options):
    ax.plot(range(len(lens.labels)), lens.p_letters[:, i], marker="o", label=f"{'ABCD'[i]}. {opt}")
ax.set_xticks(range(len(lens.labels)), [lbl.replace("_pre", "") for lbl in lens.labels])
ax.set_xlabel("residual stream entering layer (final = output)")
ax.set_ylabel("p(letter) among the options")
ax.legend(fontsize=8)
print("rank of the right letter per layer:", lens.rank.tolist())

# %% [markdown]
# `attention_to_frames` reduces each layer's attention pattern inside a hook to the mass from the
# question to each frame `[layer, head, frames + 2]` (the last two: other vision positions, and
# text) — cheap even where caching whole patterns would not fit.

# %%
mass = attention_to_frames(model, clean)
print(
    "question→video share per layer (mean over heads):", [round(float(m), 2) for m in mass[:, :, :-2].sum(-1).mean(-1)]
)

# %% [markdown]
# ## The viewer
#
# `view_attention` writes one self-contained HTML page (no network): the frames with the attention
# from the answer position and from the question as overlays per layer and head (sliders), the
# knockouts you pass compared with the clean run, and patching heatmaps. Open `organism_view.html`
# in a browser. `vlens view RUN_DIR` does the same for a `vlens run` directory.

# %%
from vlens import knockout as ko
from vlens.viewer.view import view_attention

path = view_attention(
    model,
    clean,
    path="organism_view.html",
    knockouts={
        "LV-K all layers": ko.LV().hooks(clean, layers=ko.all_layers()),
        "VT-K all layers": ko.VT().hooks(clean, layers=ko.all_layers()),
    },
    patching={"patching/resid_pre/video": {"effect": res.effect, "groups": res.groups, "layers": res.layers, "n": 1}},
)
print(path, f"{path.stat().st_size / 1e3:.0f} kB")

# %% [markdown]
# ![the viewer](../img/viewer.png)
#
# Next: [efficient inference](04_efficient_inference.md).
