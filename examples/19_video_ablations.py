"""Mean and resample ablation of the video beside the knockouts: which part of the effect is the
video's content, which its being attended?

python examples/19_video_ablations.py [N_SAMPLES]

On the shipped organism: accuracy clean, with LV-K in all layers (the language cannot read the
video), with the video features mean-ablated (each position's mean over 16 other clips: the
video is there but says nothing specific), resampled (another clip's features at the same
positions), and with only the first frame mean-ablated (vlens.interventions.ablation).
"""

import sys

from vlens import knockout as ko
from vlens.data import synthetic
from vlens.inputs.prompts import mc_question
from vlens.interventions.ablation import mean_ablation, resample_ablation, video_features
from vlens.model.hooked_video_llm import HookedVideoLLM
from vlens.organism import checkpoint_dir
from vlens.organism.evaluate import evaluate
from vlens.organism.train import DATA

n = int(sys.argv[1]) if len(sys.argv) > 1 else 48
model = HookedVideoLLM.from_pretrained(checkpoint_dir())
others = list(synthetic.generate(16, seed=12345, **DATA))
refs = [
    model.to_inputs(s.video, mc_question(s.question, s.options), n_frames=DATA["n_frames"], fps=s.fps) for s in others
]
reference = video_features(model, refs)  # [16, n_vision, d_model]
counter = iter(range(10**9))

runs = {
    "clean": None,
    "LV-K (all layers)": lambda inputs: ko.LV().hooks(inputs),
    "mean-ablated video": lambda inputs: mean_ablation(reference, inputs),
    "resampled video": lambda inputs: resample_ablation(reference[next(counter) % len(refs)], inputs),
    "first frame mean-ablated": lambda inputs: mean_ablation(reference, inputs, frames=[0]),
}
clean = None
print(f"organism, {n} held-out clips")
for name, hooks in runs.items():
    acc = evaluate(n=n, fwd_hooks=hooks)["all"]
    clean = acc if clean is None else clean
    print(f"{name:>26}: {acc:.1%} ({acc - clean:+.1%})")
