"""The analysis layer: store records → typed summaries, between the store and the plots/report.

Data flows store → analysis → plots: nothing here imports a runner or a model, and the plots read
only what this module returns. Every number is a function of the *set* of records: rows are put in
a stable order (by sample id) before anything order-sensitive (bootstrap resampling, float sums),
and means use `math.fsum`, so a report is identical whatever the sharding, the number of workers,
the resume history or the order of lines in the result files.

    from vlens.experiments.analysis import analyse
    a = analyse("runs/vm")                 # StudyAnalysis
    a.summary["global2/lv"].ratio_ci       # (lo, hi)
    a.to_pandas()                          # one row per configuration
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, cast

import torch
from jaxtyping import Float
from torch import Tensor

from vlens.experiments.store import load_results, run_key
from vlens.experiments.study import control_name, parse_control
from vlens.metrics import accuracy, bootstrap_ci, bootstrap_mean_ci, performance_ratio


class _ByKey:
    """Read fields as `s["ratio"]` too: plot.py reads summaries by key (kept for its call sites)."""

    def __getitem__(self, key: str):
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def __contains__(self, key: str) -> bool:
        assert is_dataclass(self)  # mixed into dataclasses only
        return key in {f.name for f in fields(self)}

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)


@dataclass(frozen=True)
class ConfigSummary(_ByKey):
    """One configuration's aggregate over the samples scored both clean and under it.

    `accuracy_ci` and `ratio_ci` are 95% percentile-bootstrap intervals (1000 paired resamples,
    seeded from the run key and the configuration name)."""

    name: str
    n: int
    accuracy: float
    ratio: float
    accuracy_ci: tuple[float, float]
    ratio_ci: tuple[float, float]
    p_correct: float
    logit_diff: float
    kl: float
    layers: list[int] | None


@dataclass(frozen=True)
class PatchingSummary(_ByKey):
    """Normalised patching effect of one (site, corruption): (mean patched − mean corrupted) /
    (mean clean − mean corrupted) of the clean answer's logit difference, per layer and group."""

    name: str
    effect: Float[Tensor, "layer group"]
    groups: list[str]
    layers: list[int]
    n: int
    clean_diff: float
    corrupted_diff: float


@dataclass(frozen=True)
class LensSummary(_ByKey):
    """The logit lens and question→frame attention, averaged over samples."""

    labels: list[str]
    p_correct: Float[Tensor, " layer"]
    top1: Float[Tensor, " layer"]
    frame_mass: Float[Tensor, "layer frame_plus"]
    n: int


@dataclass(frozen=True)
class FlowPoint(_ByKey):
    """One map-the-flow knockout configuration over the samples scored both clean and under it.

    `accuracy` is over every such sample (as the study's); `kept_accuracy` is map-the-flow's:
    samples correct clean *and* knocked over all of them (it runs only clean-correct samples and
    divides by every sample). `dp_answer` is map-the-flow's `relative_diff`: the mean over
    clean-correct samples of 100·(p_knocked − p_clean)/p_clean of the answer letter's probability
    over the vocabulary, in %. Intervals: 95% percentile bootstrap, seeded from the run key."""

    name: str
    layers: list[int]
    n: int
    accuracy: float
    accuracy_ci: tuple[float, float]
    kept_accuracy: float
    n_correct: int
    dp_answer: float
    dp_answer_ci: tuple[float, float]
    edges_kept: float | None = None


@dataclass(frozen=True)
class FlowCurve(_ByKey):
    """One pathway knocked out in the centred window around every layer: `points[i]` is the
    window centred on `centres[i]`."""

    pathway: str
    centres: list[int]
    points: list[FlowPoint]


@dataclass(frozen=True)
class AttentionFlowSummary(_ByKey):
    """Attention mass from each source role to each key group (frame or role) per layer, averaged
    over the samples that share the first sample's groups (vlens.interventions.flow.attention_flow)."""

    groups: list[str]
    sources: list[str]
    mass: Float[Tensor, "layer source group"]
    n: int


