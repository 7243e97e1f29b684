"""The run API: a frozen `RunConfig` in, a typed `RunResult` out. `vlens run` and `vlens demo` only
build a config and call `run`; a notebook does the same.

    from vlens.run import RunConfig, run
    result = run(RunConfig(model="ckpt/", data="videomme:/data/Video-MME", out="runs/vm",
                           protocols=("global1", "global2"), frames=32, dtype="bfloat16", device="cuda"))
    result.to_pandas()                      # one row per configuration: accuracy, ratio, CIs, ...
    result.analysis.summary["global2/lv"]   # ConfigSummary

What a run does: load the dataset (filters, then `limit`), take this process's share (`shard`,
and the launcher's rank under torchrun / accelerate launch), load the model, build the protocols,
run the per-sample loop into the store (resuming whatever is there), wait for the other ranks,
then analyse the whole directory and (rank 0) write the report. Baselines that need the dataset
(the language prior, the next sample's clip for patching) read the whole dataset, never the share.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from vlens.arguments import ArgumentError, as_index
from vlens.experiments import distributed
from vlens.experiments.protocols import Cost, clean_cost
from vlens.experiments.registry import KNOCKOUT_PROTOCOLS, build_protocols, check_names, check_options
from vlens.experiments.runner import (
    Counts,
    SampleContext,
    record_names,
    run_samples,
    sample_inputs,
    shard_of,
)

if TYPE_CHECKING:
    from vlens.experiments.analysis import StudyAnalysis

log = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")
ENGINES = ("fast", "naive")


class RunError(ValueError):
    """A run could not produce results; the message says why and which setting fixes it."""


class NothingScoredError(RunError):
    """Every sample of the run was skipped (the store keeps the skip records and reasons)."""


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs, validated on construction (a bad value is a ValueError/TypeError
    naming the field and the fix). Field ↔ CLI flag: `frames` ↔ `--frames`, `max_memory_gib` ↔
    `--max-memory`, `prune_layers` ↔ `--prune-layers`, and so on.

    Args:
        model: a hub id ("org/name", resolved by huggingface_hub; `HF_HUB_OFFLINE` honoured) or a
            local checkpoint directory. revision: the hub id's branch, tag or commit.
        data: `videomme:DIR`, `mvbench:DIR`, `egoschema:DIR` or `synthetic[:SEED[,n=…]]`.
        out: run directory (created; resumed if it holds the same settings).
        protocols: names from `vlens.experiments.registry.available()`; a comma-separated string is split.
        frames: frames sampled uniformly per clip. allow_repeat: repeat frames of shorter clips.
        limit: the first N samples (after filters). task, duration, domain, task_type: dataset filters.
        window: window size k of the `windows` protocol.
        shard: (i, n): this process takes samples i, i+n, … (0-based); combined with launcher ranks.
        device, dtype: where and in what precision the model runs.
        engine: `fast` (sweep engine) or `naive` (one forward per configuration; same numbers).
        max_memory_gib: what the sweep engine may keep (cache + batches), GiB.
        exit_layer, prune_layers: `efficient` (defaults scale the study's 18/28 and 8/28).
        site, corruption: `patching`.
        controls: random-edge controls per knockout configuration (`--controls`; 0: none), stored
            as `control/<configuration>/seed<s>` and reported beside it (spec − control, paired CI).
        seed: the first control's seed (`--seed`); the others take seed+1, seed+2, ….
        options: per-protocol options of plugged-in protocols, `{protocol: {...}}`.
        report: write report.md and figures at the end (rank 0).
        progress: show the progress bar.
    """

    model: str | Path
    data: str
    out: str | Path
    protocols: Sequence[str] = ("global1", "global2", "windows")  # a str too (split on commas); a tuple once built
    frames: int = 32
    allow_repeat: bool = False
    limit: int | None = None
    task: str | None = None
    duration: str | None = None
    domain: str | None = None
    task_type: str | None = None
    window: int = 4
    shard: tuple[int, int] = (0, 1)
    device: str = "cpu"
    dtype: str = "float32"
    engine: str = "fast"
    max_memory_gib: float | None = None
    exit_layer: int | None = None
    prune_layers: int | None = None
    site: str = "resid_pre"
    corruption: str = "video"
    controls: int = 0
    seed: int = 0
    options: Mapping[str, Mapping] = field(default_factory=dict)
    revision: str | None = None
    report: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        protocols = self.protocols
        if isinstance(protocols, str):
            protocols = tuple(p.strip() for p in protocols.split(",") if p.strip())
        elif not isinstance(protocols, Sequence):
            raise ArgumentError(f"protocols must be names or a comma-separated string, got {protocols!r}")
        object.__setattr__(self, "protocols", tuple(protocols))
        check_names(self.protocols)
        if not isinstance(self.options, Mapping):
            raise ArgumentError(f"options must be a dict {{protocol: {{...}}}}, got {self.options!r}")
        check_options(self.protocols, self.options)
        if not isinstance(self.data, str) or not self.data:
            raise ArgumentError(f"data must be a dataset spec like 'videomme:/data/Video-MME', got {self.data!r}")
        for name, lo in (("frames", 1), ("window", 1), ("limit", 1)):
            v = getattr(self, name)
            if name == "limit" and v is None:
                continue
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ArgumentError(f"{name} must be an integer ≥ {lo}, got {v!r}")
        shard = tuple(self.shard) if isinstance(self.shard, Sequence) and not isinstance(self.shard, str) else ()
        if not (
            len(shard) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) for x in shard)
            and shard[1] >= 1
            and 0 <= shard[0] < shard[1]
        ):
            raise ArgumentError(f"shard must be (i, n) with integers 0 <= i < n (0-based), got {self.shard!r}")
        object.__setattr__(self, "shard", shard)
        if self.dtype not in DTYPES:
            raise ArgumentError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.engine not in ENGINES:
            raise ArgumentError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        mem = self.max_memory_gib
        if mem is not None and (isinstance(mem, bool) or not isinstance(mem, (int, float)) or not mem > 0):
            raise ArgumentError(f"max_memory_gib must be a number > 0 GiB, got {mem!r}")
        self._check_controls()

    def _check_controls(self) -> None:
        as_index(self.controls, "controls (--controls)", what="count of random-edge controls per configuration")
        as_index(self.seed, "seed (--seed)", what="seed")
        if self.controls and not any(p in KNOCKOUT_PROTOCOLS for p in self.protocols):
            raise ArgumentError(
                f"controls (--controls {self.controls}) adds random-edge controls to the knockout protocols "
                f"({', '.join(KNOCKOUT_PROTOCOLS)}), and {', '.join(self.protocols)} has none: add one"
            )
        if self.seed and not self.controls:
            raise ArgumentError(
                f"seed (--seed {self.seed}) is the random-edge controls' seed: add controls (--controls N)"
            )

    @property
    def filters(self) -> dict:
        """The data set filters that are set (`duration`, `domain`, `task_type`), by name."""
        return {
            k: v
            for k, v in (("duration", self.duration), ("domain", self.domain), ("task_type", self.task_type))
            if v is not None
        }

    def settings(self, model, protocols: Sequence) -> dict:
        """The run key: every setting that changes a number (not limit/shard/device/engine: they
        change which samples run, where, or how fast, not what a sample's record holds)."""
        import vlens
        from vlens.inputs.prompts import PROMPT_FORMAT

        model_dir = self.model_dir()
        out = {
            "model": str(self.model) if self.is_hub_id else str(model_dir),
            "model_fingerprint": fingerprint(model_dir),
            "n_layers": model.cfg.n_layers,
            "data": self.data,
            "task": self.task,
            "filters": self.filters,
            "protocols": list(self.protocols),
            "window": self.window,
            "frames": self.frames,
            "allow_repeat": self.allow_repeat,
            "dtype": self.dtype,
            "prompt_format": PROMPT_FORMAT,
            "vlens_version": vlens.__version__,
        }
        if self.revision is not None:  # only then: the run keys of existing stores stay as they were
            out["revision"] = self.revision
        if self.controls:  # likewise
            from vlens.experiments.study import control_seeds

            out["controls"] = {"n": self.controls, "seeds": control_seeds(self.controls, self.seed)}
        for p in protocols:
            out.update(p.settings())
        return out

    @property
    def is_hub_id(self) -> bool:
        """Whether `model` names a hub repo (no local path of that name exists)."""
        return not Path(self.model).expanduser().exists()

    def model_dir(self) -> Path:
        """The checkpoint's local directory: `model` itself, or its hub snapshot in the cache."""
        from vlens.model.hub import checkpoint_dir

        return checkpoint_dir(self.model, revision=self.revision).resolve()


