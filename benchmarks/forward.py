"""Clean forward: HookedVideoLLM vs the HF model (SDPA) it was loaded from, in one process.

    python benchmarks/forward.py [--shapes tiny 0.5B] [--frames 4 8] [--device cpu] [--dtype float32]
    python benchmarks/forward.py --families [--frames 8]     # every family, 8 layers × 512, 64 px frames

Prints seconds per forward and the ratio ours / HF SDPA (goal ≤ 1.1). Both include the vision
tower (the same HF module), so the ratio is the language model's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import (
    FAMILY_SHAPES,
    checkpoint,
    clip,
    family_checkpoint,
    timeit_interleaved,
)

from vlens import HookedVideoLLM


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="+", default=["tiny", "0.5B"])
    ap.add_argument("--frames", nargs="+", type=int, default=[4, 8])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--families", action="store_true", help="every supported family at one small shape")
    ap.add_argument("--only", nargs="+", default=None, help="with --families: just these families")
    args = ap.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    print(f"device={args.device} dtype={args.dtype} threads={torch.get_num_threads()}")
    if args.families:
        return families(args, dtype)
    print(f"{'shape':>6} {'frames':>6} {'positions':>9} {'HF sdpa s':>10} {'vlens s':>9} {'ratio':>6}")
    for shape in args.shapes:
        model = HookedVideoLLM.from_pretrained(checkpoint(shape), dtype=dtype, device=args.device)
        hf = model.hf_model  # the same weights, HF's own forward (sdpa)
        for n in args.frames:
            inputs = model.to_inputs(clip(n), "What color is the object?", n_frames=n)
            t = timeit_interleaved(
                {"hf": lambda: hf(**inputs, logits_to_keep=0), "ours": lambda: model(inputs)},
                args.reps,
                device=args.device,
            )
            t_hf, t_ours = t["hf"], t["ours"]
            print(f"{shape:>6} {n:>6} {inputs.seq_len:>9} {t_hf:>10.4f} {t_ours:>9.4f} {t_ours / t_hf:>6.2f}")
        model = hf = None  # free the weights before the next shape


def families(args, dtype) -> None:
    print(f"{'family':>17} {'frames':>6} {'positions':>9} {'HF sdpa s':>10} {'vlens s':>9} {'ratio':>6} {'max |Δ|':>8}")
    for family in args.only or FAMILY_SHAPES:
        path, kw = family_checkpoint(family)
        model = HookedVideoLLM.from_pretrained(path, dtype=dtype, device=args.device)
        hf = model.hf_model
        for n in args.frames:
            inputs = model.to_inputs(clip(n, 64), "What color is the object?", n_frames=n, **kw)
            with torch.no_grad():
                diff = (model(inputs) - hf(**inputs).logits).abs().max().item()
            t = timeit_interleaved(
                {"hf": lambda: hf(**inputs, logits_to_keep=0), "ours": lambda: model(inputs)},
                args.reps,
                device=args.device,
            )
            t_hf, t_ours = t["hf"], t["ours"]
            print(
                f"{family:>17} {n:>6} {inputs.seq_len:>9} {t_hf:>10.4f} {t_ours:>9.4f} {t_ours / t_hf:>6.2f} {diff:>8.1e}"
            )
        model = hf = None  # free the weights before the next shape


if __name__ == "__main__":
    main()
