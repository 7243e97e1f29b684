"""Inside the vision tower: hook points, parity with HF, an ablation, patching, knockouts, the lens.

    python examples/14_inside_the_vision_tower.py [CHECKPOINT_DIR] [--out DIR]   # default: the model organism

The organism is a tiny LLaVA-OneVision: a SigLIP tower (one row per frame), a 2-layer MLP
projector, a Qwen2 LM. Its tower gets TransformerLens hook points (`vision.blocks.{l}.…`,
`vision.hook_merger_in/out`) attached to HF's own modules only while a hook uses them.
"""

import argparse
import tempfile
from pathlib import Path

import torch

from vlens import HookedVideoLLM, testing
from vlens import vision_knockout as vko
from vlens.data import synthetic
from vlens.figures.vision_lens import plot_vision_lens
from vlens.inputs.prompts import letter_token_ids, mc_question
from vlens.interventions.vision_lens import tower_lens, vision_token_lens
from vlens.organism import checkpoint_dir

ap = argparse.ArgumentParser()
ap.add_argument("checkpoint", nargs="?", default=None)
ap.add_argument("--out", default=tempfile.mkdtemp(prefix="vlens-vision-"))
args = ap.parse_args()
model = HookedVideoLLM.from_pretrained(args.checkpoint or checkpoint_dir())
tower_modules = model.vision_hooks.tower  # the HF modules the hook points attach to
assert tower_modules is not None
samples = synthetic.generate(8, seed=7, kinds=("color",))


def answer_of(s) -> int:
    assert s.answer is not None  # synthetic samples always know their answer
    return s.answer


sample = samples[0]
# another clip whose colour is one of the other options: the question stays the first clip's
other = next(
    s
    for s in samples[1:]
    if s.options[answer_of(s)] in sample.options and s.options[answer_of(s)] != sample.options[answer_of(sample)]
)
question = mc_question(sample.question, sample.options)
inputs = model.to_inputs(sample.video, question, n_frames=8, fps=sample.fps)
corrupted = model.to_inputs(other.video, question, n_frames=8, fps=other.fps)
letters = letter_token_ids(model.tokenizer, len(sample.options))


def p_answer(logits):
    return logits[0, -1, letters].softmax(-1)[answer_of(sample)].item()


# 1. the hook points, cached like the LM's (vision ones are opt-in: vision=True or name them)
names = model.vision_hooks.hook_names()
print(f"{model.family.name}: {len(model.vision_hooks.blocks)} tower blocks, {len(names)} vision hook points")
with torch.no_grad():
    clean = model(inputs)
    logits, cache = model.run_with_cache(inputs, names_filter=lambda n: n.startswith("vision."), vision=True)
for n in ("vision.blocks.0.hook_resid_pre", "vision.blocks.0.attn.hook_pattern", "vision.blocks.0.attn.hook_z"):
    print(f"  {n:38s} {tuple(cache[n].shape)}")
print(f"  {'vision.hook_merger_out':38s} {tuple(cache['vision.hook_merger_out'].shape)}")

# 2. parity: HF's own tower (read with plain PyTorch hooks) vs our hook points, every hook attached
ref = {}
handles = [
    b.block.register_forward_hook(lambda m, a, o, l=l: ref.setdefault(l, o.detach().clone()))
    for l, b in enumerate(tower_modules.blocks)
]
with torch.no_grad():
    model(inputs)
for h in handles:
    h.remove()
tower_err = max((cache[f"vision.blocks.{l}.hook_resid_post"] - r).abs().max().item() for l, r in ref.items())
print(
    f"max |ours - HF| over the tower blocks: {tower_err:.1e}; logits with every vision hook vs none: "
    f"{(logits - clean).abs().max().item():.1e}"
)

# 3. ablate each head of the last tower block (zero its hook_z) and read the answer
last = len(model.vision_hooks.blocks) - 1
print(f"p(answer {sample.options[answer_of(sample)]!r}) clean: {p_answer(clean):.3f}")
for head in range(tower_modules.blocks[last].n_heads):

    def zero(z, hook, head=head):
        z = z.clone()
        z[..., head, :] = 0
        return z

    with torch.no_grad():
        out = model.run_with_hooks(inputs, fwd_hooks=[(f"vision.blocks.{last}.attn.hook_z", zero)])
    print(f"  tower block {last} head {head} zeroed: {p_answer(out):.3f}")

# 4. patch the projector's output of the clean video into the run on the other video
with torch.no_grad():
    bad = model(corrupted)
    fixed = model.run_with_hooks(
        corrupted, fwd_hooks=[("vision.hook_merger_out", lambda t, hook: cache["vision.hook_merger_out"])]
    )
print(f"other video: {p_answer(bad):.3f}; with the clean projector output patched in: {p_answer(fixed):.3f}")

# 5. knockouts inside the tower: the organism's SigLIP attends within one frame, so there is
# nothing across frames to remove — the spec says so. Qwen2.5-VL's windows can be knocked out.
try:
    vko.AcrossFrames().hooks(model)
except vko.VisionKnockoutError as e:
    print(f"AcrossFrames on the organism: {e}")
qwen = HookedVideoLLM.from_pretrained(testing.make_tiny_qwen2_5_vl(Path(args.out) / "qwen2.5-vl", seed=0))
q_inputs = qwen.to_inputs(sample.video, question, n_frames=4, fps=sample.fps)
with torch.no_grad():
    base = qwen(q_inputs)
    ko_logits = qwen.run_with_hooks(q_inputs, fwd_hooks=vko.AcrossWindows().hooks(qwen))
print(
    f"tiny Qwen2.5-VL, AcrossWindows in its full-attention block: max logit change {(ko_logits - base).abs().max():.3f}"
)

# 6. the logit lens of the vision positions: the tower's blocks through the projector, then the LM
tower, lm = tower_lens(model, inputs), vision_token_lens(model, inputs)
print(
    "top-1 agreement with the last layer, tower:",
    [f"{a:.2f}" for a in tower.agreement().tolist()],
    "LM:",
    [f"{a:.2f}" for a in lm.agreement().tolist()],
)
print("frame 0's first tokens decode (final LM layer) to:", lm.words(model.tokenizer, -1)[:6])
path = plot_vision_lens(tower, lm, model.tokenizer, Path(args.out) / "vision_lens.png", frames=[0])
print(f"figure: {path}")
