"""The `vlens` command line: run the study's protocols, report, demo."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

EXAMPLES = """\
examples:
  vlens demo                                   # the whole study on a small local model, no network
  vlens run global1 --model ckpt/ --data videomme:/data/Video-MME --frames 32 --out runs/vm
  vlens run global1,global2,windows --model ckpt/ --data mvbench:/data/MVBench --task action_sequence --limit 100 --out runs/mvb
  vlens run windows --model ckpt/ --data egoschema:/data/egoschema --shard 0/4 --out runs/ego   # 4 processes: 0/4 .. 3/4
  vlens run efficient --model ckpt/ --data videomme:/data/Video-MME --exit-layer 18 --prune-layers 8 --out runs/eff
  vlens run windows,patching,lens --model ckpt/ --data synthetic:1,n=60 --frames 8 --out runs/mech   # one layer axis
  vlens report runs/vm                         # report.md + global1.png, global2.png, windows.png

Runs are resumable: run the same command again after an interruption and finished samples are
kept. An --out directory refuses a run with different settings (model, data, frames, dtype, ...).
"""


def _fingerprint(model_dir: Path) -> str:
    """Config + weight file names and sizes: changes when the checkpoint does, cheap to compute."""
    h = hashlib.sha256()
    for p in sorted(model_dir.glob("*.json")) + sorted(model_dir.glob("*.safetensors")):
        h.update(p.name.encode())
        h.update(str(p.stat().st_size).encode())
        if p.suffix == ".json" and p.stat().st_size < 1_000_000:
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes i/n (0-based), e.g. 0/4; got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--shard {text} is out of range: use i/n with 0 <= i < n (0-based)")
    return i, n


def cmd_run(args: argparse.Namespace) -> int:
    import torch

    import vlens
    from vlens import HookedVideoLLM
    from vlens.data import load_dataset
    from vlens.experiments import PROTOCOLS, configs_for, run_study
    from vlens.experiments.mechanisms import MECHANISMS, run_lens, run_patching
    from vlens.experiments.runner import shard_of
    from vlens.prompts import PROMPT_FORMAT
    from vlens.store import ResultStore

    protocols = [p.strip() for p in args.protocol.split(",") if p.strip()]
    if "efficient" in protocols and len(protocols) > 1:
        print("vlens run: run `efficient` on its own (it has its own settings)", file=sys.stderr)
        return 2
    unknown = [p for p in protocols if p not in (*PROTOCOLS, *MECHANISMS, "efficient")]
    if unknown:
        print(f"vlens run: unknown protocol(s) {unknown}; choose from {', '.join((*PROTOCOLS, *MECHANISMS, 'efficient'))}",
              file=sys.stderr)
        return 2
    model_dir = Path(args.model).resolve()
    filters = {"duration": args.duration, "domain": args.domain, "task_type": args.task_type}
    samples = load_dataset(args.data, limit=args.limit, task=args.task, **filters)
    samples = shard_of(samples, args.shard)
    model = HookedVideoLLM.from_pretrained(model_dir, dtype=getattr(torch, args.dtype), device=args.device)
    efficient = None
    if protocols == ["efficient"]:
        from vlens.efficient import EfficientConfig

        scaled = EfficientConfig.scaled(model.cfg.n_layers)
        efficient = EfficientConfig(
            scaled.exit_layer if args.exit_layer is None else args.exit_layer,
            scaled.temporal_prune_layers if args.prune_layers is None else args.prune_layers,
        )
        efficient.check(model.cfg.n_layers)
    knockouts = [p for p in protocols if p in PROTOCOLS]
    configs = [c for p in knockouts for c in configs_for(p, model.cfg.n_layers, window=args.window)]
    settings = {
        "model": str(model_dir),
        "model_fingerprint": _fingerprint(model_dir),
        "n_layers": model.cfg.n_layers,
        "data": args.data,
        "task": args.task,
        "filters": {k: v for k, v in filters.items() if v is not None},
        "protocols": protocols,
        "window": args.window,
        "frames": args.frames,
        "allow_repeat": args.allow_repeat,
        "dtype": args.dtype,
        "prompt_format": PROMPT_FORMAT,
        **({"exit_layer": efficient.exit_layer, "prune_layers": efficient.temporal_prune_layers} if efficient else {}),
        **({"site": args.site, "corruption": args.corruption} if "patching" in protocols else {}),
        "vlens_version": vlens.__version__,
    }
    store = ResultStore(args.out, settings, shard=args.shard)
    what = f"{len(configs) + 1} configurations" if configs else "clean"
    what += "".join(f" + {m}" for m in MECHANISMS if m in protocols)
    print(f"{len(samples)} samples × {what} → {store.path}", file=sys.stderr)
    max_memory = None if args.max_memory is None else int(args.max_memory * 2**30)
    if efficient is not None:
        from vlens.experiments.efficient_run import run_efficient

        counts = run_efficient(model, samples, efficient, store, n_frames=args.frames, allow_repeat=args.allow_repeat,
                               progress=not args.quiet)
    else:
        common = dict(n_frames=args.frames, allow_repeat=args.allow_repeat, progress=not args.quiet)
        counts = {"done": 0, "skipped": 0, "already": 0}
        runs = []
        if knockouts:
            runs.append(lambda: run_study(model, samples, configs, store, engine=args.engine, max_memory=max_memory, **common))
        if "patching" in protocols:
            runs.append(lambda: run_patching(model, samples, store, site=args.site, corruption=args.corruption, **common))
        if "lens" in protocols:
            runs.append(lambda: run_lens(model, samples, store, **common))
        for run in runs:
            for k, v in run().items():
                counts[k] = max(counts[k], v)
    print(f"done: {counts['done']} scored, {counts['skipped']} skipped, {counts['already']} already in the store", file=sys.stderr)
    if not args.no_report:
        from vlens.plot import write_report

        print(f"report: {write_report(args.out)}", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from vlens.plot import write_report

    report = write_report(args.dir)
    print(report.read_text() if args.print else f"report: {report}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from vlens.demo import main as demo_main

    return demo_main(args.out, n=args.n)


def cmd_organism(args: argparse.Namespace) -> int:
    if args.action == "train":
        from vlens.organism.train import train

        log = train(args.out, steps=args.steps, seed=args.seed)
        print(f"trained {log['steps'][-1]} steps in {log['seconds'][-1]:.0f}s: final loss {log['loss'][-1]:.3f}; "
              f"checkpoint and train_log.json in {args.out}")
        model_dir = args.out
    else:
        model_dir = args.model
    from vlens.organism.evaluate import evaluate

    acc = evaluate(model_dir, n=args.n)
    print("held-out accuracy: " + ", ".join(f"{k} {v:.1%}" for k, v in acc.items()))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    """A release in its authors' format → an HF-format directory, only where a transformers class
    computes exactly the release's equations (otherwise a clear error: vlens loads it directly)."""
    import torch

    from vlens.families import release_converter
    from vlens.families.release_common import ReleaseFormatError, read_config

    src, out = Path(args.dir), Path(args.out)
    if not (src / "config.json").exists():
        print(f"vlens convert: {src} has no config.json; pass a release checkpoint directory", file=sys.stderr)
        return 2
    config = read_config(src)
    conv = release_converter(config)
    if conv is None:
        print(f"vlens convert: {src} is not a release format vlens converts (architectures "
              f"{config.get('architectures')}); HF-format checkpoints load as they are", file=sys.stderr)
        return 2
    if out.exists() and any(out.iterdir()):
        print(f"vlens convert: {out} exists and is not empty; choose a new output directory", file=sys.stderr)
        return 2
    try:
        refusal = conv.export_refusal(src, config, token_compression=not args.no_token_compression)
        if refusal is not None:
            raise ReleaseFormatError(refusal)
        hf_model, processor, _ = conv.build(src, dtype=getattr(torch, args.dtype), config=config, token_compression=False)
    except ReleaseFormatError as e:
        print(f"vlens convert: {e}", file=sys.stderr)
        return 2
    hf_model.save_pretrained(out)
    processor.save_pretrained(out)
    print(f"wrote {type(hf_model).__name__} + {type(processor).__name__} to {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vlens",
        description="vlens: TransformerLens-style interpretability for video LLMs. Attention knockouts "
        "(language→video, across frames, within a frame) in chosen layers, scored on multiple-choice "
        "video benchmarks, reproducing Gou et al. (arXiv 2508.15360).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run", help="run protocols (global1, global2, windows, patching, lens, efficient) on a dataset", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Score every sample clean and under every knockout configuration of PROTOCOL "
        "(comma-separated: global1 = LV-K on layers ≥ i; global2 = LV/VT/VS/all in all layers; "
        "windows = each type on every window of --window layers; patching = activation patching of "
        "--site from the clean into a corrupted run at every layer × position group; lens = logit lens "
        "and question→frame attention per layer). Results go to an append-only "
        "store in --out; an interrupted run resumes where it stopped.",
    )
    run.add_argument("protocol", help="global1, global2, windows, patching, lens (or a comma-separated list), or efficient")
    run.add_argument("--model", required=True, help="local HF checkpoint directory")
    run.add_argument("--data", required=True, help="videomme:DIR, mvbench:DIR, egoschema:DIR or synthetic[:SEED[,n=…]]")
    run.add_argument("--out", required=True, help="run directory (created; resumed if it exists)")
    run.add_argument("--frames", type=int, default=32, help="frames sampled uniformly per video (default 32)")
    run.add_argument("--allow-repeat", action="store_true", help="repeat frames of clips shorter than --frames")
    run.add_argument("--limit", type=int, default=None, help="first N samples (after filters)")
    run.add_argument("--task", default=None, help="MVBench task / Video-MME task_type / synthetic kind")
    run.add_argument("--duration", default=None, help="Video-MME: short, medium or long")
    run.add_argument("--domain", default=None, help="Video-MME domain")
    run.add_argument("--task-type", default=None, help="Video-MME task_type")
    run.add_argument("--window", type=int, default=4, help="window size k for the windows protocol (default 4)")
    run.add_argument("--shard", type=_shard, default=(0, 1), help="i/n: this process takes samples i, i+n, … (0-based)")
    run.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, …")
    run.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    run.add_argument("--engine", default="fast", choices=["fast", "naive"], help="fast: prefix/row reuse (default); naive: one forward per configuration")
    run.add_argument("--max-memory", type=float, default=None, help="GiB the sweep engine may keep (cache + batches)")
    run.add_argument("--exit-layer", type=int, default=None, help="efficient: vision leaves the sequence from this layer (default round(18/28·L))")
    run.add_argument("--prune-layers", type=int, default=None, help="efficient: per-frame attention in the first P layers (default round(8/28·L))")
    run.add_argument("--site", default="resid_pre", choices=["resid_pre", "attn_out", "mlp_out"], help="patching: which activation is patched (default resid_pre)")
    run.add_argument("--corruption", default="video", choices=["video", "reverse", "shuffle", "replace"],
                     help="patching: the corrupted clip: the next sample's video (default), or this clip reversed / shuffled / frame 0 blacked out")
    run.add_argument("--no-report", action="store_true", help="don't write report.md at the end")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_run)

    rep = sub.add_parser("report", help="write report.md and plots for a run directory")
    rep.add_argument("dir")
    rep.add_argument("--print", action="store_true", help="print the report to stdout")
    rep.set_defaults(func=cmd_report)

    demo = sub.add_parser("demo", help="the study end to end on the shipped model organism (no network, minutes on CPU)")
    demo.add_argument("--out", default=None, help="output directory (default: ./vlens-demo; rerunning resumes)")
    demo.add_argument("--n", type=int, default=120, help="held-out synthetic clips (default 120)")
    demo.set_defaults(func=cmd_demo)
    conv = sub.add_parser("convert", help="write a release in its authors' format (LongVA, LLaVA-NeXT-Video-Qwen, "
                          "InternVideo2.5) as an HF-format directory, where a transformers class computes it exactly")
    conv.add_argument("dir", help="the release's directory (config.json, *.safetensors, tokenizer files)")
    conv.add_argument("out", help="output directory (new or empty)")
    conv.add_argument("--no-token-compression", action="store_true",
                      help="InternVideo2.5: write the plain InternVL2.5 path (no HiCo token compression), which HF computes")
    conv.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    conv.set_defaults(func=cmd_convert)
    org = sub.add_parser("organism", help="retrain or evaluate the model organism (docs/organism.md)")
    org.add_argument("action", choices=["train", "eval"])
    org.add_argument("--out", default="organism", help="train: output checkpoint directory (default ./organism)")
    org.add_argument("--model", default=None, help="eval: checkpoint directory (default: the shipped organism)")
    org.add_argument("--steps", type=int, default=2000, help="train: optimizer steps (default 2000, ~25 min on 2 cores)")
    org.add_argument("--seed", type=int, default=0)
    org.add_argument("--n", type=int, default=240, help="held-out clips to evaluate (default 240)")
    org.set_defaults(func=cmd_organism)
    return parser


def main(argv: list[str] | None = None) -> int:
    from vlens.data import DatasetError
    from vlens.patching import PatchingError
    from vlens.store import StoreError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DatasetError, StoreError, PatchingError, FileNotFoundError) as e:
        print(f"vlens {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
