"""Edges between any parts of the prompt: text roles, map-the-flow's protocols, centred windows,
and the same protocols over a data set with the run API (`vlens run flow`).

    python examples/12_edges_and_flow.py [CHECKPOINT_DIR]   (default: the shipped organism)
"""

import sys
import tempfile

import torch

from vlens import HookedVideoLLM
from vlens import knockout as ko
from vlens.data import synthetic
from vlens.inputs.prompts import letter_token_ids, mc_question
from vlens.inputs.roles import with_roles
from vlens.interventions.flow import effective_pathway_hooks, flow_specs, flow_window
from vlens.organism import checkpoint_dir

ckpt = sys.argv[1] if len(sys.argv) > 1 else checkpoint_dir()
model = HookedVideoLLM.from_pretrained(ckpt)
sample = synthetic.generate(1, seed=3, n_frames=8, size=32)[0]
inputs = model.to_inputs(sample.video, mc_question(sample.question, sample.options), n_frames=8)
# text roles: question, each option (with its letter and the correct one), answer prompt, last
inputs = with_roles(model, inputs, sample.question, list(sample.options), answer=sample.answer)
print([t for t, s in zip(model.to_str_tokens(inputs, roles=True), inputs.layout.segment) if s != "video"])

letters = letter_token_ids(model.tokenizer, len(sample.options))


def p_answer(hooks) -> float:
    with torch.no_grad():
        logits = model.run_with_hooks(inputs, fwd_hooks=hooks)[0, -1, letters]
    return logits.float().softmax(-1)[sample.answer].item()


clean = p_answer([])
L = model.cfg.n_layers
window = flow_window(3, 3, L)  # layers 2–4: map-the-flow centres its windows (and clips them at the ends)
print(f"p(answer) clean = {clean:.3f}; knockouts in {window}:")
for name, spec in {**flow_specs(), "LV-K (study)": ko.LV()}.items():
    edges = int(spec.blocked(inputs.layout).sum())
    print(f"  {name:>24}: {edges:5d} edges  Δp(answer) = {p_answer(spec.hooks(inputs, layers=window)) - clean:+.3f}")
# map-the-flow's effective pathway: seven pathways blocked at once, each in its own layers
print(f"  {'effective pathway':>24}: Δp(answer) = {p_answer(effective_pathway_hooks(inputs, L)) - clean:+.3f}")

# any other pathway is one line: e.g. later frames cannot read earlier ones, options cannot read the question
spec = ko.Edges("video", "video", frames="earlier") | ko.Edges("option", "question")
print(f"{spec}: Δp(answer) = {p_answer(spec.hooks(inputs, layers=window)) - clean:+.3f}")

# the same protocols over a data set, stored, resumable and reported: `vlens run flow` from Python
from vlens.run import RunConfig, run  # noqa: E402

with tempfile.TemporaryDirectory() as out:
    flow = {
        "window": 3,
        "protocols": "vql-to-ql,effective_pathway,attention_flow",
    }  # = --flow-window 3 --flow-protocols …
    config = RunConfig(
        model=ckpt,
        data="synthetic:1,n=8,frames=8",
        out=out,
        protocols=("flow",),
        frames=8,
        progress=False,
        options={"flow": flow},
    )
    result = run(config, model=model)
    for name, curve in result.analysis.flow.items():
        print(f"{name:>24}: accuracy by window centre " + " ".join(f"{p.accuracy:.0%}" for p in curve.points))
    print(
        f"effective pathway: accuracy {result.analysis.flow_effective.accuracy:.0%}; report: {result.report.name} + flow.png"
    )
