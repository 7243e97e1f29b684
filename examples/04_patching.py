"""Activation patching: which activations carry the answer?

    python examples/04_patching.py [CHECKPOINT_DIR]      # default: the shipped model organism

Knockouts remove attention edges; patching restores activations. We run a question on a clean
clip and on a corrupted one (same prompt, a different clip, or the clip reversed), then copy one
clean activation — a layer's residual stream at one group of positions — into the corrupted run
and measure how much of the clean answer comes back (0 = corrupted, 1 = clean).
"""

import sys

import torch

from vlens import HookedVideoLLM
from vlens.data import synthetic
from vlens.inputs.prompts import letter_token_ids, mc_question
from vlens.interventions.patching import corrupt, patch_sweep, position_groups
from vlens.organism import checkpoint_dir

model = HookedVideoLLM.from_pretrained(sys.argv[1] if len(sys.argv) > 1 else checkpoint_dir())
L = model.cfg.n_layers

# A "which direction is it moving" question: the answer needs several frames, so reversing the
# clip flips it while every single frame stays the same.
sample = synthetic.generate(1, seed=123, kinds=("direction",))[0]
clean = model.to_inputs(sample.video, mc_question(sample.question, sample.options), n_frames=8, fps=sample.fps)
letters = letter_token_ids(model.tokenizer, len(sample.options))
print(sample.question, sample.options, "answer:", sample.options[sample.answer])

# 1. Position groups come from the layout: every frame, all video, the question text, the final position.
groups = position_groups(clean.layout)
print({name: len(pos) for name, pos in groups.items()})

# 2. Corruptions keep the layout (same frames, same token count), or it's an error.
reversed_ = corrupt(model, clean, "reverse")
other = synthetic.generate(2, seed=123, kinds=("direction",))[1]  # another clip, same prompt
swapped = corrupt(model, clean, "video", other=model.to_inputs(other.video, "x", n_frames=8).videos[0])

# 3. The sweep: every layer × group in batched forwards (one patch per batch row, starting at the
#    lowest patched layer from the cached corrupted run).
for name, corrupted in (("reverse", reversed_), ("other video", swapped)):
    res = patch_sweep(model, clean, corrupted, letters, sample.answer, site="resid_pre")
    print(
        f"\n[{name}] logit diff of the clean answer: clean {res.clean_diff:+.2f}, corrupted {res.corrupted_diff:+.2f}"
    )
    print("layer  " + " ".join(f"{g[:7]:>7}" for g in res.groups))
    for l, row in zip(res.layers, res.effect):
        print(f"{l:>5}  " + " ".join(f"{v:7.2f}" for v in row.tolist()))

# 4. Attention output and MLP output, and single heads (z), are sites too.
heads = patch_sweep(
    model,
    clean,
    reversed_,
    letters,
    sample.answer,
    site="z",
    layers=range(L // 2, L),
    groups={"final": groups["final"]},
)
l, h = divmod(int(heads.effect[..., 0].nan_to_num(-9).argmax()), model.cfg.n_heads)
print(f"\nthe head whose output at the final position restores most: L{L // 2 + l}H{h} ({heads.effect[l, h, 0]:.2f})")

# 5. TransformerLens' own patching helpers accept our inputs too (per position, slower):
from transformer_lens import patching  # noqa: E402

_, cache = model.run_with_cache(clean, names_filter=lambda n: n.endswith("resid_pre"))
metric = lambda logits: logits[0, -1, letters[sample.answer]] - logits[0, -1, letters].max()
with torch.no_grad():
    tl = patching.get_act_patch_resid_pre(model, reversed_, cache, metric)
print("TransformerLens get_act_patch_resid_pre:", tuple(tl.shape), "[layer, position]")
