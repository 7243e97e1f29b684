"""The markdown report of a run directory: settings, baselines (chance, language prior), one row
per configuration with 95% intervals, the figures of `vlens.figures.style`, and sections only for what ran.
"""

from __future__ import annotations

import math
from pathlib import Path

from vlens.figures.flow import plot_flow
from vlens.figures.heads import plot_heads
from vlens.figures.layers import plot_layer_axis, plot_lens, plot_patching
from vlens.figures.open_answers import open_section
from vlens.figures.study import plot_global1, plot_global2, plot_windows
from vlens.figures.style import FORMATS, config_label, fmt_value
from vlens.figures.summary import chance_accuracy, load_summary


def _by_group(records: list[dict], field: str) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for r in records:
        g = r.get("meta", {}).get(field)
        if g is not None:
            groups.setdefault(str(g), []).append(r)
    return groups


def _embed(fig: Path) -> str:
    # markdown viewers show PNG and SVG inline; a PDF is a link
    return f"[{fig.name}]({fig.name})" if fig.suffix == ".pdf" else f"![{fig.stem}]({fig.name})"


def _mechanisms_section(
    out: Path, records: list[dict], summary: dict, n_layers: int, fmt: str, chance: float | None
) -> list[str]:
    from vlens.experiments.analysis import aggregate_lens, aggregate_patching

    patching, lens = aggregate_patching(records), aggregate_lens(records)
    if not patching and lens is None:
        return []
    shown = (
        (["knockouts"] if any(k.startswith("windows/") for k in summary) else [])
        + (["patching"] if patching else [])
        + (["the logit lens"] if lens is not None else [])
    )
    title = ", ".join(shown[:-1]) + (" and " if len(shown) > 1 else "") + shown[-1]
    lines = ["", f"## {title[0].upper() + title[1:]} on one layer axis", ""]
    axis = plot_layer_axis(summary, patching, lens, n_layers, out / f"layers.{fmt}", chance=chance)
    if axis is not None:  # never None here: there is patching or a lens to show (checked above)
        lines += [_embed(axis), ""]
    for name, agg in patching.items():
        fig = plot_patching(name, agg, out / (name.replace("/", "_") + f".{fmt}"))
        best = divmod(int(agg["effect"].nan_to_num(-1e9).argmax()), len(agg["groups"]))
        lines += [
            f"### {name}",
            "",
            f"- {agg['n']} samples; mean logit diff of the clean answer: clean {agg['clean_diff']:.3f}, corrupted {agg['corrupted_diff']:.3f}",
            f"- largest effect {float(agg['effect'].flatten().nan_to_num(-1e9).max()):.2f} at layer {agg['layers'][best[0]]}, "
            f"group `{agg['groups'][best[1]]}`",
            "",
            _embed(fig),
            "",
        ]
    if lens is not None:
        fig = plot_lens(lens, out / f"lens.{fmt}", chance=chance)
        top = lens["top1"].tolist()  # the first layer whose top-1 rate is within 5 points of the output's
        first = next((lens["labels"][i] for i, v in enumerate(top) if v >= top[-1] - 0.05), None)
        lines += [
            "### Logit lens",
            "",
            f"- {lens['n']} samples; correct letter ranked first: {float(lens['top1'][-1]):.0%} at the output"
            + (f"; first within 5 points of that at `{first}`" if first else ""),
            "",
            _embed(fig),
            "",
        ]
    return lines


def _pct(v: float, ci: tuple[float, float] | None = None) -> tuple[str, str]:
    if v is None or math.isnan(v):
        return "–", ""
    return f"{v:+.1f}", (f"{ci[0]:+.1f} – {ci[1]:+.1f}" if ci is not None and not math.isnan(ci[0]) else "")