def fingerprint(model_dir: Path) -> str:
    """Config + weight file names and sizes: changes when the checkpoint does, cheap to compute."""
    h = hashlib.sha256()
    for p in sorted(model_dir.glob("*.json")) + sorted(model_dir.glob("*.safetensors")):
        h.update(p.name.encode())
        h.update(str(p.stat().st_size).encode())
        if p.suffix == ".json" and p.stat().st_size < 1_000_000:
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class RunResult:
    """What `run` returns. `counts`: this process; `totals`: all ranks together (scored, skipped,
    already). `analysis`: the whole run directory, typed (vlens.experiments.analysis.StudyAnalysis)."""

    config: RunConfig
    out: Path
    counts: Counts
    totals: Counts
    analysis: StudyAnalysis
    report: Path | None
    rank: int = 0
    world_size: int = 1

    @property
    def summary(self) -> dict:
        """`{configuration: ConfigSummary}` of the whole run directory."""
        return self.analysis.summary

    def to_pandas(self):
        """One row per configuration (accuracy, ratio, their 95% CIs, p_correct, logit_diff, kl, layers).

        Returns:
            pandas.DataFrame indexed by configuration.
        """
        return self.analysis.to_pandas()


def _dataset(config: RunConfig):
    from vlens.data import load_dataset

    dataset = load_dataset(config.data, task=config.task, **config.filters)
    limited = dataset[: config.limit] if config.limit is not None else dataset
    if not limited:
        raise RunError(
            f"--data {config.data} selects no sample (task={config.task!r}, filters={config.filters}); "
            "check --task / --duration / --domain / --task-type"
        )
    return dataset, limited


