"""Draw docs/img/efficient_grid.png: the model organism's held-out accuracy with visual early exit
at layer E and per-frame attention in the first P layers, for a grid of (E, P).

    python docs/figures_efficient.py [--n 120]

Prints the grid (accuracy, attention-FLOPs fraction) as a markdown table for docs/efficient.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from vlens import HookedVideoLLM
from vlens.data import synthetic
from vlens.inputs.prompts import letter_token_ids, mc_question
from vlens.interventions import flops
from vlens.interventions.efficient import EfficientConfig, efficient_forward
from vlens.organism import checkpoint_dir

HELD_OUT_SEED = 1  # the organism trains on seed 10_000+; the demo and docs evaluate seed 1


@torch.no_grad()
def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=120)
    ap.add_argument("--out", default=str(Path(__file__).parent / "img" / "efficient_grid.png"))
    args = ap.parse_args(argv)
    model = HookedVideoLLM.from_pretrained(checkpoint_dir())
    L = model.cfg.n_layers
    samples = synthetic.generate(args.n, HELD_OUT_SEED)
    exits, prunes = list(range(0, L + 1, 2)), [0, 2, 4, 6]
    correct = torch.zeros(len(prunes), len(exits))
    frac = torch.zeros(len(prunes), len(exits))
    clean_correct = 0
    for s in samples:
        inputs = model.to_inputs(s.video, mc_question(s.question, s.options), n_frames=8, fps=s.fps)
        letters = letter_token_ids(model.tokenizer, len(s.options))
        clean_correct += int(model(inputs, logits_to_keep=1)[0, -1, letters].argmax()) == s.answer
        for i, p in enumerate(prunes):
            for j, e in enumerate(exits):
                cfg = EfficientConfig(e, p)
                logits = efficient_forward(model, inputs, cfg).logits[0, -1, letters]
                correct[i, j] += int(logits.argmax()) == s.answer
                frac[i, j] += flops.summary(model.cfg, inputs.layout, cfg)["attention_fraction"]
    acc, frac = correct / len(samples), frac / len(samples)
    clean = clean_correct / len(samples)
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for i, p in enumerate(prunes):
        ax.plot(exits, acc[i].numpy(), marker="o", label=f"P = {p}")
    ax.axhline(clean, color="k", ls=":", lw=1, label=f"clean {clean:.0%}")
    chance = sum(1 / len(s.options) for s in samples) / len(samples)
    ax.axhline(chance, color="grey", ls="--", lw=0.8, label=f"chance {chance:.0%}")
    ax.set_xlabel(f"exit layer E (vision leaves the sequence from layer E; {L} = never)")
    ax.set_ylabel("held-out accuracy")
    ax.set_title(f"Model organism: efficient inference, n = {len(samples)}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(args.out)
    print("| P \\ E | " + " | ".join(map(str, exits)) + " |")
    print("|---" * (len(exits) + 1) + "|")
    for i, p in enumerate(prunes):
        print(f"| {p} | " + " | ".join(f"{a:.0%} ({f:.0%})" for a, f in zip(acc[i].tolist(), frac[i].tolist())) + " |")
    print(f"clean accuracy {clean:.1%}")


if __name__ == "__main__":
    main()
