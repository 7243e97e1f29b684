"""The logit lens: when does the answer form? And where does the question look?

    python examples/05_logit_lens.py [CHECKPOINT_DIR]      # default: the shipped model organism

Decode the residual stream after every layer with the final norm + unembedding and read the
option letters' probabilities; then measure, per layer and head, how much attention the question
pays to each frame — reduced inside the hooks, so it also fits a 7B model at 32 frames.
"""

import sys

import torch

from vlens import HookedVideoLLM
from vlens import knockout as ko
from vlens.data import synthetic
from vlens.inputs.prompts import letter_token_ids, mc_question
from vlens.interventions.lens import attention_to_frames, logit_lens
from vlens.organism import checkpoint_dir

model = HookedVideoLLM.from_pretrained(sys.argv[1] if len(sys.argv) > 1 else checkpoint_dir())
L = model.cfg.n_layers

for sample in synthetic.generate(3, seed=321, kinds=("color", "direction", "count")):
    inputs = model.to_inputs(sample.video, mc_question(sample.question, sample.options), n_frames=8, fps=sample.fps)
    letters = letter_token_ids(model.tokenizer, len(sample.options))
    lens = logit_lens(model, inputs, letters, sample.answer)  # final norm + unembed
    raw = logit_lens(model, inputs, letters, sample.answer, apply_norm=False)  # unembed alone
    print(f"\n{sample.question}  answer {sample.options[sample.answer]!r}")
    print("after    p(correct)  rank   (no norm: p, rank)")
    for lbl, p, r, p2, r2 in zip(
        lens.labels, lens.p_letters[:, sample.answer], lens.rank, raw.p_letters[:, sample.answer], raw.rank
    ):
        print(f"{lbl:>7}  {p:10.2f}  {int(r):4d}   ({p2:.2f}, {int(r2)})")

    # Attention from the question rows to each frame: [layer, head, frames + 2 (markers, text)].
    mass = attention_to_frames(model, inputs)
    per_layer = mass.mean(1)  # mean over heads
    video_share = per_layer[:, :-1].sum(-1)
    print("share of the question's attention on the video, by layer:", [f"{v:.2f}" for v in video_share.tolist()])

    # Tie it to knockouts: the lens under LV-K in all layers (the video can no longer be read).
    with model.hooks(fwd_hooks=ko.LV().hooks(inputs)):
        knocked = logit_lens(model, inputs, letters, sample.answer)
    print(
        f"final p(correct): clean {lens.p_letters[-1, sample.answer]:.2f}, LV-K {knocked.p_letters[-1, sample.answer]:.2f}"
    )

# The lens at the final layer with the norm is exactly the model's output:
with torch.no_grad():
    final = model(inputs)[0, -1, letters].softmax(-1)
print("\nlens(final) == logits:", torch.allclose(final, lens.p_letters[-1], atol=1e-5))