@dataclass(frozen=True)
class ControlSummary(_ByKey):
    """A knockout configuration beside its random-edge controls (`vlens run --controls N`), over the
    samples scored clean, under the configuration and under every one of its controls.

    Per sample i: effect_i = knocked_i − clean_i, control_effect_i = mean over seeds of
    control_i − clean_i, difference_i = effect_i − control_effect_i = knocked_i − mean control_i,
    for correctness (accuracy, as fractions) and for the logit difference (`logit_*`); each field is
    the mean over samples. Intervals: 95% percentile bootstrap of those means, all six from the same
    1000 resamples of the samples (paired), seeded from the run key and the configuration name."""

    name: str
    seeds: list[int]
    n: int
    layers: list[int] | None
    accuracy: float
    control_accuracy: float  # mean over seeds
    control_accuracies: list[float]  # per seed, in `seeds` order
    effect: float
    effect_ci: tuple[float, float]
    control_effect: float
    control_effect_ci: tuple[float, float]
    difference: float
    difference_ci: tuple[float, float]
    logit_effect: float
    logit_effect_ci: tuple[float, float]
    logit_control_effect: float
    logit_control_effect_ci: tuple[float, float]
    logit_difference: float
    logit_difference_ci: tuple[float, float]


def _paired(
    scored: dict, samples: Sequence[str], name: str, controls: Sequence[str], field: str
) -> tuple[list[float], list[float], list[float]]:
    """Per sample: knocked − clean, mean control − clean, knocked − mean control, of `field`."""
    clean = [float(scored[(s, "clean")][field]) for s in samples]
    knocked = [float(scored[(s, name)][field]) for s in samples]
    ctrl = [math.fsum(float(scored[(s, k)][field]) for k in controls) / len(controls) for s in samples]
    return (
        [k - c for k, c in zip(knocked, clean)],
        [r - c for r, c in zip(ctrl, clean)],
        [k - r for k, r in zip(knocked, ctrl)],
    )


def _mean_ci(values: Sequence[float], key: str) -> tuple[float, tuple[float, float]]:
    return math.fsum(values) / len(values), bootstrap_mean_ci(values, key)


def aggregate_controls(records: Sequence[dict], key: str) -> dict[str, ControlSummary]:
    """Each configuration that has random-edge controls, paired with them (see `ControlSummary`).

    Args:
        records: store records (any order).
        key: the run key (`store.run_key(settings)`); seeds the bootstrap.

    Returns:
        `{configuration: ControlSummary}` in natural order; a configuration without a sample scored
        clean, under it and under every seed of its controls is left out.
    """
    scored = {(r["sample"], r["config"]): r for r in records if "correct" in r and "logit_diff" in r}
    samples_of: dict[str, set[str]] = {}
    seeds: dict[str, set[int]] = {}
    for sample, name in scored:
        samples_of.setdefault(name, set()).add(sample)
        pair = parse_control(name)
        if pair is not None:
            seeds.setdefault(pair[0], set()).add(pair[1])
    out = {}
    for name in sorted(seeds, key=_natural):
        ss = sorted(seeds[name])
        controls = [control_name(name, s) for s in ss]
        samples = sorted(set.intersection(*(samples_of.get(k, set()) for k in ("clean", name, *controls))))
        if not samples:
            continue
        boot = f"{key}|{name}|control"  # one key: every interval from the same resamples (paired)
        (e, e_ci), (c, c_ci), (d, d_ci) = (
            _mean_ci(v, boot) for v in _paired(scored, samples, name, controls, "correct")
        )
        (le, le_ci), (lc, lc_ci), (ld, ld_ci) = (
            _mean_ci(v, boot) for v in _paired(scored, samples, name, controls, "logit_diff")
        )
        per_seed = [accuracy([scored[(s, k)]["correct"] for s in samples]) for k in controls]
        out[name] = ControlSummary(
            name=name,
            seeds=ss,
            n=len(samples),
            layers=scored[(samples[0], name)].get("layers"),
            accuracy=accuracy([scored[(s, name)]["correct"] for s in samples]),
            control_accuracy=math.fsum(per_seed) / len(per_seed),
            control_accuracies=per_seed,
            effect=e,
            effect_ci=e_ci,
            control_effect=c,
            control_effect_ci=c_ci,
            difference=d,
            difference_ci=d_ci,
            logit_effect=le,
            logit_effect_ci=le_ci,
            logit_control_effect=lc,
            logit_control_effect_ci=lc_ci,
            logit_difference=ld,
            logit_difference_ci=ld_ci,
        )
    return out


