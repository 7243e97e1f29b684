"""Writing the activation store next to a plain forward on the same model and inputs.

    python benchmarks/activation_store.py [--model organism|llava-onevision] [--samples 8] [--frames 8]
        [--hooks 'blocks.*.hook_resid_post'] [--positions video,last] [--dtype float32] [--reps 3]

Two comparisons, each timed interleaved (`timeit_interleaved`: A B A B …, so a busy machine slows
both alike), over the same samples:

- `end to end`: `vlens.features.cache.cache_activations` (what `vlens cache-activations` runs:
  frames sampled, the processor, one forward per sample up to the deepest hook, chunks written
  and fsynced into a fresh directory each repetition) against the same `model.to_inputs` + a
  plain `model(inputs)` per sample, writing nothing;
- `forward only`: `ActivationWriter.add` + `finish` on inputs built beforehand against
  `model(inputs)` on the same inputs;
- `no unembed`: the same writer against `model(inputs, return_type=None)`: the writer's forward
  stops before the unembedding (and at the deepest hook), which a plain `model(inputs)` does not,
  so this is the cost of capturing and writing alone.

Tokens/s counts every position of every sample's sequence (the forward's work); the ratio is
store / plain (goal ≥ 0.8). Bytes per token per hook: the chunk files' size over (stored rows ×
hooks), the position metadata included.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import family_checkpoint, timeit_interleaved

from vlens import HookedVideoLLM
from vlens.data import load_dataset
from vlens.features.cache import cache_activations, resolve_hooks
from vlens.features.store import ActivationStore, ActivationWriter
from vlens.inputs.prompts import mc_question
from vlens.organism import checkpoint_dir


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="organism", help="organism, or a benchmark family shape (_common)")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--hooks", default="blocks.*.hook_resid_post")
    ap.add_argument("--positions", default="video,last")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    path = checkpoint_dir() if args.model == "organism" else family_checkpoint(args.model)[0]
    model = HookedVideoLLM.from_pretrained(path)
    samples = load_dataset(f"synthetic:1,n={args.samples}")
    hooks = resolve_hooks(model, args.hooks)

    def build(s):
        return model.to_inputs(s.video, mc_question(s.question, s.options), n_frames=args.frames, fps=s.fps)

    built = [build(s) for s in samples]
    n_tokens = sum(int(x["input_ids"].shape[1]) for x in built)
    tmp = Path(tempfile.mkdtemp(prefix="vlens-bench-store-"))
    counter = iter(range(1 << 30))

    def fresh() -> Path:
        return tmp / f"run{next(counter)}"

    def plain_end_to_end() -> None:
        for s in samples:
            model(build(s))

    def store_end_to_end() -> None:
        out = fresh()
        cache_activations(
            model, samples, out, hooks=hooks, positions=args.positions, dtype=args.dtype, n_frames=args.frames
        )
        shutil.rmtree(out)

    def plain_forward() -> None:
        for x in built:
            model(x)

    def plain_no_unembed() -> None:
        for x in built:
            model(x, return_type=None)

    def store_forward() -> None:
        out = fresh()
        with ActivationWriter(out, model, hooks, positions=args.positions, dtype=args.dtype) as w:
            for s, x in zip(samples, built):
                w.add(s.id, x)
        shutil.rmtree(out)

    print(f"python benchmarks/activation_store.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(
        f"model={args.model} ({model.cfg.n_layers} layers × {model.cfg.d_model}) samples={args.samples} "
        f"frames={args.frames} tokens={n_tokens} hooks={len(hooks)} ({args.hooks}) positions={args.positions} "
        f"dtype={args.dtype} threads={torch.get_num_threads()} reps={args.reps}"
    )
    print(f"{'comparison':>12} {'plain tok/s':>12} {'store tok/s':>12} {'ratio':>6}")
    with torch.no_grad():
        for name, plain, store in (
            ("end to end", plain_end_to_end, store_end_to_end),
            ("forward only", plain_forward, store_forward),
            ("no unembed", plain_no_unembed, store_forward),
        ):
            t = timeit_interleaved({"plain": plain, "store": store}, reps=args.reps)
            print(
                f"{name:>12} {n_tokens / t['plain']:12.0f} {n_tokens / t['store']:12.0f} {t['plain'] / t['store']:6.2f}"
            )
    out = tmp / "sizes"
    cache_activations(
        model, samples, out, hooks=hooks, positions=args.positions, dtype=args.dtype, n_frames=args.frames
    )
    rows = ActivationStore(out).n_rows
    size = sum(f.stat().st_size for f in out.glob("chunk.*.safetensors"))
    width = model.cfg.d_model
    print(
        f"stored rows={rows} ({rows / n_tokens:.0%} of the tokens); chunk bytes={size:,}; "
        f"bytes per stored token per hook={size / rows / len(hooks):.1f} "
        f"(activations alone: {width} × {torch.finfo(getattr(torch, args.dtype)).bits // 8} = "
        f"{width * torch.finfo(getattr(torch, args.dtype)).bits // 8})"
    )
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
