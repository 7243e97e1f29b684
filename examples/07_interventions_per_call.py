"""Interventions live for one call: what the core guarantees, shown on the model organism.

    python examples/07_interventions_per_call.py

- a call that fails (a bad layer, a hook that raises) leaves no knockout behind;
- hooks built for one row refuse to run on another batch instead of broadcasting;
- fp16 knockouts on the pattern stay finite;
- an efficient-inference plan runs through the same blocks, so every hook fires.
"""

import torch

from vlens import HookedVideoLLM
from vlens import knockout as ko
from vlens.data import synthetic
from vlens.interventions.efficient import EfficientConfig, EfficientPlan
from vlens.organism import checkpoint_dir

model = HookedVideoLLM.from_pretrained(checkpoint_dir())
sample, other = synthetic.generate(2, seed=1, n_frames=8, size=32)
inputs = model.to_inputs(sample.video, sample.question, n_frames=8)

with torch.no_grad():
    clean = model(inputs)
    # 1. A failing call: LV-K everywhere plus VT-K in a layer that does not exist.
    try:
        model.run_with_hooks(inputs, fwd_hooks=ko.LV().hooks(inputs) + ko.VT().hooks(inputs, layers=ko.layers([99])))
    except ko.KnockoutError as e:
        print("refused:", e)
    print("next clean forward bit-identical:", torch.equal(model(inputs), clean))

    # 2. Hooks for one row, run on a batch of two: an error, never a broadcast.
    batch = model.to_inputs([sample.video, other.video], [sample.question, other.question], n_frames=8)
    try:
        model.run_with_hooks(batch, fwd_hooks=ko.LV().hooks(inputs))
    except ko.KnockoutError as e:
        print("refused:", e)

    # 3. fp16, LV-K on hook_pattern in all layers, with the patterns cached (explicit path).
    half = HookedVideoLLM.from_pretrained(checkpoint_dir(), dtype="float16")
    half_inputs = half.to_inputs(sample.video, sample.question, n_frames=8)
    with half.hooks(fwd_hooks=ko.LV().hooks(half_inputs)):
        logits, cache = half.run_with_cache(half_inputs, names_filter=lambda n: n.endswith("hook_pattern"))
    print("fp16 pattern knockout finite:", bool(torch.isfinite(logits).all()), "path:", half.last_attention_path)

    # 4. Efficient inference as a plan: hooks see all rows before the exit, the kept rows after.
    config = EfficientConfig.scaled(model.cfg.n_layers)
    plan = EfficientPlan(config, inputs.layouts, model.cfg.n_layers)
    _, cache = model.run_with_cache(inputs, plan=plan, names_filter=lambda n: n.endswith("hook_z"))
    print(
        f"{config}: hook_z rows per layer:",
        [cache[f"blocks.{l}.attn.hook_z"].shape[1] for l in range(model.cfg.n_layers)],
    )