def _share(limited, shard: tuple[int, int]) -> list:
    return shard_of(list(enumerate(limited)), shard)


def _load_model(config: RunConfig, w: distributed.World):
    import torch

    from vlens.model.hooked_video_llm import HookedVideoLLM

    return HookedVideoLLM.from_pretrained(
        config.model if config.is_hub_id else Path(config.model).resolve(),
        revision=config.revision,
        dtype=getattr(torch, config.dtype),
        device=distributed.device_for(config.device, w),
    )


def _hint(reasons: Sequence[str]) -> str:
    frames = [int(m.group(1)) for r in reasons for m in [re.search(r"the clip has (\d+) frames", r)] if m]
    if frames:
        return f"pass --frames {min(frames)} (RunConfig.frames; the shortest clip has {min(frames)}) or --allow-repeat"
    if any("video not found" in r for r in reasons):
        return "check the --data directory: the videos are not where the annotation files say"
    if any("cannot read video" in r for r in reasons):
        return "the video files cannot be decoded: check the download"
    return "see the skipped samples in report.md"


def _why(reasons: dict[str, str]) -> str:
    """The most common skip reason and the flag that fixes it."""
    reason, k = Counter(reasons.values()).most_common(1)[0] if reasons else ("unknown", 0)
    return f"most common reason ({k} samples): {reason}. Fix: {_hint(list(reasons.values()))}"


def _nothing_scored(totals: Counts, n_samples: int) -> NothingScoredError:
    return NothingScoredError(f"nothing was scored: all {n_samples} samples were skipped; {_why(totals.reasons)}")


def run(config: RunConfig, *, model=None) -> RunResult:
    """Run `config` (see the module docstring).

    Args:
        config: the run.
        model: an already loaded HookedVideoLLM of `config.model` (notebooks); loaded when None.

    Returns:
        RunResult.

    Raises:
        RunError: no sample selected. NothingScoredError: every sample was skipped (after the store
        and the report are written). DatasetError, StoreError, ValueError: bad input, named.
    """
    from vlens.experiments.analysis import analyse
    from vlens.experiments.store import ResultStore

    w = distributed.world()
    with distributed.process_group(w):
        dataset, limited = _dataset(config)
        shard = distributed.shard_for(config.shard, w)
        share = _share(limited, shard)
        model = _load_model(config, w) if model is None else model
        protocols = build_protocols(config, model, dataset)
        with ResultStore(config.out, config.settings(model, protocols), shard=shard) as store:
            log.info(
                "%d of %d samples (shard %d/%d) × %d records each → %s",
                len(share),
                len(limited),
                *shard,
                len(record_names(protocols)),
                store.path,
            )
            counts = run_samples(
                model,
                share,
                dataset,
                protocols,
                store,
                n_frames=config.frames,
                allow_repeat=config.allow_repeat,
                progress=config.progress,
            )
        every = distributed.gather(counts, w)  # also the barrier: every part is complete after it
        totals = Counts(
            sum(c.scored for c in every),
            sum(c.skipped for c in every),
            sum(c.already for c in every),
            sum(c.already_scored for c in every),
            {k: v for c in every for k, v in c.reasons.items()},
        )
        report = None
        if w.is_main and config.report:
            from vlens.figures.report import write_report

            report = write_report(config.out)
        distributed.barrier(w)  # the report is written before any rank returns
        if totals.scored + totals.already_scored == 0:
            raise _nothing_scored(totals, len(limited))
        return RunResult(config, Path(config.out), counts, totals, analyse(config.out), report, w.rank, w.size)


class _MemoryStore:
    """A throwaway store for measuring: remembers keys, keeps nothing on disk."""

    def __init__(self):
        self.done: set[tuple[str, str]] = set()

    def has(self, sample: str, config: str) -> bool:
        return (sample, config) in self.done

    def append(self, records) -> None:
        self.done |= {(r["sample"], r["config"]) for r in records}