def _flow_section(
    out: Path, settings: dict, records: list[dict], summary: dict, n_layers: int, fmt: str, chance: float | None
) -> list[str]:
    """map-the-flow's protocols (`vlens run flow`): one table row per pathway and window, the
    effective pathway, and one figure with the attention flow on the same layer axis."""
    from vlens.experiments.analysis import aggregate_attention_flow, aggregate_flow
    from vlens.experiments.store import run_key

    opts = settings.get("flow", {})
    curves, effective = aggregate_flow(records, summary, run_key(settings), opts.get("protocols", ()))
    attention = aggregate_attention_flow(records)
    if not curves and effective is None and attention is None:
        return []
    k = opts.get("window")
    clean = summary.get("clean", {}).get("accuracy")
    lines = [
        "",
        "## map-the-flow's protocols",
        "",
        f"Each pathway knocked out in the centred window of k = {k} layers around layer l "
        '(l−k//2 … l−k//2+k−1, clipped to the model, as map-the-flow\'s `window_style="center"`). '
        "Accuracy is over every sample; *kept* is map-the-flow's accuracy (correct clean and knocked, over "
        "every sample); Δp(answer) is map-the-flow's `relative_diff`: the mean relative change of the answer "
        "letter's probability over the vocabulary, in %, over the samples whose clean top token (over the vocabulary) is the answer letter; "
        "*kept* counts correctness the same way. Intervals: 95% bootstrap.",
        "",
    ]
    fig = plot_flow(
        curves, effective, attention, n_layers, out / f"flow.{fmt}", clean_accuracy=clean, chance=chance, window=k
    )
    if fig is not None:
        lines += [_embed(fig), ""]
    lines += [
        "| pathway | centre l | layers | n | accuracy | 95% CI | kept | n (Δp) | Δp(answer) % | 95% CI |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, c in curves.items():
        for centre, pt in zip(c.centres, c.points):
            layers = pt.layers
            span = f"{layers[0]}–{layers[-1]}" if len(layers) > 1 else str(layers[0])
            dp, dp_ci = _pct(pt.dp_answer, pt.dp_answer_ci)
            lines.append(
                f"| {name.replace('<-', ' ← ')} | {centre} | {span} | {pt.n} | {fmt_value(pt.accuracy, True)} "
                f"| {fmt_value(pt.accuracy_ci[0], True)}–{fmt_value(pt.accuracy_ci[1], True)} "
                f"| {fmt_value(pt.kept_accuracy, True)} | {pt.n_correct} | {dp} | {dp_ci} |"
            )
    if effective is not None:
        dp, dp_ci = _pct(effective.dp_answer, effective.dp_answer_ci)
        ranges = ", ".join(f"{n} {a}–{b - 1}" for n, (a, b) in opts.get("effective_ranges", {}).items())
        lines += [
            "",
            "### Effective pathway",
            "",
            f"Seven pathways blocked together, each outside the layers where map-the-flow finds it effective "
            f"(kept: {ranges}; last ← last and last ← video blocked everywhere; video ← video and "
            "question+options ← question+options blocked after their pathways end).",
            "",
            "| n | accuracy | 95% CI | kept | n (Δp) | Δp(answer) % | 95% CI | edges kept |",
            "|---|---|---|---|---|---|---|---|",
            f"| {effective.n} | {fmt_value(effective.accuracy, True)} | {fmt_value(effective.accuracy_ci[0], True)}–"
            f"{fmt_value(effective.accuracy_ci[1], True)} | {fmt_value(effective.kept_accuracy, True)} | {effective.n_correct} | {dp} | {dp_ci} "
            f"| {fmt_value(effective.edges_kept, True)} |",
        ]
    if attention is not None:
        lines += [
            "",
            f"Attention flow: mass from {', '.join('`' + s + '`' for s in attention.sources)} to every frame and role "
            f"per layer (mean over heads and samples, n = {attention.n}), in the figure's lower panels.",
            "",
        ]
    return lines


def _signed(v: float, ci: tuple[float, float], scale: float = 1.0, digits: int = 3) -> tuple[str, str]:
    """A signed value and its interval as table cells (× `scale`, `digits` decimals)."""
    if math.isnan(v):
        return "–", ""
    lo, hi = ci
    interval = "" if math.isnan(lo) else f"{lo * scale:+.{digits}f} – {hi * scale:+.{digits}f}"
    return f"{v * scale:+.{digits}f}", interval


def _controls_section(settings: dict, records: list[dict]) -> list[str]:
    """`--controls`: each configuration's effect beside its random-edge controls', and the difference
    with a paired 95% bootstrap interval, in accuracy points and in logit difference."""
    from vlens.experiments.analysis import aggregate_controls
    from vlens.experiments.store import run_key

    controls = aggregate_controls(records, run_key(settings))
    if not controls:
        return []
    seeds = next(iter(controls.values())).seeds
    lines = [
        "",
        "## Random-edge controls",
        "",
        f"Each configuration beside its controls (`RandomEdges(spec, seed=s)` in the same layers, seeds "
        f"{', '.join(map(str, seeds))}: as many edges removed per query row, in the same rows and layers, drawn "
        "at random). Δ = knocked − clean per sample (accuracy in points, then the answer's logit difference); "
        "control Δ averages the seeds; spec − control = knocked − mean control per sample. Intervals: 95% "
        "bootstrap over samples, paired (the same resamples for every column).",
        "",
        "| configuration | layers | n | knocked | control | Δ acc | control Δ acc | spec − control | 95% CI "
        "| Δ logit diff | control Δ | spec − control | 95% CI |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, c in controls.items():
        layers = c.layers
        span = "" if not layers else (f"{layers[0]}–{layers[-1]}" if len(layers) > 1 else str(layers[0]))
        e, _ = _signed(c.effect, c.effect_ci, 100, 1)
        ce, _ = _signed(c.control_effect, c.control_effect_ci, 100, 1)
        d, d_ci = _signed(c.difference, c.difference_ci, 100, 1)
        le, _ = _signed(c.logit_effect, c.logit_effect_ci)
        lc, _ = _signed(c.logit_control_effect, c.logit_control_effect_ci)
        ld, ld_ci = _signed(c.logit_difference, c.logit_difference_ci)
        lines.append(
            f"| {config_label(name, layers)} | {span} | {c.n} | {fmt_value(c.accuracy, True)} "
            f"| {fmt_value(c.control_accuracy, True)} | {e} | {ce} | {d} | {d_ci} | {le} | {lc} | {ld} | {ld_ci} |"
        )
    return lines


def _signed3(v: float) -> str:
    return "–" if math.isnan(v) else f"{v:+.3f}"


def _agreement_line(a: dict) -> str:
    text = (
        f"over the {a['n_pairs']} verified (sample, head) pairs: Spearman {fmt_value(a['spearman'])}, "
        f"Pearson {fmt_value(a['pearson'])}, same sign {fmt_value(a['sign_agreement'], True)}"
    )
    if "map_spearman" in a:
        text += (
            f"; every head verified, mean maps: Spearman {fmt_value(a['map_spearman'])}, "
            f"top-k overlap {fmt_value(a['map_top_k_overlap'], True)}; the largest exact change of a sample "
            f"among its top-k estimates in {fmt_value(a['top1_in_top_k'], True)} of samples"
        )
    return text


def _heads_section(out: Path, settings: dict, records: list[dict], fmt: str, shown: int = 10) -> list[str]:
    """`vlens run heads`: the layer × head maps, the agreement of estimates with exact runs, and
    the heads with the largest mean estimated effect per spec."""
    from vlens.experiments.heads_analysis import summarise_heads

    summaries = summarise_heads(records, settings.get("heads", {}).get("specs", ()))
    if not summaries:
        return []
    lines = [
        "",
        "## Heads",
        "",
        "Each spec knocked out on one (layer, query head) at a time: the change (knocked − clean) of the "
        "logit difference and of p(correct), estimated for every head from one backward per sample "
        "(attribution), and exact for the top K heads of each sample by |estimated Δ logit diff|. "
        "Estimates are means over every sample; *on those* compares the estimate and the exact change "
        "over the samples that verified the head. A first-order estimate of a large knockout is often "
        "smaller than the exact change: read it for the ranking.",
        "",
    ]
    fig = plot_heads(summaries, out / f"heads.{fmt}")
    if fig is not None:
        lines += [_embed(fig), ""]
    for name, s in summaries.items():
        k = s.overlap_k
        lines += [
            f"### {s.spec} (`{name}`)",
            "",
            f"- {s.n} samples, top {s.top_k} heads verified per sample; clean logit diff "
            f"{fmt_value(s.clean_logit_diff)}, p(correct) {fmt_value(s.clean_p_correct)}",
            f"- Δ logit diff, {_agreement_line(s.agreement['logit_diff'])}".replace("top-k", f"top-{k}"),
            f"- Δ p(correct), {_agreement_line(s.agreement['p_correct'])}".replace("top-k", f"top-{k}"),
            "",
            "| layer | head | est. Δ logit diff | n verified | on those: est. | exact "
            "| est. Δ p(correct) | on those: est. | exact |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in s.ranked()[:shown]:
            lines.append(
                f"| {r.layer} | {r.head} | {r.estimate:+.3f} | {r.n_verified} | {_signed3(r.estimate_verified)} "
                f"| {_signed3(r.exact)} | {r.estimate_p_correct:+.3f} | {_signed3(r.estimate_verified_p_correct)} "
                f"| {_signed3(r.exact_p_correct)} |"
            )
        lines.append("")
    return lines


def _table(summary: dict, chance: float | None) -> list[str]:
    lines = [
        "| configuration | layers | n | accuracy | 95% CI | ratio | 95% CI | p(correct) | logit diff | KL(clean‖knocked) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    clean_acc = summary.get("clean", {}).get("accuracy")
    for name, s in summary.items():
        layers = s["layers"]
        span = "" if not layers else (f"{layers[0]}–{layers[-1]}" if len(layers) > 1 else str(layers[0]))
        kl = "–" if name == "prior" else fmt_value(s["kl"])  # the prior has no logits to compare
        lines.append(
            f"| {config_label(name, layers)} | {span} | {s['n']} | {fmt_value(s['accuracy'], True)} "
            f"| {fmt_value(s['accuracy_ci'][0], True)}–{fmt_value(s['accuracy_ci'][1], True)} "
            f"| {fmt_value(s['ratio'])} | {fmt_value(s['ratio_ci'][0])}–{fmt_value(s['ratio_ci'][1])} "
            f"| {fmt_value(s['p_correct'])} | {fmt_value(s['logit_diff'])} | {kl} |"
        )
        if name == "clean" and chance is not None:  # chance right under clean, as a baseline row
            ratio = fmt_value(chance / clean_acc) if clean_acc else "–"
            lines.append(f"| chance (uniform guess) | | | {chance:.1%} | | {ratio} | | | | |")
    return lines


def write_report(out_dir: str | Path, format: str = "png") -> Path:
    """Summarise a run directory into `report.md` and its figures.

    Args:
        out_dir: a directory written by `vlens run` (settings.json + results*.jsonl).
        format: figure format, `png`, `pdf` or `svg` (PDF figures are linked, not inlined).

    Returns:
        The path of `report.md`.

    Raises:
        ValueError: an unknown `format`.
        StoreError: `out_dir` is not a run directory.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {format!r}")
    out = Path(out_dir)
    settings, records, summary = load_summary(out)
    chance = chance_accuracy(records)
    n_layers = int(settings.get("n_layers", 0))
    figs = [
        plot_global1(summary, n_layers, out / f"global1.{format}", chance=chance) if n_layers else None,
        plot_global2(summary, out / f"global2.{format}", chance=chance),
        plot_windows(summary, out / f"windows.{format}", settings.get("window"), chance=chance),
    ]
    skipped = sorted({(r["sample"], r["skipped"]) for r in records if "skipped" in r})
    protocols = settings.get("protocols")
    protocols = ", ".join(protocols) if isinstance(protocols, (list, tuple)) else str(protocols)
    clean = summary.get("clean", {})
    lines = [
        f"# vlens report: {protocols} on {settings.get('data')}",
        "",
        f"- model: `{settings.get('model')}` ({n_layers} layers), frames: {settings.get('frames')}, dtype: {settings.get('dtype')}",
        f"- samples scored: {clean.get('n', 0)}, skipped: {len(skipped)}",
        f"- clean accuracy: {fmt_value(clean.get('accuracy', math.nan), True)}",
    ]
    if chance is not None:
        lines.append(f"- chance (a uniform guess over each question's options): {chance:.1%}")
    if "prior" in summary:
        lines.append(
            "- language prior (no video; the most frequent answer of the same question among the other samples): "
            f"{fmt_value(summary['prior']['accuracy'], True)}"
        )
    lines += [f"- vlens {settings.get('vlens_version')}, prompt format {settings.get('prompt_format')}", ""]
    lines += [line for fig in figs if fig is not None for line in (_embed(fig), "")]
    # flow, control and open-ended rows: their own sections
    main = {k: v for k, v in summary.items() if not k.startswith(("flow/", "control/", "open/"))}
    if main:
        lines += _table(main, chance)
    for field in ("kind", "task"):
        groups = _by_group([r for r in records if "correct" in r], field)
        if len(groups) < 2:
            continue
        cols = [c for c in ("clean", "prior", "global2/lv", "global2/vt", "global2/vs", "global2/all") if c in summary]
        lines += [
            "",
            f"## Accuracy by {field}",
            "",
            "| " + field + " | " + " | ".join(cols) + " |",
            "|---" * (len(cols) + 1) + "|",
        ]
        for g, rows in sorted(groups.items()):
            accs = []
            for c in cols:
                vals = [r["correct"] for r in rows if r["config"] == c]
                accs.append(fmt_value(sum(vals) / len(vals), True) if vals else "–")
            lines.append(f"| {g} | " + " | ".join(accs) + " |")
    eff_rows = [r for r in records if r["config"].startswith("efficient/") and "seconds" in r]
    if eff_rows:
        clean_t = {r["sample"]: r["seconds"] for r in records if r["config"] == "clean" and "seconds" in r}
        speedups = [
            clean_t[r["sample"]] / r["seconds"] for r in eff_rows if r["sample"] in clean_t and r["seconds"] > 0
        ]
        frac = sum(r["attention_flops_fraction"] for r in eff_rows) / len(eff_rows)
        total = sum(r["flops_fraction"] for r in eff_rows) / len(eff_rows)
        name = eff_rows[0]["config"]
        lines += [
            "",
            "## Efficient inference",
            "",
            f"- {name}: accuracy {fmt_value(summary[name]['accuracy'], True)} vs clean {fmt_value(clean.get('accuracy'), True)}",
            f"- attention FLOPs (QKᵀ, AV): {frac:.1%} of clean; all FLOPs: {total:.1%}",
        ]
        if speedups:
            lines.append(
                f"- measured prefill speed-up (median over samples): {sorted(speedups)[len(speedups) // 2]:.2f}×"
            )
    lines += _controls_section(settings, records)
    lines += open_section(settings, summary)
    lines += _flow_section(out, settings, records, summary, n_layers, format, chance)
    lines += _heads_section(out, settings, records, format)
    lines += _mechanisms_section(out, records, summary, n_layers, format, chance)
    if skipped:
        lines += ["", "## Skipped samples", ""] + [f"- `{s}`: {why}" for s, why in skipped[:50]]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report
