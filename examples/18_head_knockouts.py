"""Knockouts on chosen attention heads: which heads carry the video to the answer?

python examples/18_head_knockouts.py [N_SAMPLES]

On the shipped organism (8 layers × 4 query heads in 2 key/value groups): LV-K (language → video)
on one query head of one layer at a time, the mean drop in p(correct letter) over held-out
clips as a layer × head map, then the top head's effect beside the whole layer's.
"""

import sys

import torch

from vlens import HookedVideoLLM
from vlens import knockout as ko
from vlens.data import synthetic
from vlens.inputs.prompts import mc_question
from vlens.organism import checkpoint_dir
from vlens.organism.evaluate import HELD_OUT_SEED
from vlens.organism.train import DATA

n = int(sys.argv[1]) if len(sys.argv) > 1 else 16
model = HookedVideoLLM.from_pretrained(checkpoint_dir())
L, H = model.cfg.n_layers, model.cfg.n_heads
samples = list(synthetic.generate(n, HELD_OUT_SEED, **DATA))
rows = []
for s in samples:
    inputs = model.to_inputs(s.video, mc_question(s.question, s.options), n_frames=DATA["n_frames"], fps=s.fps)
    rows.append((inputs, model.answer_letter_ids(len(s.options)), s.answer))


@torch.no_grad()
def p_correct(hooks_for) -> float:
    total = 0.0
    for inputs, letters, answer in rows:
        logits = model.run_with_hooks(inputs, fwd_hooks=hooks_for(inputs), logits_to_keep=1)[0, -1, letters]
        total += float(logits.softmax(-1)[answer])
    return total / len(rows)


clean = p_correct(lambda inputs: [])
drop = torch.zeros(L, H)
for layer in range(L):
    for head in range(H):
        drop[layer, head] = clean - p_correct(lambda x, l=layer, h=head: ko.LV().hooks(x, layers=[l], heads=[h]))
print(f"organism, {n} clips: clean p(correct) {clean:.3f}; drop under LV-K on one head (rows: layers, cols: heads)")
for layer in range(L):
    print(f"  layer {layer}: " + "  ".join(f"{float(d):+.3f}" for d in drop[layer]))
layer, head = divmod(int(drop.argmax()), H)
whole = clean - p_correct(lambda x: ko.LV().hooks(x, layers=[layer]))
print(f"top head: layer {layer} head {head} (drop {float(drop[layer, head]):+.3f}); its whole layer: {whole:+.3f}")
