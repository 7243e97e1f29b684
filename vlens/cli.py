"""The `vlens` command line: run the study's protocols, report, demo."""

from __future__ import annotations

import argparse
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
  vlens run flow --model ckpt/ --data mvbench:/data/MVBench --flow-window 9 --out runs/flow   # map-the-flow's protocols
  vlens run flow --model ckpt/ --data synthetic:1 --frames 8 --flow-window 3 --flow-protocols vql-to-ql,effective_pathway --out runs/f
  vlens run global2 --model ckpt/ --data synthetic:1 --frames 8 --controls 3 --out runs/c   # spec − random-edge control
  vlens run heads --model ckpt/ --data synthetic:1,n=16 --frames 8 --heads-spec lv,vt --top-k 8 --out runs/h   # heads by attribution, top K exact
  vlens run global2,open --model ckpt/ --data synthetic:1 --frames 8 --open prompt=mc,match=starts --out runs/o   # open-ended answers
  vlens report runs/vm                         # report.md + global1.png, global2.png, windows.png
  vlens run global1,global2,windows --model ckpt/ --data videomme:/data/Video-MME --dry-run   # forwards, FLOPs, time
  torchrun --nproc-per-node 8 -m vlens run windows --model ckpt/ --data videomme:/data/Video-MME --device cuda --out runs/vm
  vlens store check runs/vm                    # bad lines, torn tails; `vlens store repair runs/vm` moves them aside
  vlens cache-activations --model ckpt/ --data synthetic:1 --frames 8 --hooks 'blocks.*.hook_resid_post' --positions video,last --out acts/

Runs are resumable: run the same command again after an interruption and finished samples are
kept. An --out directory refuses a run with different settings (model, data, frames, dtype, ...).
A run where every sample is skipped exits 1 with the reason and the flag that fixes it.
"""


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes i/n (0-based), e.g. 0/4; got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--shard {text} is out of range: use i/n with 0 <= i < n (0-based)")
    return i, n


def _whole(flag: str):
    """An argparse type: a whole number ≥ 0 for `flag`, refused with the flag named."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = -1
        if value < 0:
            raise argparse.ArgumentTypeError(f"{flag} takes a whole number ≥ 0 (0, 1, 2, …); got {text!r}")
        return value

    return parse


def run_config(args: argparse.Namespace):
    """The `vlens run` flags as a RunConfig (all the CLI does besides printing)."""
    from vlens.run import RunConfig

    return RunConfig(
        model=args.model,
        revision=args.revision,
        data=args.data,
        out=args.out,
        protocols=args.protocol,
        frames=args.frames,
        allow_repeat=args.allow_repeat,
        limit=args.limit,
        task=args.task,
        duration=args.duration,
        domain=args.domain,
        task_type=args.task_type,
        window=args.window,
        shard=args.shard,
        device=args.device,
        dtype=args.dtype,
        engine=args.engine,
        max_memory_gib=args.max_memory,
        exit_layer=args.exit_layer,
        prune_layers=args.prune_layers,
        site=args.site,
        corruption=args.corruption,
        controls=args.controls,
        seed=args.seed,
        report=not args.no_report,
        progress=not args.quiet,
        options=_options(args),
    )


def _options(args: argparse.Namespace) -> dict:
    """Per-protocol options of the chosen protocols (`RunConfig.options`)."""
    chosen = {p.strip() for p in str(args.protocol).split(",")}
    out: dict = {}
    if "attribution" in chosen:
        out["attribution"] = {"readout": args.readout, "verify_top": args.verify_top}
    if "flow" in chosen:
        out["flow"] = {}
        if args.flow_window is not None:
            out["flow"]["window"] = args.flow_window
        if args.flow_protocols is not None:
            out["flow"]["protocols"] = args.flow_protocols
    elif args.flow_protocols is not None or args.flow_window is not None:
        raise ValueError(
            "--flow-window / --flow-protocols set options of the flow protocol: add `flow` to the protocols"
        )
    if "heads" in chosen:
        out["heads"] = {}
        if args.heads_spec is not None:
            out["heads"]["specs"] = args.heads_spec
        if args.top_k is not None:
            out["heads"]["top_k"] = args.top_k
    elif args.heads_spec is not None or args.top_k is not None:
        raise ValueError("--heads-spec / --top-k set options of the heads protocol: add `heads` to the protocols")
    if "open" in chosen:
        out["open"] = _open_options(args.open)
    elif args.open is not None:
        raise ValueError("--open sets options of the open protocol: add `open` to the protocols")
    return out


