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
# # Efficient inference from the findings
#
# If the upper layers no longer read the video (global1) and the lower layers' video tokens look
# mostly within their own frame (VS vs VT), two savings follow:
#
# - **visual early exit** at layer E: layers ≥ E run without the vision positions at all;
# - **temporal pruning** in the first P layers: video positions attend only within their frame.
#
# `EfficientConfig(E, P)` runs both for real (fewer positions, block-diagonal attention), and
# `vlens.interventions.flops` counts what is saved. On a 28-layer model the study's choice is E = 18, P = 8;
# `EfficientConfig.scaled(L)` scales that to any depth.

# %%
import torch

from vlens import HookedVideoLLM
from vlens.data import load_dataset
from vlens.inputs.prompts import letter_token_ids, mc_question
from vlens.interventions.efficient import (
    EfficientConfig,
    efficient_forward,
    equivalent_hooks,
)
from vlens.interventions.flops import summary
from vlens.organism import checkpoint_dir

torch.set_grad_enabled(False)
model = HookedVideoLLM.from_pretrained(checkpoint_dir())
L = model.cfg.n_layers
config = EfficientConfig.scaled(L)
print(config)

# %% [markdown]
# ## The same answer, from less work
#
# `efficient_forward` is a real smaller computation; `equivalent_hooks` expresses the same thing
# as knockouts on the full model. They agree (that is tested), so the knockout curves predict the
# accuracy cost before anything is optimised.

# %%
samples = load_dataset("synthetic:1,n=12,frames=8")
letters = {n: letter_token_ids(model.tokenizer, n) for n in {len(s.options) for s in samples}}
right_clean = right_eff = 0
max_gap = 0.0
for s in samples:
    x = model.to_inputs(s.video, mc_question(s.question, s.options), n_frames=8, fps=s.fps)
    ids = letters[len(s.options)]
    clean = model(x, logits_to_keep=1)[0, -1, ids]
    fast = efficient_forward(model, x, config).logits[0, -1, ids]
    hooked = model.run_with_hooks(x, fwd_hooks=equivalent_hooks(x, config, L), logits_to_keep=1)[0, -1, ids]
    max_gap = max(max_gap, float((fast - hooked).abs().max()))
    right_clean += int(clean.argmax()) == s.answer
    right_eff += int(fast.argmax()) == s.answer
print(f"accuracy: clean {right_clean / len(samples):.0%}, efficient {right_eff / len(samples):.0%}")
print(f"efficient forward vs the equivalent knockout hooks: max |Δ logit| = {max_gap:.1e}")

# %% [markdown]
# ## What it saves
#
# "Attention FLOPs" are the QKᵀ and AV products only (the study's 37.5% counts these); the total
# includes the linear layers, which shrink with the positions that leave.

# %%
flops = summary(model.cfg, x.layout, config)
for key, value in flops.items():
    print(f"{key:>28}: {value:.3f}" if isinstance(value, float) else f"{key:>28}: {value}")

# %% [markdown]
# On this 8-layer organism the knockout curves have no flat region, so the saving costs accuracy;
# on the study's 7B models the same E and P cost about nothing. `vlens run efficient` measures
# both at scale; see the efficient-inference page for the E × P grid.
