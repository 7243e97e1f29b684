"""Activation-patching sweep: batched (vlens.interventions.patching.patch_sweep) vs the naive loop research code
writes (one full forward per layer × position group), and TransformerLens' per-position patcher.

    python benchmarks/patching.py [--shape 0.5B] [--frames 4] [--site resid_pre] [--device cpu]

Prints patched runs per second and the ratio; checks that both give the same logit differences.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import SHAPES, checkpoint, clip, sync

from vlens import HookedVideoLLM
from vlens.inputs.prompts import letter_token_ids, mc_question
from vlens.interventions.patching import (
    corrupt,
    patch_naive,
    patch_sweep,
    position_groups,
)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="0.5B", choices=list(SHAPES))
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--site", default="resid_pre", choices=["resid_pre", "attn_out", "mlp_out"])
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args(argv)
    model = HookedVideoLLM.from_pretrained(checkpoint(args.shape), dtype=getattr(torch, args.dtype), device=args.device)
    clean = model.to_inputs(
        clip(args.frames), mc_question("Which way does it move?", ["left", "right", "up", "down"]), n_frames=args.frames
    )
    corrupted = corrupt(model, clean, "reverse")
    letters = letter_token_ids(model.tokenizer, 4)
    runs = model.cfg.n_layers * len(position_groups(clean.layout))
    print(
        f"{args.shape}: {model.cfg.n_layers} layers, {args.frames} frames, {clean.seq_len} positions, "
        f"{runs} patched runs (layer × group), site {args.site}, device {args.device}, threads {torch.get_num_threads()}"
    )

    def timed(fn):
        sync(args.device)
        t0 = time.perf_counter()
        out = fn()
        sync(args.device)
        return out, time.perf_counter() - t0

    with torch.no_grad():
        model(clean, logits_to_keep=1)  # warm-up
        fast, t_fast = timed(
            lambda: patch_sweep(model, clean, corrupted, letters, 1, site=args.site, batch_size=args.batch_size)
        )
        naive, t_naive = timed(lambda: patch_naive(model, clean, corrupted, letters, 1, site=args.site))
    diff = (fast.raw - naive).abs().max().item()
    print(f"{'method':<34} {'seconds':>8} {'runs/s':>8} {'ratio':>6}")
    print(f"{'naive loop (1 forward per patch)':<34} {t_naive:>8.2f} {runs / t_naive:>8.2f} {1.0:>6.2f}")
    print(f"{'vlens patch_sweep (batched)':<34} {t_fast:>8.2f} {runs / t_fast:>8.2f} {t_naive / t_fast:>5.2f}x")
    print(f"max |Δ logit diff| batched vs naive: {diff:.2e}")


if __name__ == "__main__":
    main()
