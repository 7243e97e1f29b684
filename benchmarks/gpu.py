"""One-shot benchmark of what a study costs on this machine (benchmarks/gpu.sh runs it).

On CUDA (default there): the 7B LM shape (LLaVA-Video-7B-Qwen2: 28 layers × 3584, GQA 28/4, MLP
18944, vocab 152k) in bfloat16 at 32 frames of 196 tokens (~6.3k positions), random weights built
directly on the GPU (no checkpoint written). On CPU: a small shape (tiny by default) in float32.

Rows, each timed as the median of --reps calls after a warm-up, with peak memory:

* HF SDPA clean forward (the baseline; every ratio is against it, same process)
* vlens clean forward (SDPA)
* LV-K in all layers on the SDPA path (mask fused into SDPA) and, on CUDA, the FlexAttention path
* efficient prefill (visual early exit at round(18/28·L), temporal pruning below round(8/28·L))
* the whole study of one sample through the run API (`vlens.run.run`: global1 + global2 + windows,
  ~108 configurations on the sweep engine, scored and stored), with the engine's FLOPs

    python benchmarks/gpu.py [--device cuda] [--shape 7B] [--frames 32] [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import SHAPES, clip, timeit

from vlens import HookedVideoLLM
from vlens import knockout as ko
from vlens.interventions import flops
from vlens.interventions.efficient import EfficientConfig, efficient_forward
from vlens.testing import make_tiny_onevision

QUESTION = "What color is the object?\nA. red\nB. blue\nC. green\nD. yellow\nAnswer with the option's letter."


def build(shape: str, device: str, dtype: torch.dtype, root: Path) -> tuple[HookedVideoLLM, Path]:
    """The model at `shape` on `device`, and a small checkpoint directory with the same processor
    (the run API's `model` path: its config names the family, its processor builds the inputs)."""
    from transformers import (
        AutoConfig,
        AutoProcessor,
        LlavaOnevisionForConditionalGeneration,
    )

    s = SHAPES[shape]
    small = dict(s, n_layers=1, d_model=64, n_heads=4, n_kv_heads=2, d_mlp=128)  # same processor, tiny LM
    ckpt = make_tiny_onevision(root / "ckpt", **small)
    config = AutoConfig.from_pretrained(ckpt, local_files_only=True)
    text = config.text_config.to_dict()
    text.update(
        num_hidden_layers=s["n_layers"],
        hidden_size=s["d_model"],
        num_attention_heads=s["n_heads"],
        num_key_value_heads=s["n_kv_heads"],
        intermediate_size=s["d_mlp"],
        head_dim=s["d_model"] // s["n_heads"],
    )
    text.pop("layer_types", None)  # rebuilt for the new depth
    config.text_config = type(config.text_config)(**text)
    torch.manual_seed(0)
    with torch.device(device):
        hf = LlavaOnevisionForConditionalGeneration._from_config(config, dtype=dtype, attn_implementation="sdpa")
    for p in hf.parameters():  # small random weights: logits stay finite in bf16 through 28 layers
        torch.nn.init.normal_(p, std=0.02) if p.dim() > 1 else None
    processor = AutoProcessor.from_pretrained(ckpt, local_files_only=True)
    return HookedVideoLLM.from_hf(hf.eval(), processor), ckpt


def peak(device: str) -> float:
    """GiB: peak allocated on CUDA since the last reset; the process's peak RSS on CPU."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def reset(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def main(argv=None) -> None:
    cuda = torch.cuda.is_available()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if cuda else "cpu")
    ap.add_argument("--shape", default="7B" if cuda else "tiny", choices=sorted(SHAPES))
    ap.add_argument("--frames", type=int, default=32 if cuda else 4)
    ap.add_argument("--dtype", default="bfloat16" if cuda else "float32")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--max-memory", type=float, default=None, help="GiB for the sweep engine (default: 40 on CUDA)")
    ap.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    device, dtype = args.device, getattr(torch, args.dtype)
    t_start = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="vlens-gpu-bench-"))
    model, ckpt = build(args.shape, device, dtype, root)
    hf = model.hf_model
    inputs = model.to_inputs(clip(args.frames), QUESTION, n_frames=args.frames).to(device, dtype)
    N, L = inputs.seq_len, model.cfg.n_layers
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "CPU"
    print(
        f"# vlens benchmarks/gpu.py — {name}, torch {torch.__version__}, {args.dtype}, threads {torch.get_num_threads()}"
    )
    print(
        f"# shape {args.shape}: {L} layers × {model.cfg.d_model}, heads {model.cfg.n_heads}/{model.cfg.n_key_value_heads} kv, "
        f"{args.frames} frames → {N} positions; built in {time.perf_counter() - t_start:.0f} s"
    )
    clean_flops = sum(x.attention + x.linear for x in flops.clean_flops(model.cfg, inputs.layout))
    rows = []

    def row(label: str, fn, n_flops: float | None = None, reps: int = args.reps, warmup: int = 1):
        reset(device)
        with torch.no_grad():
            s = timeit(fn, reps, warmup=warmup, device=device)
        rows.append({"what": label, "seconds": s, "peak_gib": peak(device), "flops": n_flops})
        base = rows[0]["seconds"]
        tflops = f"{n_flops / s / 1e12:7.1f}" if n_flops else "      –"
        print(f"{label:<40} {s:9.4f} s {s / base:7.2f}× {tflops} TFLOP/s {rows[-1]['peak_gib']:7.2f} GiB", flush=True)

    print(f"{'':<40} {'median':>11} {'vs HF':>8} {'':>7}          {'peak':>11}")
    row("HF SDPA clean forward", lambda: hf(**inputs, logits_to_keep=1), clean_flops)
    row("vlens clean forward (SDPA)", lambda: model(inputs, logits_to_keep=1), clean_flops)
    hooks = ko.LV().hooks(inputs)

    def on_path(path):
        def go():
            with model.attention_path_as(path):
                model.run_with_hooks(inputs, fwd_hooks=hooks, logits_to_keep=1)

        return go

    row("LV-K all layers, SDPA fused mask", on_path("fast"), clean_flops)
    if device.startswith("cuda"):
        t0 = time.perf_counter()
        with torch.no_grad():
            on_path("flex")()  # compiles the kernel outside the timing
        print(f"{'  (FlexAttention compile)':<40} {time.perf_counter() - t0:9.1f} s")
        row("LV-K all layers, FlexAttention", on_path("flex"), clean_flops)
    eff = EfficientConfig.scaled(L)
    eff_flops = sum(x.attention + x.linear for x in flops.efficient_flops(model.cfg, inputs.layout, eff))
    row(
        f"efficient prefill E{eff.exit_layer}-P{eff.temporal_prune_layers}",
        lambda: efficient_forward(model, inputs, eff),
        eff_flops,
    )

    from vlens.run import RunConfig, dry_run, run

    max_memory = args.max_memory if args.max_memory is not None else (40.0 if device.startswith("cuda") else None)
    n = 0

    def study():
        nonlocal n
        n += 1  # a fresh store each call: every call computes the whole sample
        run(
            RunConfig(
                model=ckpt,
                data=f"synthetic:0,n=1,frames={args.frames},size=64",
                out=root / f"study{n}",
                protocols="global1,global2,windows",
                frames=args.frames,
                dtype=args.dtype,
                device=device,
                max_memory_gib=max_memory,
                progress=False,
                report=False,
            ),
            model=model,
        )

    est = dry_run(
        RunConfig(
            model=ckpt,
            data=f"synthetic:0,n=1,frames={args.frames},size=64",
            out=root / "dry",
            protocols="global1,global2,windows",
            frames=args.frames,
            dtype=args.dtype,
            device=device,
            max_memory_gib=max_memory,
            progress=False,
        ),
        model=model,
        measure=1,
    )
    # warmed up by the dry run, which ran the same sample once
    row(
        f"study of 1 sample ({est.records_per_sample - 2} configs, run API)",
        study,
        est.flops_per_sample,
        reps=1,
        warmup=0,
    )
    s = rows[-1]["seconds"]
    print(
        f"# study: {est.forwards_per_sample} forwards, {est.flops_per_sample:.3g} FLOPs = "
        f"{est.flops_per_sample / clean_flops:.1f} clean forwards for {est.records_per_sample - 2} configurations; "
        f"{s / rows[0]['seconds']:.1f} HF forwards of time"
    )
    print(f"# total {time.perf_counter() - t_start:.0f} s")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "device": name,
                    "shape": args.shape,
                    "frames": args.frames,
                    "positions": N,
                    "dtype": args.dtype,
                    "rows": rows,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