def _open_options(text: str | None) -> dict:
    """`--open prompt=mc,match=starts,max_new_tokens=4,temperature=0.7,seed=1` as a dict."""
    kinds = {"max_new_tokens": int, "top_k": int, "seed": int, "temperature": float, "top_p": float}
    out: dict = {}
    for part in [p for p in (text or "").split(",") if p.strip()]:
        key, eq, value = (x.strip() for x in part.partition("="))
        if not eq:
            raise ValueError(f"--open takes key=value pairs joined by commas, got {part!r}")
        try:
            out[key] = kinds[key](value) if key in kinds else value
        except ValueError:
            raise ValueError(f"--open {key} must be a number, got {value!r}") from None
    return out


def cmd_run(args: argparse.Namespace) -> int:
    """`vlens run`: build a RunConfig from the flags and run it (the run API). Returns the exit status."""
    from vlens.run import NothingScoredError, dry_run, run

    try:
        config = run_config(args)
    except (ValueError, TypeError) as e:
        print(f"vlens run: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        estimate = dry_run(config, measure=args.measure)
        from vlens.experiments.distributed import world

        if world().is_main:
            print(estimate.describe())
        return 0
    try:
        result = run(config)
    except NothingScoredError as e:
        print(f"vlens run: {e}", file=sys.stderr)
        return 1
    if result.rank == 0:
        t = result.totals
        print(
            f"done: {t.scored} scored, {t.skipped} skipped, {t.already} already in the store"
            + (f" ({result.world_size} processes)" if result.world_size > 1 else ""),
            file=sys.stderr,
        )
        if result.report is not None:
            print(f"report: {result.report}", file=sys.stderr)
    return 0


def cmd_store(args: argparse.Namespace) -> int:
    """`vlens store check|repair DIR`: report each result file's records and problems; `repair`
    moves bad lines aside (nothing is deleted). Returns 1 when `check` finds bad lines."""
    from vlens.experiments import store

    reports = store.repair(args.dir) if args.action == "repair" else store.check(args.dir)
    bad = False
    for r in reports:
        problems = []
        if r.bad_lines:
            lines = ", ".join(map(str, r.bad_lines[:10])) + (" …" if len(r.bad_lines) > 10 else "")
            problems.append(f"{len(r.bad_lines)} bad line(s) at {lines}")
        if r.torn_tail:
            problems.append("a torn last line (a killed write)")
        if r.duplicates:
            problems.append(f"{r.duplicates} duplicate key(s) (the first record of a key is used)")
        if r.locked:
            problems.append("being written by a live process")
        bad |= bool(r.bad_lines or r.torn_tail)
        fixed = (
            " → moved to " + r.path.name + ".corrupt"
            if args.action == "repair" and (r.bad_lines or r.torn_tail)
            else ""
        )
        print(f"{r.path.name}: {r.records} records" + (f"; {'; '.join(problems)}" if problems else ", ok") + fixed)
    if not reports:
        print(f"{args.dir}: no result files yet")
    if args.action == "check" and bad:
        print(f"run `vlens store repair {args.dir}` to move the bad lines aside (nothing is deleted)", file=sys.stderr)
        return 1
    return 0


def cmd_cache_activations(args: argparse.Namespace) -> int:
    """`vlens cache-activations`: write the activation store of --hooks at --positions over --data
    (vlens.features.cache). Returns 0, 1 when every sample was skipped, 2 on bad input."""
    import torch

    from vlens.data import load_dataset
    from vlens.experiments import distributed
    from vlens.features.cache import cache_activations
    from vlens.features.store import ActivationStoreError
    from vlens.inputs.layout import LayoutError
    from vlens.model.hooked_video_llm import HookedVideoLLM

    w = distributed.world()
    shard = distributed.shard_for(args.shard, w)
    samples = load_dataset(args.data, task=args.task, limit=args.limit)
    if not samples:
        print(f"vlens cache-activations: --data {args.data} selects no sample (--task {args.task!r})", file=sys.stderr)
        return 2
    local = Path(args.model).expanduser()
    model = HookedVideoLLM.from_pretrained(
        local.resolve() if local.exists() else args.model,
        revision=args.revision,
        dtype=getattr(torch, args.model_dtype),
        device=distributed.device_for(args.device, w),
    )
    settings = {"data": args.data, "task": args.task}

    def progress(done: int, total: int) -> None:
        if not args.quiet and (done == total or done % 50 == 0):
            print(f"  {done}/{total} samples", file=sys.stderr)

    try:
        counts = cache_activations(
            model,
            samples,
            args.out,
            hooks=args.hooks,
            positions=args.positions,
            dtype=args.dtype,
            shard=shard,
            n_frames=args.frames,
            allow_repeat=args.allow_repeat,
            chunk_rows=args.chunk_rows,
            settings=settings,
            progress=progress,
        )
    except (ActivationStoreError, LayoutError) as e:
        print(f"vlens cache-activations: {e}", file=sys.stderr)
        return 2
    i, n = counts.shard
    print(
        f"shard {i}/{n}: {counts.written} samples written, {counts.already} already in the store, "
        f"{len(counts.skipped)} skipped → {args.out}",
        file=sys.stderr,
    )
    if counts.skipped:
        sid, why = next(iter(counts.skipped.items()))
        print(f"  skipped, e.g. {sid}: {why}", file=sys.stderr)
        if counts.written + counts.already == 0:
            return 1
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """`vlens report DIR`: write the run's markdown report and figures; print it with `--print`. Returns 0."""
    from vlens.figures.report import write_report

    report = write_report(args.dir, format=args.format)
    print(report.read_text() if args.print else f"report: {report}")
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    """`vlens view ...`: the attention viewer's own command line (vlens.viewer.view). Returns its exit status."""
    from vlens.viewer.view import main as view_main

    return view_main(args.args)


def cmd_demo(args: argparse.Namespace) -> int:
    """`vlens demo`: the study on the shipped model organism and held-out synthetic clips. Returns the exit status."""
    from vlens.demo import main as demo_main

    return demo_main(args.out, n=args.n)


def cmd_organism(args: argparse.Namespace) -> int:
    """`vlens organism train|eval`: train the model organism (then evaluate it) or evaluate a checkpoint; prints held-out accuracy. Returns 0."""
    if args.action == "train":
        from vlens.organism.train import train

        log = train(args.out, steps=args.steps, seed=args.seed)
        print(
            f"trained {log['steps'][-1]} steps in {log['seconds'][-1]:.0f}s: final loss {log['loss'][-1]:.3f}; "
            f"checkpoint and train_log.json in {args.out}"
        )
        model_dir = args.out
    else:
        model_dir = args.model
    from vlens.organism.evaluate import evaluate

    acc = evaluate(model_dir, n=args.n)
    print("held-out accuracy: " + ", ".join(f"{k} {v:.1%}" for k, v in acc.items()))
    return 0


def _int_list(text: str, flag: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{flag} takes comma-separated integers, e.g. 8,32,64; got {text!r}") from None


def cmd_check(args: argparse.Namespace) -> int:
    """`vlens check MODEL`: the report of vlens.check.check, printed."""
    from vlens.check import check

    frames = _int_list(args.frames, "--frames")
    try:
        h, w = (int(x) for x in args.size.lower().split("x"))
    except ValueError:
        print(f"vlens check: --size takes HxW, e.g. 360x640; got {args.size!r}", file=sys.stderr)
        return 2
    dtypes = [d.strip() for d in args.dtype.split(",") if d.strip()]
    from vlens.families import UnsupportedModelError

    try:
        report = check(
            args.model, revision=args.revision, frames=frames, dtypes=dtypes, frame_size=(h, w), device=args.device
        )
    except (ValueError, UnsupportedModelError, NotImplementedError) as e:
        print(f"vlens check: {e}", file=sys.stderr)
        return 2
    print(report)
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
        print(
            f"vlens convert: {src} is not a release format vlens converts (architectures "
            f"{config.get('architectures')}); HF-format checkpoints load as they are",
            file=sys.stderr,
        )
        return 2
    if out.exists() and any(out.iterdir()):
        print(f"vlens convert: {out} exists and is not empty; choose a new output directory", file=sys.stderr)
        return 2
    try:
        refusal = conv.export_refusal(src, config, token_compression=not args.no_token_compression)
        if refusal is not None:
            raise ReleaseFormatError(refusal)
        hf_model, processor, _ = conv.build(
            src, dtype=getattr(torch, args.dtype), config=config, token_compression=False
        )
    except ReleaseFormatError as e:
        print(f"vlens convert: {e}", file=sys.stderr)
        return 2
    hf_model.save_pretrained(out)
    processor.save_pretrained(out)
    print(f"wrote {type(hf_model).__name__} + {type(processor).__name__} to {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The `vlens` argument parser with every subcommand and its flags."""
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
        "run",
        help="run protocols (global1, global2, windows, patching, lens, flow, heads, open, attribution, efficient) on a dataset",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Score every sample clean and under every knockout configuration of PROTOCOL "
        "(comma-separated: global1 = LV-K on layers ≥ i; global2 = LV/VT/VS/all in all layers; "
        "windows = each type on every window of --window layers; patching = activation patching of "
        "--site from the clean into a corrupted run at every layer × position group; lens = logit lens "
        "and question→frame attention per layer; flow = map-the-flow's pathways (query ← key, e.g. last ← video) "
        "knocked out in the centred window of --flow-window layers around every layer, its effective pathway, and "
        "the attention flow from last and question to every frame and role, docs/flow.md; heads = every "
        "--heads-spec knockout on each layer × query head alone, estimated from one backward, the --top-k "
        "largest re-run exactly, docs/knockouts.md). Results go to an append-only "
        "store in --out; an interrupted run resumes where it stopped.",
    )
    run.add_argument(
        "protocol",
        help="global1, global2, windows, patching, lens, flow, heads, open (or a comma-separated list), efficient, "
        "or attribution (the whole knockout study estimated from one backward per sample)",
    )
    run.add_argument(
        "--model",
        required=True,
        help="hub id (org/name; HF_HUB_OFFLINE=1 reads the cache only) or local HF checkpoint directory",
    )
    run.add_argument("--revision", default=None, help="the hub id's branch, tag or commit (default: main)")
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
    run.add_argument(
        "--engine",
        default="fast",
        choices=["fast", "naive"],
        help="fast: prefix/row reuse (default); naive: one forward per configuration",
    )
    run.add_argument("--max-memory", type=float, default=None, help="GiB the sweep engine may keep (cache + batches)")
    run.add_argument(
        "--exit-layer",
        type=int,
        default=None,
        help="efficient: vision leaves the sequence from this layer (default round(18/28·L))",
    )
    run.add_argument(
        "--prune-layers",
        type=int,
        default=None,
        help="efficient: per-frame attention in the first P layers (default round(8/28·L))",
    )
    run.add_argument(
        "--verify-top",
        type=int,
        default=0,
        metavar="K",
        help="attribution: re-run the K largest estimates exactly (stored as verified/<name>)",
    )
    run.add_argument(
        "--readout",
        default="letters",
        choices=["letters", "metrics", "logit_diff"],
        help="attribution: backward directions (letters: every option letter, most exact; see docs/attribution.md)",
    )
    run.add_argument(
        "--site",
        default="resid_pre",
        choices=["resid_pre", "attn_out", "mlp_out"],
        help="patching: which activation is patched (default resid_pre)",
    )
    run.add_argument(
        "--corruption",
        default="video",
        choices=["video", "reverse", "shuffle", "replace"],
        help="patching: the corrupted clip: the next sample's video (default), or this clip reversed / shuffled / frame 0 blacked out",
    )
    run.add_argument(
        "--flow-window",
        type=int,
        default=None,
        metavar="K",
        help="flow: window size k, centred on each layer and clipped to the model (default 9, map-the-flow's)",
    )
    run.add_argument(
        "--flow-protocols",
        default=None,
        metavar="A,B",
        help="flow: which of map-the-flow's protocols (default all): pathways cross_frame, "
        "question+options<-video, last<-video, last<-question+options, last<-last, last<-question, "
        "last<-true_option, last<-false_options, question<-video, true_option<-question, true_option<-video, "
        "last<-options; its targets cross-frame, vql-to-ql, question-and-options-to-last, vq-to-true-opt; "
        "effective_pathway; attention_flow",
    )
    run.add_argument(
        "--controls",
        type=_whole("--controls"),
        default=0,
        metavar="N",
        help="global1/global2/windows: also score N random-edge controls of every configuration (as many "
        "edges per row and layer, drawn at random) and report the effect minus the control's, with a paired "
        "95%% CI (docs/knockouts.md)",
    )
    run.add_argument(
        "--seed", type=_whole("--seed"), default=0, help="--controls: the first control's seed (then seed+1, …)"
    )
    run.add_argument(
        "--heads-spec",
        default=None,
        metavar="A,B",
        help="heads: the knockouts attributed per layer × query head (default lv,vt,vs; unions as lv+vt, or all)",
    )
    run.add_argument(
        "--top-k",
        type=int,
        default=None,
        metavar="K",
        help="heads: per sample and spec, the K heads with the largest estimate re-run exactly (default 5; "
        "1 … layers × query heads)",
    )
    run.add_argument(
        "--open",
        default=None,
        metavar="K=V,…",
        help="open: prompt=question|mc, match=exact|contains|starts, max_new_tokens=16, temperature=0 (greedy; "
        "> 0 samples), top_k, top_p, seed, protocols=global2 (knockout protocols joined by +; default: the run's); "
        "docs/experiments.md#open-ended-answers",
    )
    run.add_argument("--no-report", action="store_true", help="don't write report.md at the end")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="print the number of forwards, the engine's FLOPs and an estimated time (from timing "
        "--measure samples here), then stop; writes nothing",
    )
    run.add_argument(
        "--measure", type=int, default=2, help="--dry-run: samples to time (the first one warms up; default 2)"
    )
    run.set_defaults(func=cmd_run)

    st = sub.add_parser(
        "store",
        help="check or repair a run directory's result files",
        description="check: list every part file's records, bad lines, torn tails, duplicates "
        "(exit 1 if a file has bad lines). repair: move bad lines and torn tails to <file>.corrupt, "
        "keeping every good record; the next `vlens run` recomputes the affected samples.",
    )
    st.add_argument("action", choices=["check", "repair"], help="check the result files, or repair them")
    st.add_argument("dir", help="the run directory")
    st.set_defaults(func=cmd_store)

    cache = sub.add_parser(
        "cache-activations",
        help="write chosen hooks at a position group over a dataset to an activation store (SAEs, probes)",
        description="Run every sample of --data once (up to the deepest hook) and write --hooks at the "
        "--positions group to sharded safetensors with a manifest and a per-sample index (layout and labels: "
        "the answer, the question kind, the synthetic facts), read back by vlens.features.store.ActivationStore. "
        "Rerunning with the same settings resumes; other settings in the same --out are refused (docs/features.md).",
    )
    cache.add_argument(
        "--model",
        required=True,
        help="hub id (org/name; HF_HUB_OFFLINE=1 reads the cache only) or local HF checkpoint directory",
    )
    cache.add_argument("--revision", default=None, help="the hub id's branch, tag or commit (default: main)")
    cache.add_argument(
        "--data", required=True, help="videomme:DIR, mvbench:DIR, egoschema:DIR or synthetic[:SEED[,n=…]]"
    )
    cache.add_argument("--out", required=True, help="store directory (created; resumed if it exists)")
    cache.add_argument(
        "--hooks",
        required=True,
        help="comma-separated hook names or glob patterns, e.g. 'blocks.*.hook_resid_post' or "
        "blocks.3.hook_resid_post,hook_video_features",
    )
    cache.add_argument(
        "--positions",
        default="all",
        help="the position group: segments (video, text, ...), roles (question, last, ...), vision or all, "
        "comma-separated for their union (default all)",
    )
    cache.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="stored dtype")
    cache.add_argument(
        "--model-dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="the model's dtype"
    )
    cache.add_argument("--frames", type=int, default=32, help="frames sampled uniformly per video (default 32)")
    cache.add_argument("--allow-repeat", action="store_true", help="repeat frames of clips shorter than --frames")
    cache.add_argument("--limit", type=int, default=None, help="first N samples (after filters)")
    cache.add_argument("--task", default=None, help="MVBench task / Video-MME task_type / synthetic kind")
    cache.add_argument(
        "--shard", type=_shard, default=(0, 1), help="i/n: this process takes samples i, i+n, … (0-based)"
    )
    cache.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, …")
    cache.add_argument(
        "--chunk-rows", type=int, default=65536, help="rows buffered before a chunk file is written (the memory bound)"
    )
    cache.add_argument("--quiet", action="store_true", help="no progress lines")
    cache.set_defaults(func=cmd_cache_activations)

    rep = sub.add_parser(
        "report",
        help="write report.md and plots for a run directory",
        description="Summarise a run directory (what `vlens run` wrote) into report.md and its figures: "
        "accuracy, performance ratio, p(correct), logit difference and KL per configuration with 95% "
        "bootstrap intervals, chance and the language prior, patching and lens sections when they ran.",
    )
    rep.add_argument("dir", help="the run directory (settings.json and results*.jsonl)")
    rep.add_argument("--print", action="store_true", help="print the report to stdout")
    rep.add_argument("--format", default="png", choices=["png", "pdf", "svg"], help="figure format (default png)")
    rep.set_defaults(func=cmd_report)

    view = sub.add_parser(
        "view",
        add_help=False,
        help="write a self-contained HTML attention viewer for a run directory (vlens view DIR --help)",
    )
    view.add_argument(
        "args", nargs=argparse.REMAINDER, help="the viewer's own arguments: DIR [--sample --out --layers --device]"
    )
    view.set_defaults(func=cmd_view)

    demo = sub.add_parser(
        "demo",
        help="the study end to end on the shipped model organism (no network, minutes on CPU)",
        description="Run the whole study on the model organism shipped inside the package (a tiny "
        "LLaVA-OneVision trained on synthetic clips): clean, the language prior, LV/VT/VS knockouts "
        "in the three protocols, and the logit lens; writes report.md with figures and prints a "
        "per-kind summary. No downloads; about two minutes on 2 CPU cores.",
    )
    demo.add_argument("--out", default=None, help="output directory (default: ./vlens-demo; rerunning resumes)")
    demo.add_argument("--n", type=int, default=120, help="held-out synthetic clips (default 120)")
    demo.set_defaults(func=cmd_demo)
    conv = sub.add_parser(
        "convert",
        help="write a release in its authors' format (LongVA, LLaVA-NeXT-Video-Qwen, "
        "InternVideo2.5) as an HF-format directory, where a transformers class computes it exactly",
    )
    conv.add_argument("dir", help="the release's directory (config.json, *.safetensors, tokenizer files)")
    conv.add_argument("out", help="output directory (new or empty)")
    conv.add_argument(
        "--no-token-compression",
        action="store_true",
        help="InternVideo2.5: write the plain InternVL2.5 path (no HiCo token compression), which HF computes",
    )
    conv.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    conv.set_defaults(func=cmd_convert)
    chk = sub.add_parser(
        "check",
        help="what a checkpoint is and costs, from its config and processor alone (no weights read)",
        description="The family, the layout of a sample prompt, tokens per frame, and per dtype and frame count "
        "the bytes of weights, KV cache, activation cache, N×N attention patterns and an attribution backward, "
        "the forward FLOPs, and whether it fits the present device (docs/real-checkpoints.md).",
    )
    chk.add_argument("model", help="hub id (org/name) or local HF checkpoint directory")
    chk.add_argument("--revision", default=None, help="the hub id's branch, tag or commit")
    chk.add_argument("--frames", default="8,32,64", help="frame counts, comma-separated (default 8,32,64)")
    chk.add_argument("--dtype", default="bfloat16,float32", help="dtypes, comma-separated (default bfloat16,float32)")
    chk.add_argument("--size", default="360x640", help="the sample video's frame size HxW (default 360x640)")
    chk.add_argument("--device", default=None, help="the device whose memory decides 'fits' (default: cuda if any)")
    chk.set_defaults(func=cmd_check)
    org = sub.add_parser(
        "organism",
        help="retrain or evaluate the model organism (docs/organism.md)",
        description="train: retrain the model organism from scratch (seeded; ~25 min on 2 cores). "
        "eval: its held-out accuracy per question kind.",
    )
    org.add_argument("action", choices=["train", "eval"], help="train a new organism, or evaluate one")
    org.add_argument("--out", default="organism", help="train: output checkpoint directory (default ./organism)")
    org.add_argument("--model", default=None, help="eval: checkpoint directory (default: the shipped organism)")
    org.add_argument(
        "--steps", type=int, default=2000, help="train: optimizer steps (default 2000, ~25 min on 2 cores)"
    )
    org.add_argument("--seed", type=int, default=0, help="train: the seed of initialisation and data (default 0)")
    org.add_argument("--n", type=int, default=240, help="held-out clips to evaluate (default 240)")
    org.set_defaults(func=cmd_organism)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vlens` command: parse `argv` (sys.argv when None), run the subcommand, return its exit status."""
    import logging

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["view"]:  # the viewer parses its own arguments (`vlens view DIR --help`)
        from vlens.viewer.view import main as view_main

        return view_main(argv[1:])
    args = build_parser().parse_args(argv)
    # imported after parsing: `vlens --help` and `vlens <command> --help` never load torch
    from vlens.data import DatasetError
    from vlens.experiments.flow_protocol import FlowError
    from vlens.experiments.heads_protocol import HeadsError
    from vlens.experiments.open_protocol import OpenEndedError
    from vlens.experiments.store import StoreError
    from vlens.interventions.patching import PatchingError
    from vlens.run import RunError

    if not logging.getLogger("vlens.run").handlers:  # the run's one-line header, on stderr
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logging.getLogger("vlens.run").addHandler(handler)
        logging.getLogger("vlens.run").setLevel(logging.INFO)
    try:
        return args.func(args)
    except (
        DatasetError,
        StoreError,
        PatchingError,
        RunError,
        FlowError,
        HeadsError,
        OpenEndedError,
        FileNotFoundError,
    ) as e:
        print(f"vlens {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
