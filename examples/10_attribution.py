"""Attribution: the whole knockout study, and every activation patch, from one backward pass.

    python examples/10_attribution.py [CHECKPOINT_DIR]      # default: the shipped model organism

An exact sweep runs every configuration (global1, global2, every window: 27 on the 8-layer
organism, 107 on a 28-layer 7B model). Attribution estimates them all from the clean forward and
one backward, then `verify_top` re-runs exactly only the largest estimates.
"""

import sys

from vlens import HookedVideoLLM
from vlens import knockout as ko
from vlens.data import synthetic
from vlens.experiments.study import configs_for
from vlens.inputs.prompts import letter_token_ids, mc_question
from vlens.interventions.attribution import attribute_knockouts, attribute_sample
from vlens.interventions.attribution_patching import attribution_patch
from vlens.interventions.attribution_validation import spearman, verify_top
from vlens.interventions.patching import corrupt, patch_sweep
from vlens.interventions.sweep import run_sweep
from vlens.metrics import score
from vlens.organism import checkpoint_dir

model = HookedVideoLLM.from_pretrained(sys.argv[1] if len(sys.argv) > 1 else checkpoint_dir())
L = model.cfg.n_layers
sample = synthetic.generate(1, seed=123, kinds=("direction",))[0]
inputs = model.to_inputs(sample.video, mc_question(sample.question, sample.options), n_frames=8, fps=sample.fps)
letters = letter_token_ids(model.tokenizer, len(sample.options))

# 1. Per spec and layer: the first-order change of each readout direction (letter logit vs the answer's).
attr = attribute_knockouts(model, inputs, [ko.LV(), ko.VT(), ko.VS()], letters, sample.answer)
print("Δ logit diff of each knockout alone in one layer:")
for spec in attr.specs:
    row = [attr.change(spec, ko.layers([l]))["logit_diff"] for l in range(L)]
    print(f"  {spec!r:5s} " + " ".join(f"{v:+6.2f}" for v in row))

# 2. The whole study, shaped like the exact runner's records (method="attribution").
configs = [c for p in ("global1", "global2", "windows") for c in configs_for(p, L)]
records = attribute_sample(model, inputs, configs, letters, sample.answer)
clean = records["clean"]["logit_diff"]
print(f"\nclean logit diff {clean:+.2f}; the 5 largest estimated changes:")
for c in sorted(configs, key=lambda c: -abs(records[c.name]["logit_diff"] - clean))[:5]:
    r = records[c.name]
    print(f"  {c.name:18s} logit diff {r['logit_diff']:+6.2f}  p(correct) {r['p_correct']:.2f}")

# 3. Confirm the largest estimates exactly (the engine runs only these).
for name, r in verify_top(model, inputs, records, configs, 5, letters, sample.answer).items():
    print(f"  exact {name:18s} logit diff {r['logit_diff']:+6.2f} (estimate {r['estimate']:+6.2f})")

# 4. How well does the estimate rank the whole study? (exact: every configuration)
exact = run_sweep(model, inputs, configs)
ex = [score(exact[c.name], letters, sample.answer)["logit_diff"] for c in configs]
est = [records[c.name]["logit_diff"] for c in configs]
print(f"\nSpearman(estimate, exact) over {len(configs)} configurations: {spearman(est, ex):.2f}")

# 5. Attribution patching: every (layer, group) of patch_sweep from one backward of the corrupted run.
reversed_ = corrupt(model, inputs, "reverse")
approx = attribution_patch(model, inputs, reversed_, letters, sample.answer, site="attn_out")
real = patch_sweep(model, inputs, reversed_, letters, sample.answer, site="attn_out")
print(
    f"attribution patching vs patch_sweep (attn_out, reversed clip): Spearman "
    f"{spearman(approx.effect.flatten(), real.effect.flatten()):.2f}"
)
