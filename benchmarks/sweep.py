"""A full study sweep of one sample (global1 + global2 + windows), engine vs naive loop.

    python benchmarks/sweep.py [--shape 0.5B] [--frames 8] [--extrapolate 32] [--device cpu]

Prints wall time and analytic FLOPs of both, as ratios, in one run; then extrapolates the FLOP
ratio to 32 frames with the same FLOP model (a full naive sweep at 32 frames takes hours on 2
CPU cores). Goal: ≤ 30% of the naive compute, ≤ 35% of its wall time.
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
from vlens import knockout as ko
from vlens.inputs.layout import VideoLayout, VisionToken
from vlens.interventions.sweep import SweepConfig, plan, run_naive, run_sweep


def study_configs(n_layers: int, k: int = 4) -> list[SweepConfig]:
    configs = [SweepConfig(f"global1/{i}", ko.LV(), ko.from_layer(i)) for i in range(n_layers)]
    configs += [SweepConfig(f"global2/{n}", ko.from_name(n), ko.all_layers()) for n in ("lv", "vt", "vs", "all")]
    configs += [
        SweepConfig(f"windows/{n}/{x}", ko.from_name(n), ko.window(x, k))
        for n in ("lv", "vt", "vs")
        for x in range(k - 1, n_layers)
    ]
    return configs


def synthetic_layout(n_frames: int, per_frame: int, n_system: int, n_text: int) -> VideoLayout:
    """A OneVision-shaped layout (frames, one separator) for FLOP extrapolation."""
    g = int(per_frame**0.5)
    tokens = [VisionToken("video", f, r, c) for f in range(n_frames) for r in range(g) for c in range(g)]
    tokens.append(VisionToken("separator"))
    is_vision = torch.tensor([False] * n_system + [True] * len(tokens) + [False] * n_text)
    return VideoLayout.build(is_vision, tokens)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="0.5B", choices=list(SHAPES))
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--extrapolate", type=int, nargs="*", default=[32])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--max-memory", type=float, default=None, help="GiB for the engine's cache + batches")
    args = ap.parse_args(argv)
    model = HookedVideoLLM.from_pretrained(checkpoint(args.shape), dtype=getattr(torch, args.dtype), device=args.device)
    L = model.cfg.n_layers
    configs = study_configs(L)
    inputs = model.to_inputs(
        clip(args.frames),
        "Which direction is the object moving? Answer with the option's letter.",
        n_frames=args.frames,
    )
    print(
        f"{args.shape}: {L} layers, {len(configs)} configurations, {args.frames} frames, {inputs.seq_len} positions, "
        f"device={args.device} threads={torch.get_num_threads()}"
    )
    budget = None if args.max_memory is None else int(args.max_memory * 2**30)

    sync(args.device)
    t0 = time.perf_counter()
    report: dict = {}
    fast = run_sweep(model, inputs, configs, max_memory=budget, report=report)
    sync(args.device)
    t_engine = time.perf_counter() - t0
    t0 = time.perf_counter()
    naive = run_naive(model, inputs, configs)
    sync(args.device)
    t_naive = time.perf_counter() - t0

    diff = max((naive[k] - fast[k]).abs().max().item() for k in naive)
    same = all(naive[k].argmax() == fast[k].argmax() for k in naive)
    f_engine, f_naive = plan(configs, inputs.layout, L).flops(model.cfg)
    print(f"naive loop : {t_naive:8.1f} s  {f_naive / 1e12:8.2f} TFLOP")
    print(
        f"engine     : {t_engine:8.1f} s  {f_engine / 1e12:8.2f} TFLOP   (cached {report['cached_bytes'] / 2**20:.0f} MiB, "
        f"batches {len(report['batches'])}, peak estimate {report['peak_estimate'] / 2**20:.0f} MiB)"
    )
    print(
        f"ratio      : wall {t_engine / t_naive:6.1%}   FLOPs {f_engine / f_naive:6.1%}   max |Δlogit| {diff:.1e}   same argmax: {same}"
    )
    lay = inputs.layout
    per_frame = int(lay.counts()["video"] / lay.n_frames)
    n_system, n_text = lay.counts().get("system", 0), lay.counts().get("text", 0)
    for n in args.extrapolate:
        layout = synthetic_layout(n, per_frame, n_system, n_text)
        e, nv = plan(configs, layout, L).flops(model.cfg)
        print(f"FLOP model at {n} frames ({len(layout)} positions): engine / naive = {e / nv:6.1%}")
    for name, shape in SHAPES.items():
        if name == args.shape or name == "tiny":
            continue
        from types import SimpleNamespace

        c = SimpleNamespace(
            n_heads=shape["n_heads"],
            n_key_value_heads=shape["n_kv_heads"],
            d_head=shape["d_model"] // shape["n_heads"],
            d_model=shape["d_model"],
            d_mlp=shape["d_mlp"],
            d_vocab=shape["vocab_size"],
        )
        layout = synthetic_layout(32, 196, 14, 60)
        e, nv = plan(study_configs(shape["n_layers"]), layout, shape["n_layers"]).flops(c)
        print(
            f"FLOP model, {name} shape ({shape['n_layers']} layers), 32 frames × 196 tokens: engine / naive = {e / nv:6.1%}"
        )


if __name__ == "__main__":
    main()
