"""Forward with a knockout in all layers: fast path (SDPA with the fused mask; on CUDA also
FlexAttention's block mask) vs explicit path vs HF SDPA (clean) vs transformer_lens'
TransformerBridge (eager, knockout as a pattern hook), in one process.

    python benchmarks/knockout.py [--shapes tiny 0.5B] [--frames 4 8] [--spec lv] [--device cpu]

Ratios are against HF SDPA's *clean* forward (goal for the fast path: ≤ 1.2×).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import checkpoint, clip, timeit, timeit_interleaved

from vlens import HookedVideoLLM
from vlens import knockout as ko


def bridge_for(path, hf_model, device):
    """TransformerBridge on the same HF weights, or None with the reason it could not load."""
    try:
        from transformer_lens.model_bridge import TransformerBridge

        return TransformerBridge.boot_transformers(str(path), hf_model=hf_model, device=device), None
    except Exception as e:  # report, don't fail: the bridge is a peer, not a dependency
        return None, f"{type(e).__name__}: {str(e).splitlines()[0][:100]}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="+", default=["tiny", "0.5B"])
    ap.add_argument("--frames", nargs="+", type=int, default=[4, 8])
    ap.add_argument("--spec", default="lv", help="knockout: lv, vt, vs, lv+vt+vs ...")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-bridge", action="store_true")
    args = ap.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    spec = ko.from_name(args.spec)
    print(f"device={args.device} dtype={args.dtype} threads={torch.get_num_threads()} knockout={spec} @ all layers")
    flex = args.device.startswith("cuda")  # FlexAttention's fused kernel exists on CUDA only
    flex_head = f"{'flex':>8}" if flex else ""
    print(
        f"{'shape':>6} {'frames':>6} {'pos':>5} {'HF clean s':>10} {'fast':>7}{flex_head} {'explicit':>8} "
        f"{'bridge':>7}   (ratios to HF clean)"
    )
    for shape in args.shapes:
        path = checkpoint(shape)
        model = HookedVideoLLM.from_pretrained(path, dtype=dtype, device=args.device)
        hf = model.hf_model
        bridge, why = (None, "skipped") if args.no_bridge else bridge_for(path, hf, args.device)
        for n in args.frames:
            inputs = model.to_inputs(clip(n), "What color is the object?", n_frames=n)
            hooks = spec.hooks(inputs)

            def on_path(path):
                def run():
                    with model.attention_path_as(path):
                        model.run_with_hooks(inputs, fwd_hooks=hooks)
                    assert model.last_attention_path == path

                return run

            contenders = {"hf": lambda: hf(**inputs), "fast": on_path("fast"), "explicit": on_path("explicit")}
            if flex:
                on_path("flex")()  # compile outside the timing
                contenders["flex"] = on_path("flex")
            t = timeit_interleaved(contenders, args.reps, device=args.device)
            t_hf, t_fast, t_x = t["hf"], t["fast"], t["explicit"]
            flex_txt = f" {t['flex'] / t_hf:>6.2f}x" if flex else ""
            bridge_txt = "   n/a"
            if bridge is not None:
                hook = hooks[0][1]
                names = [f"blocks.{l}.attn.hook_pattern" for l in range(model.cfg.n_layers)]
                try:
                    t_b = timeit(
                        lambda: bridge.run_with_hooks(
                            inputs["input_ids"],
                            fwd_hooks=[(nm, hook) for nm in names],
                            **{k: v for k, v in inputs.items() if k != "input_ids"},
                        ),
                        args.reps,
                        device=args.device,
                    )
                    with torch.no_grad():
                        out_b = bridge.run_with_hooks(
                            inputs["input_ids"],
                            fwd_hooks=[(nm, hook) for nm in names],
                            **{k: v for k, v in inputs.items() if k != "input_ids"},
                        )
                        out_ours = model.run_with_hooks(inputs, fwd_hooks=hooks)
                    out_b = getattr(out_b, "logits", out_b)
                    agree = (out_b[0, -1].float() - out_ours[0, -1].float()).abs().max().item()
                    bridge_txt = f"{t_b / t_hf:>6.2f}x (|Δ| {agree:.1e})"
                except Exception as e:
                    why = f"{type(e).__name__}: {str(e).splitlines()[0][:100]}"
                    bridge = None
            print(
                f"{shape:>6} {n:>6} {inputs.seq_len:>5} {t_hf:>10.4f} {t_fast / t_hf:>6.2f}x{flex_txt} {t_x / t_hf:>7.2f}x {bridge_txt}"
            )
        if bridge is None:
            print(f"  TransformerBridge: not measured ({why})")
        model = hf = bridge = None  # free the weights before the next shape


if __name__ == "__main__":
    main()