@dataclass(frozen=True)
class DryRun:
    """The bill of a run before paying it. Per-sample numbers come from the first usable sample's
    layout (prompt lengths differ by a few tokens between samples); seconds from timing
    `measured` samples on this machine (after one warm-up sample when there are two or more)."""

    n_samples: int  # in the run (after filters and limit)
    n_share: int  # this process's share
    remaining: int  # of the share, not yet complete in the store
    records_per_sample: int
    forwards_per_sample: int  # clean + every protocol's (batched / partial forwards count once)
    flops_per_sample: float  # engine FLOPs (vlens.interventions.flops / engine.plan formulas)
    seq_len: int
    measured: int
    seconds_per_sample: float
    world_size: int

    @property
    def forwards(self) -> int:
        """Forward passes this process still has to run (remaining samples × forwards per sample)."""
        return self.remaining * self.forwards_per_sample

    @property
    def flops(self) -> float:
        """FLOPs this process still has to spend (remaining samples × FLOPs per sample)."""
        return self.remaining * self.flops_per_sample

    @property
    def seconds(self) -> float:
        """Estimated wall time of this process's remaining share."""
        return self.remaining * self.seconds_per_sample

    def describe(self) -> str:
        """A few lines for the terminal."""
        return "\n".join(
            [
                f"samples: {self.n_samples} in the run, {self.n_share} in this share, {self.remaining} still to run",
                f"per sample: {self.records_per_sample} records, {self.forwards_per_sample} forwards, "
                f"{self.flops_per_sample:.3g} FLOPs ({self.seq_len} positions)",
                f"to run: {self.forwards} forwards, {self.flops:.3g} FLOPs",
                f"measured: {self.seconds_per_sample:.3g} s/sample over {self.measured} sample(s) on this machine → "
                f"estimated {_duration(self.seconds)}"
                + (f" per process ({self.world_size} processes)" if self.world_size > 1 else ""),
            ]
        )


def _duration(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def dry_run(config: RunConfig, *, model=None, measure: int = 2) -> DryRun:
    """Count forwards and FLOPs of `config` and time `measure` samples; writes nothing.

    Raises:
        RunError: no sample selected, or none of the first samples of the share is usable (the
        reason and the fixing flag are named).
    """
    from vlens.experiments.store import SETTINGS, load_results

    w = distributed.world()
    dataset, limited = _dataset(config)
    share = _share(limited, distributed.shard_for(config.shard, w))
    model = _load_model(config, w) if model is None else model
    protocols = build_protocols(config, model, dataset)
    names = record_names(protocols)
    done: set = set()
    if (Path(config.out) / SETTINGS).exists():
        done = {(r["sample"], r["config"]) for r in load_results(config.out)[1]}
    remaining = sum(1 for _, s in share if any((s.id, n) not in done for n in names))
    ctx, reasons = None, {}
    for index, sample in share[:20]:  # the first usable sample gives the layout
        try:
            inputs = (
                sample_inputs(model, sample, config.frames, config.allow_repeat) if sample.missing is None else None
            )
        except ValueError as e:
            reasons[sample.id] = str(e)
            continue
        if inputs is None:
            reasons[sample.id] = sample.missing
            continue

        ctx = SampleContext(
            model,
            sample,
            index,
            dataset,
            config.frames,
            config.allow_repeat,
            inputs,
            model.answer_letter_ids(len(sample.options)),
        )
        break
    if ctx is None:
        raise RunError(f"no usable sample among the first {len(reasons)} of this share; {_why(reasons)}")
    costs = [clean_cost(model, ctx.inputs.layout) if any(p.needs_clean for p in protocols) else Cost(0, 0.0)]
    costs += [p.cost(ctx) for p in protocols]
    usable = [(i, s) for i, s in share if s.id not in reasons][: max(1, measure)]
    times = []
    for item in usable:
        t0 = time.perf_counter()
        run_samples(
            model,
            [item],
            dataset,
            protocols,
            _MemoryStore(),
            n_frames=config.frames,
            allow_repeat=config.allow_repeat,
            progress=False,
        )
        times.append(time.perf_counter() - t0)
    timed = times[1:] if len(times) > 1 else times  # the first one warms up kernels and caches
    return DryRun(
        n_samples=len(limited),
        n_share=len(share),
        remaining=remaining,
        records_per_sample=len(names),
        forwards_per_sample=sum(c.forwards for c in costs),
        flops_per_sample=sum(c.flops for c in costs),
        seq_len=ctx.inputs.seq_len,
        measured=len(timed),
        seconds_per_sample=sum(timed) / len(timed),
        world_size=w.size,
    )