def _by_sample(rows: Iterable[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: r["sample"])


def _mean(rows: Sequence[dict], field: str) -> float:
    vals = [r[field] for r in rows if field in r]
    return math.fsum(vals) / len(vals) if vals else math.nan  # fsum: exact, whatever the order


def _natural(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def summarise(records: Sequence[dict], key: str) -> dict[str, ConfigSummary]:
    """Per configuration (clean, prior, then the rest in natural order): n, accuracy, performance
    ratio, bootstrap CIs, mean p(correct) / logit diff / KL.

    Args:
        records: store records (any order).
        key: the run key (`store.run_key(settings)`); seeds the bootstrap.

    Returns:
        `{configuration: ConfigSummary}`; configurations with no scored sample are left out.
    """
    # a record's `baseline` names the configuration its ratio divides by (open-ended answers:
    # "open/clean"); every other record's is the multiple-choice "clean"
    baseline = {r["config"]: r.get("baseline", "clean") for r in records if "correct" in r}
    clean_of = {
        b: {r["sample"]: r for r in records if r["config"] == b and "correct" in r}
        for b in {"clean", *baseline.values()}
    }
    configs = sorted(baseline, key=lambda n: (n != "clean", n != "prior", _natural(n)))
    clean_acc = accuracy([r["correct"] for r in _by_sample(clean_of["clean"].values())])
    out = {}
    for name in configs:
        by_sample_clean = clean_of[baseline[name]]
        rows = _by_sample(
            [r for r in records if r["config"] == name and "correct" in r and r["sample"] in by_sample_clean]
        )
        if not rows:
            continue
        clean = [by_sample_clean[r["sample"]]["correct"] for r in rows]
        knocked = [r["correct"] for r in rows]
        acc = accuracy(knocked)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ratio = performance_ratio(acc, accuracy(clean)) if name != "clean" else 1.0 if clean_acc else math.nan
        ci = bootstrap_ci(clean, knocked, f"{key}|{name}")
        out[name] = ConfigSummary(
            name=name,
            n=len(rows),
            accuracy=acc,
            ratio=ratio,
            accuracy_ci=ci["accuracy"],
            ratio_ci=ci["ratio"],
            p_correct=_mean(rows, "p_correct"),
            logit_diff=_mean(rows, "logit_diff"),
            kl=_mean(rows, "kl") if name not in ("clean", "prior") else 0.0,
            layers=rows[0].get("layers"),
        )
    return out


def aggregate_patching(records: Sequence[dict]) -> dict[str, PatchingSummary]:
    """Per patching configuration: the normalised effect [layer, group] of the averaged logit diffs
    (normalising averages, not per sample: per-sample ratios blow up where the corruption barely
    moves the answer). Samples with another group set (another frame count) are left out."""
    by_name: dict[str, list[dict]] = {}
    for r in _by_sample(records):
        if r["config"].startswith("patching/") and "raw" in r:
            by_name.setdefault(r["config"], []).append(r)
    out = {}
    for name, rows in sorted(by_name.items()):
        groups = rows[0]["groups"]
        rows = [r for r in rows if r["groups"] == groups]
        raw = torch.tensor([r["raw"] for r in rows], dtype=torch.float64).mean(0).float()
        clean = _mean(rows, "clean_diff")
        corr = _mean(rows, "corrupted_diff")
        denom = clean - corr
        effect = (raw - corr) / denom if abs(denom) > 1e-9 else torch.full_like(raw, float("nan"))
        out[name] = PatchingSummary(name, effect, groups, rows[0]["layers"], len(rows), clean, corr)
    return out


def aggregate_lens(records: Sequence[dict]) -> LensSummary | None:
    """The lens records averaged over samples (frame attention over the samples with the fewest
    frames' column count), or None when the run has no lens records."""
    rows = _by_sample([r for r in records if r["config"] == "lens" and "p_correct" in r])
    if not rows:
        return None
    n_frames = min(len(r["frame_mass"][0]) for r in rows)
    rows_f = [r for r in rows if len(r["frame_mass"][0]) == n_frames]
    f64 = torch.float64
    return LensSummary(
        labels=rows[0]["labels"],
        p_correct=torch.tensor([r["p_correct"] for r in rows], dtype=f64).mean(0).float(),
        top1=torch.tensor([[x == 0 for x in r["rank"]] for r in rows], dtype=f64).mean(0).float(),
        frame_mass=torch.tensor([r["frame_mass"] for r in rows_f], dtype=f64).mean(0).float(),
        n=len(rows),
    )


def flow_point(records: Sequence[dict], name: str, summary: dict[str, ConfigSummary], key: str) -> FlowPoint | None:
    """`FlowPoint` of one stored configuration (None when no sample scored it)."""
    if name not in summary:
        return None
    clean = {r["sample"]: r for r in records if r["config"] == "clean" and "correct" in r}
    rows = _by_sample([r for r in records if r["config"] == name and "correct" in r and r["sample"] in clean])
    # map-the-flow's correctness is the vocabulary's top token (its kept accuracy and the samples of
    # its relative_diff); vlens's `correct` is the top option letter
    kept = [r["correct_vocab"] and clean[r["sample"]]["correct_vocab"] for r in rows]
    dp = [
        100.0 * (r["p_correct_vocab"] - clean[r["sample"]]["p_correct_vocab"]) / clean[r["sample"]]["p_correct_vocab"]
        for r in rows
        if clean[r["sample"]]["correct_vocab"] and clean[r["sample"]]["p_correct_vocab"] > 0
    ]
    s = summary[name]
    return FlowPoint(
        name=name,
        layers=list(s.layers or []),
        n=s.n,
        accuracy=s.accuracy,
        accuracy_ci=s.accuracy_ci,
        kept_accuracy=math.fsum(kept) / len(kept) if kept else math.nan,
        n_correct=len(dp),
        dp_answer=math.fsum(dp) / len(dp) if dp else math.nan,
        dp_answer_ci=bootstrap_mean_ci(dp, f"{key}|{name}|dp"),
        edges_kept=_mean(rows, "edges_kept") if any("edges_kept" in r for r in rows) else None,
    )


def aggregate_flow(
    records: Sequence[dict], summary: dict[str, ConfigSummary], key: str, order: Sequence[str] = ()
) -> tuple[dict[str, FlowCurve], FlowPoint | None]:
    """map-the-flow's knockouts (`vlens run flow`): one curve per pathway over window centres, and
    the effective-pathway run.

    Args:
        records: the run's records.
        summary: `summarise(records, key)`.
        key: the run key (seeds the bootstrap).
        order: pathway names in the order wanted (the run's `settings["flow"]["protocols"]`);
            others follow in natural order.

    Returns:
        `({pathway: FlowCurve}, effective FlowPoint or None)`.
    """
    by_pathway: dict[str, list[tuple[int, str]]] = {}
    for name in summary:
        parts = name.split("/")
        if len(parts) == 3 and parts[0] == "flow" and parts[2].isdigit():
            by_pathway.setdefault(parts[1], []).append((int(parts[2]), name))
    curves = {}
    rank = {p: i for i, p in enumerate(order)}
    for pathway, items in sorted(by_pathway.items(), key=lambda kv: rank.get(kv[0], len(rank))):
        items.sort()
        points = [flow_point(records, n, summary, key) for _, n in items]
        # every name came from summary, so flow_point gave a point for each
        curves[pathway] = FlowCurve(pathway, [c for c, _ in items], cast(list[FlowPoint], points))
    return curves, flow_point(records, "flow/effective_pathway", summary, key)


def aggregate_attention_flow(records: Sequence[dict]) -> AttentionFlowSummary | None:
    """The `flow/attention` records averaged over samples (those with the first sample's groups),
    or None when the run has none."""
    rows = _by_sample([r for r in records if r["config"] == "flow/attention" and "mass" in r])
    if not rows:
        return None
    groups, sources = rows[0]["groups"], rows[0]["sources"]
    same = [r for r in rows if r["groups"] == groups and r["sources"] == sources]
    if len(same) < len(rows):  # other frame counts: their frame groups do not line up
        warnings.warn(
            f"attention flow: {len(rows) - len(same)} of {len(rows)} samples have other key groups than "
            f"the first ({len(groups)} groups) and are left out of the average; sample one frame count",
            stacklevel=2,
        )
    rows = same
    mass = torch.tensor([r["mass"] for r in rows], dtype=torch.float64).mean(0).float()
    return AttentionFlowSummary(list(groups), list(sources), mass, len(rows))


def accuracy_by(records: Sequence[dict], field: str, configs: Sequence[str]) -> dict[str, dict[str, float]]:
    """Accuracy of each configuration per value of `meta[field]` (e.g. question kind), plus "all".

    Returns:
        `{group: {configuration: accuracy}}`; a configuration with no sample in a group is absent.
    """
    groups: dict[str, dict[str, list[bool]]] = {}
    for r in records:
        if "correct" not in r or r["config"] not in configs:
            continue
        for g in (str(r.get("meta", {}).get(field)), "all"):
            if g != "None":
                groups.setdefault(g, {}).setdefault(r["config"], []).append(r["correct"])
    return {
        g: {c: sum(v) / len(v) for c, v in by.items()}
        for g, by in sorted(groups.items(), key=lambda kv: (kv[0] == "all", kv[0]))
    }


@dataclass(frozen=True)
class StudyAnalysis:
    """Everything the report shows about one run directory, typed."""

    settings: dict
    key: str
    records: list[dict]
    summary: dict[str, ConfigSummary]
    patching: dict[str, PatchingSummary]
    lens: LensSummary | None
    skipped: list[tuple[str, str]]  # (sample, reason), sorted
    flow: dict[str, FlowCurve] = field(default_factory=dict)  # `vlens run flow`: pathway → curve
    flow_effective: FlowPoint | None = None
    attention_flow: AttentionFlowSummary | None = None
    controls: dict[str, ControlSummary] = field(default_factory=dict)  # `--controls`: configuration → pairing
    heads: dict = field(default_factory=dict)  # `vlens run heads`: name → heads_analysis.HeadsSummary

    @property
    def n_scored(self) -> int:
        """Samples scored clean."""
        return self.summary["clean"].n if "clean" in self.summary else 0

    def to_pandas(self):
        """One row per configuration: name, n, accuracy, its CI, ratio, its CI, p_correct, logit_diff, kl, layers.

        Returns:
            pandas.DataFrame indexed by configuration name.
        """
        import pandas as pd

        rows = []
        for s in self.summary.values():
            rows.append(
                {
                    "config": s.name,
                    "n": s.n,
                    "accuracy": s.accuracy,
                    "accuracy_lo": s.accuracy_ci[0],
                    "accuracy_hi": s.accuracy_ci[1],
                    "ratio": s.ratio,
                    "ratio_lo": s.ratio_ci[0],
                    "ratio_hi": s.ratio_ci[1],
                    "p_correct": s.p_correct,
                    "logit_diff": s.logit_diff,
                    "kl": s.kl,
                    "layers": s.layers,
                }
            )
        return pd.DataFrame(
            rows,
            columns=[
                "config",
                "n",
                "accuracy",
                "accuracy_lo",
                "accuracy_hi",
                "ratio",
                "ratio_lo",
                "ratio_hi",
                "p_correct",
                "logit_diff",
                "kl",
                "layers",
            ],
        ).set_index("config")

    def controls_to_pandas(self):
        """One row per configuration with random-edge controls (`--controls`): n, seeds, accuracy,
        control accuracy, and effect / control effect / difference with their 95% CIs (`*_lo`,
        `*_hi`), in accuracy (fractions) and in logit difference (`logit_*`); see `ControlSummary`.

        Returns:
            pandas.DataFrame indexed by configuration (empty when the run has no controls).
        """
        import pandas as pd

        rows = []
        for c in self.controls.values():
            row: dict[str, Any] = {"config": c.name, "n": c.n, "seeds": c.seeds, "accuracy": c.accuracy}
            row["control_accuracy"] = c.control_accuracy
            for f in ("effect", "control_effect", "difference"):
                for prefix in ("", "logit_"):
                    lo, hi = getattr(c, f"{prefix}{f}_ci")
                    row |= {f"{prefix}{f}": getattr(c, f"{prefix}{f}"), f"{prefix}{f}_lo": lo, f"{prefix}{f}_hi": hi}
            rows.append(row)
        return pd.DataFrame(rows).set_index("config") if rows else pd.DataFrame()

    def records_frame(self):
        """One row per stored record (sample, config, and the scalar fields), for custom analyses.

        Returns:
            pandas.DataFrame.
        """
        import pandas as pd

        flat = [
            {k: v for k, v in r.items() if not isinstance(v, (list, dict))}
            | {f"meta.{k}": v for k, v in r.get("meta", {}).items()}
            for r in self.records
        ]
        return pd.DataFrame(flat)


def analyse(out_dir: str | Path) -> StudyAnalysis:
    """Read a run directory (every part) and summarise it.

    Raises:
        StoreError: not a run directory. CorruptStoreError: a bad line, naming file and line.
    """
    from vlens.experiments.heads_analysis import summarise_heads

    settings, records = load_results(out_dir)
    key = run_key(settings)
    summary = summarise(records, key)
    flow, effective = aggregate_flow(records, summary, key, settings.get("flow", {}).get("protocols", ()))
    return StudyAnalysis(
        settings=settings,
        key=key,
        records=records,
        summary=summary,
        patching=aggregate_patching(records),
        lens=aggregate_lens(records),
        skipped=sorted({(r["sample"], r["skipped"]) for r in records if "skipped" in r}),
        flow=flow,
        flow_effective=effective,
        attention_flow=aggregate_attention_flow(records),
        controls=aggregate_controls(records, key),
        heads=summarise_heads(records, settings.get("heads", {}).get("specs", ())),
    )
