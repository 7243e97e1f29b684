"""The vision path with and without vision hook points attached (vlens.model.vision_hooks).

    python benchmarks/vision_hooks.py [--families llava-onevision qwen2.5-vl] [--frames 4] [--device cpu]

Per family (the benchmark shapes of _common.FAMILY_SHAPES), seconds per run of the vision path
alone (`model.embed_inputs`: tower + projector + placement, the LM does not run):

- `clean`: no vision hook attached — HF's modules untouched (nothing is installed);
- `resid`: an identity hook on every block's `hook_resid_post` (PyTorch hooks, HF's attention);
- `pattern`: an identity hook on every block's `attn.hook_pattern` (the hooked eager attention);
- `hf eager`: no hook, the tower switched to HF's own eager attention — what `pattern` should cost.

and the cost of the check that decides nothing needs installing (`installed()` with no hook), in
microseconds. Ratios are to `clean`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import clip, family_checkpoint, timeit_interleaved

from vlens import HookedVideoLLM

DEFAULT = ["llava-onevision", "qwen2.5-vl", "qwen3-vl", "smolvlm2", "internvl"]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", nargs="+", default=DEFAULT)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args(argv)
    print(f"device={args.device} threads={torch.get_num_threads()} frames={args.frames}")
    print(f"{'family':>16} {'tower':>9} {'clean s':>9} {'resid':>7} {'pattern':>8} {'hf eager':>9} {'check µs':>9}")
    for family in args.families:
        path, kw = family_checkpoint(family)
        model = HookedVideoLLM.from_pretrained(path, device=args.device)
        inputs = model.to_inputs(clip(args.frames), "What color is the object?", n_frames=args.frames, **kw)
        vh = model.vision_hooks
        tower = vh.tower
        assert tower is not None, f"{family}: no hookable tower"
        configs = tower.attn_configs
        T = len(vh.blocks)
        ident = lambda t, hook: t  # noqa: E731

        def run(hooks=()):
            with model.hooks(fwd_hooks=list(hooks)):
                model.embed_inputs(inputs)

        def hf_eager():
            saved = [(c, c._attn_implementation) for c in configs]
            for c, _ in saved:
                c._attn_implementation = "eager"
            try:
                model.embed_inputs(inputs)
            finally:
                for c, impl in saved:
                    c._attn_implementation = impl

        fns = {
            "clean": run,
            "resid": lambda: run([(f"vision.blocks.{l}.hook_resid_post", ident) for l in range(T)]),
        }
        if vh.pattern_layers():
            fns["pattern"] = lambda: run([(f"vision.blocks.{l}.attn.hook_pattern", ident) for l in vh.pattern_layers()])
            fns["hf eager"] = hf_eager
        t = timeit_interleaved(fns, reps=args.reps, device=args.device)
        t0 = time.perf_counter()
        for _ in range(1000):
            with vh.installed():
                pass
        check_us = (time.perf_counter() - t0) / 1000 * 1e6
        r = {k: v / t["clean"] for k, v in t.items()}
        print(
            f"{family:>16} {T:>3} blocks {t['clean']:9.4f} {r['resid']:7.2f} {r.get('pattern', float('nan')):8.2f} "
            f"{r.get('hf eager', float('nan')):9.2f} {check_us:9.1f}"
        )


if __name__ == "__main__":
    main()
