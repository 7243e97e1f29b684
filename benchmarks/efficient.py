"""Prefill with visual early exit + temporal pruning vs the clean forward (ours and HF SDPA).

    python benchmarks/efficient.py [--shape 0.5B] [--frames 8 16 32] [--device cpu]

E and P are the paper's 18 and 8 of 28 layers scaled to the depth. Prints seconds, speed-ups and
the attention-FLOPs fraction (QKᵀ and AV only). Goals: attention FLOPs ≤ 40% at 32 frames;
prefill speed-up ≥ 1.8× on GPU.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import SHAPES, checkpoint, clip, timeit_interleaved

from vlens import HookedVideoLLM
from vlens.interventions import flops
from vlens.interventions.efficient import EfficientConfig, efficient_forward


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="0.5B", choices=list(SHAPES))
    ap.add_argument("--frames", nargs="+", type=int, default=[8, 16, 32])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args(argv)
    model = HookedVideoLLM.from_pretrained(checkpoint(args.shape), dtype=getattr(torch, args.dtype), device=args.device)
    cfg = EfficientConfig.scaled(model.cfg.n_layers)
    print(
        f"{args.shape}: {model.cfg.n_layers} layers, E={cfg.exit_layer}, P={cfg.temporal_prune_layers}, "
        f"device={args.device}, dtype={args.dtype}, threads={torch.get_num_threads()}"
    )
    print(
        f"{'frames':>6} {'pos':>6} {'HF sdpa s':>9} {'ours s':>8} {'effic. s':>8} {'vs HF':>6} {'vs ours':>7} {'attn FLOPs':>10} {'all FLOPs':>9}"
    )
    for n in args.frames:
        inputs = model.to_inputs(clip(n), "Which direction is the object moving?", n_frames=n)
        reps = 1 if n >= 32 and args.device == "cpu" else args.reps
        t = timeit_interleaved(
            {
                "hf": lambda: model.hf_model(**inputs, logits_to_keep=1),
                "ours": lambda: model(inputs, logits_to_keep=1),
                "eff": lambda: efficient_forward(model, inputs, cfg),
            },
            reps,
            device=args.device,
        )
        t_hf, t_ours, t_eff = t["hf"], t["ours"], t["eff"]
        s = flops.summary(model.cfg, inputs.layout, cfg)
        print(
            f"{n:>6} {inputs.seq_len:>6} {t_hf:>9.3f} {t_ours:>8.3f} {t_eff:>8.3f} {t_hf / t_eff:>5.2f}x {t_ours / t_eff:>6.2f}x "
            f"{s['attention_fraction']:>10.1%} {s['total_fraction']:>9.1%}"
        )


if __name__ == "__main__":
    main()
