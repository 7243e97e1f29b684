"""Figures like the study's, and the markdown report of a run directory.

* global1: fraction of layers knocked (from the top) vs performance ratio;
* global2: one bar per knockout type (all layers);
* windows: performance ratio per knockout type vs the window's end layer;
* patching: normalised effect, layers × position groups (one heatmap per site/corruption);
* lens: correct-letter probability and top-1 rate per layer, question→frame attention per layer;
* layers: the window knockouts, the patching effect of the video and final position and the lens
  on one shared layer axis (x = layer l: the window ending at l, the residual entering block l).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from vlens.analysis import summarise  # noqa: E402
from vlens.store import load_results, run_key  # noqa: E402

TYPE_COLORS = {"lv": "#d62728", "vt": "#1f77b4", "vs": "#2ca02c", "all": "#7f7f7f"}
TYPE_LABELS = {"lv": "LV-K", "vt": "VT-K", "vs": "VS-K", "all": "LV+VT+VS"}


def _err(s: dict) -> tuple[float, float]:
    lo, hi = s["ratio_ci"]
    r = s["ratio"]
    if any(math.isnan(v) for v in (lo, hi, r)):
        return 0.0, 0.0
    return max(0.0, r - lo), max(0.0, hi - r)


def plot_global1(summary: dict, n_layers: int, path: Path) -> Path | None:
    rows = sorted((int(k.split("from")[1]), v) for k, v in summary.items() if k.startswith("global1/"))
    if not rows:
        return None
    x = [(n_layers - i) / n_layers for i, _ in rows]
    y = [v["ratio"] for _, v in rows]
    err = list(zip(*[_err(v) for _, v in rows]))
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.errorbar(x, y, yerr=err, marker="o", color=TYPE_COLORS["lv"], capsize=2, label="LV-K on layers ≥ i")
    ax.axhline(1.0, color="k", lw=0.8, ls=":")
    ax.set_xlabel("fraction of layers knocked (from the top)")
    ax.set_ylabel("performance ratio (knocked / clean)")
    ax.set_title("Global setting 1: LV-K on layers ≥ i")
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_global2(summary: dict, path: Path) -> Path | None:
    names = [n for n in ("lv", "vt", "vs", "all") if f"global2/{n}" in summary]
    if not names:
        return None
    vals = [summary[f"global2/{n}"] for n in names]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    err = list(zip(*[_err(v) for v in vals]))
    ax.bar([TYPE_LABELS[n] for n in names], [v["ratio"] for v in vals], yerr=err, capsize=3,
           color=[TYPE_COLORS[n] for n in names])
    ax.axhline(1.0, color="k", lw=0.8, ls=":")
    ax.set_ylabel("performance ratio (knocked / clean)")
    ax.set_title("Global setting 2: one knockout type in all layers")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_windows(summary: dict, path: Path, window: int | None = None) -> Path | None:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    any_rows = False
    for n in ("lv", "vt", "vs"):
        rows = sorted((int(k.rsplit("/", 1)[1]), v) for k, v in summary.items() if k.startswith(f"windows/{n}/"))
        if not rows:
            continue
        any_rows = True
        ax.plot([x for x, _ in rows], [v["ratio"] for _, v in rows], marker="o", color=TYPE_COLORS[n], label=TYPE_LABELS[n])
    if not any_rows:
        plt.close(fig)
        return None
    ax.axhline(1.0, color="k", lw=0.8, ls=":")
    ax.set_xlabel("window end layer x (layers x−k+1 … x knocked)" if window is None else f"window end layer x (layers x−{window - 1} … x)")
    ax.set_ylabel("performance ratio")
    ax.set_title("Fine-grained: knockout in a window of layers")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_patching(name: str, agg: dict, path: Path) -> Path:
    effect = agg["effect"].numpy()
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * len(agg["groups"]), 1.2 + 0.28 * len(agg["layers"])))
    im = ax.imshow(effect, aspect="auto", cmap="RdBu", vmin=-1, vmax=1, origin="lower")
    ax.set_xticks(range(len(agg["groups"])), agg["groups"], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(agg["layers"])), agg["layers"], fontsize=8)
    ax.set_ylabel("layer (patched at its input)" if "resid_pre" in name else "layer")
    ax.set_title(f"{name}  (n={agg['n']})\n0 = corrupted, 1 = clean", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.05)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_lens(agg: dict, path: Path) -> Path:
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    x = list(range(len(agg["labels"])))
    a.plot(x, agg["p_correct"].numpy(), marker="o", label="p(correct letter) among letters")
    a.plot(x, agg["top1"].numpy(), marker="s", label="correct letter ranked first")
    a.set_xticks(x, [lbl.replace("_pre", "") for lbl in agg["labels"]], fontsize=8)
    a.set_xlabel("residual stream entering layer l (final = after the last layer)")
    a.set_ylim(0, 1.02)
    a.set_title(f"Logit lens at the final position (n={agg['n']})", fontsize=9)
    a.legend(fontsize=8)
    mass = agg["frame_mass"].numpy()  # [layer, frames + 2]
    F = mass.shape[1] - 2
    im = b.imshow(mass[:, :F].T, aspect="auto", origin="lower", cmap="viridis")
    b.set_xlabel("layer")
    b.set_ylabel("frame")
    b.set_title(f"attention question→frame (mean over heads); to text/other: {mass[:, F + 1].mean():.0%}", fontsize=9)
    fig.colorbar(im, ax=b, fraction=0.05)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_layer_axis(summary: dict, patching: dict, lens: dict | None, n_layers: int, path: Path) -> Path | None:
    windows = {n: sorted((int(k.rsplit("/", 1)[1]), v["ratio"]) for k, v in summary.items() if k.startswith(f"windows/{n}/"))
               for n in ("lv", "vt", "vs")}
    if not patching and lens is None:
        return None
    panels = int(any(windows.values())) + int(bool(patching)) + int(lens is not None)
    fig, axes = plt.subplots(panels, 1, figsize=(6.5, 2.3 * panels), sharex=True, squeeze=False)
    axes = list(axes[:, 0])
    if any(windows.values()):
        ax = axes.pop(0)
        for n, rows in windows.items():
            if rows:
                ax.plot([x for x, _ in rows], [y for _, y in rows], marker="o", color=TYPE_COLORS[n], label=TYPE_LABELS[n])
        ax.axhline(1.0, color="k", lw=0.8, ls=":")
        ax.set_ylabel("knockout ratio")
        ax.set_title("window knockouts (x = window end layer)", fontsize=9)
        ax.legend(fontsize=7, ncol=3)
    if patching:
        ax = axes.pop(0)
        for name, agg in patching.items():
            for g, style in (("video", "-"), ("final", "--"), ("question", ":")):
                if g in agg["groups"]:
                    j = agg["groups"].index(g)
                    ax.plot(agg["layers"], agg["effect"][:, j].numpy(), style, marker=".", label=f"{name.split('/', 1)[1]}: {g}")
        ax.set_ylabel("patching effect")
        ax.set_title("activation patching (x = layer whose input is patched)", fontsize=9)
        ax.legend(fontsize=7)
    if lens is not None:
        ax = axes.pop(0)
        ax.plot(range(len(lens["labels"])), lens["p_correct"].numpy(), marker="o", color="k", label="p(correct letter)")
        ax.plot(range(len(lens["labels"])), lens["top1"].numpy(), marker="s", color="grey", label="ranked first")
        ax.set_ylabel("logit lens")
        ax.set_title(f"logit lens (x = residual entering layer x; x = {n_layers}: final)", fontsize=9)
        ax.legend(fontsize=7)
    fig.axes[-1].set_xlabel("layer")
    fig.axes[-1].xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fmt(v: float, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "nan"
    return f"{v:.1%}" if pct else f"{v:.3f}"


def _by_group(records: list[dict], field: str) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for r in records:
        g = r.get("meta", {}).get(field)
        if g is not None:
            groups.setdefault(str(g), []).append(r)
    return groups


def _mechanisms_section(out: Path, records: list[dict], summary: dict, n_layers: int) -> list[str]:
    from vlens.analysis import aggregate_lens, aggregate_patching

    patching, lens = aggregate_patching(records), aggregate_lens(records)
    if not patching and lens is None:
        return []
    lines = ["", "## Knockouts, patching and the logit lens on one layer axis", ""]
    axis = plot_layer_axis(summary, patching, lens, n_layers, out / "layers.png")
    lines += [f"![layers]({axis.name})", ""]
    for name, agg in patching.items():
        fig = plot_patching(name, agg, out / (name.replace("/", "_") + ".png"))
        best = divmod(int(agg["effect"].nan_to_num(-1e9).argmax()), len(agg["groups"]))
        lines += [f"### {name}", "",
                  f"- {agg['n']} samples; mean logit diff of the clean answer: clean {agg['clean_diff']:.3f}, corrupted {agg['corrupted_diff']:.3f}",
                  f"- largest effect {float(agg['effect'].flatten().nan_to_num(-1e9).max()):.2f} at layer {agg['layers'][best[0]]}, "
                  f"group `{agg['groups'][best[1]]}`", "", f"![{fig.stem}]({fig.name})", ""]
    if lens is not None:
        fig = plot_lens(lens, out / "lens.png")
        top = lens["top1"].tolist()  # the first layer whose top-1 rate is within 5 points of the output's
        first = next((lens["labels"][i] for i, v in enumerate(top) if v >= top[-1] - 0.05), None)
        lines += ["### Logit lens", "",
                  f"- {lens['n']} samples; correct letter ranked first: {float(lens['top1'][-1]):.0%} at the output"
                  + (f"; first within 5 points of that at `{first}`" if first else ""), "", f"![{fig.stem}]({fig.name})", ""]
    return lines


def write_report(out_dir: str | Path) -> Path:
    """Summarise a run directory into report.md + PNGs; returns the report's path."""
    out = Path(out_dir)
    settings, records = load_results(out)
    key = run_key(settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = summarise(records, key)
    n_layers = int(settings.get("n_layers", 0))
    figs = [
        plot_global1(summary, n_layers, out / "global1.png") if n_layers else None,
        plot_global2(summary, out / "global2.png"),
        plot_windows(summary, out / "windows.png", settings.get("window")),
    ]
    skipped = sorted({(r["sample"], r["skipped"]) for r in records if "skipped" in r})
    lines = [
        f"# vlens report: {settings.get('protocols')} on {settings.get('data')}",
        "",
        f"- model: `{settings.get('model')}` ({n_layers} layers), frames: {settings.get('frames')}, dtype: {settings.get('dtype')}",
        f"- samples scored: {summary.get('clean', {}).get('n', 0)}, skipped: {len(skipped)}",
        f"- clean accuracy: {_fmt(summary.get('clean', {}).get('accuracy', math.nan), True)}",
        f"- vlens {settings.get('vlens_version')}, prompt format {settings.get('prompt_format')}",
        "",
    ]
    for fig in figs:
        if fig is not None:
            lines += [f"![{fig.stem}]({fig.name})", ""]
    lines += [
        "| configuration | layers | n | accuracy | 95% CI | ratio | 95% CI | p(correct) | logit diff | KL(clean‖knocked) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    if "prior" in summary:
        at = next(i for i, line in enumerate(lines) if line.startswith("- clean accuracy")) + 1
        lines.insert(at, f"- language prior (no video; the most frequent answer of the same question among the other samples): "
                     f"{_fmt(summary['prior']['accuracy'], True)}")
    for name, s in summary.items():
        layers = s["layers"]
        span = "" if not layers else (f"{layers[0]}–{layers[-1]}" if len(layers) > 1 else str(layers[0]))
        lines.append(
            f"| {name} | {span} | {s['n']} | {_fmt(s['accuracy'], True)} | {_fmt(s['accuracy_ci'][0], True)}–{_fmt(s['accuracy_ci'][1], True)} "
            f"| {_fmt(s['ratio'])} | {_fmt(s['ratio_ci'][0])}–{_fmt(s['ratio_ci'][1])} | {_fmt(s['p_correct'])} | {_fmt(s['logit_diff'])} | {_fmt(s['kl'])} |"
        )
    for field in ("kind", "task"):
        groups = _by_group([r for r in records if "correct" in r], field)
        if len(groups) < 2:
            continue
        g2 = [c for c in ("clean", "prior", "global2/lv", "global2/vt", "global2/vs", "global2/all") if c in summary]
        lines += ["", f"## Accuracy by {field}", "", "| " + field + " | " + " | ".join(g2) + " |", "|---" * (len(g2) + 1) + "|"]
        for g, rows in sorted(groups.items()):
            accs = []
            for c in g2:
                vals = [r["correct"] for r in rows if r["config"] == c]
                accs.append(_fmt(sum(vals) / len(vals), True) if vals else "–")
            lines.append(f"| {g} | " + " | ".join(accs) + " |")
    eff_rows = [r for r in records if r["config"].startswith("efficient/") and "seconds" in r]
    if eff_rows:
        clean_t = {r["sample"]: r["seconds"] for r in records if r["config"] == "clean" and "seconds" in r}
        speedups = [clean_t[r["sample"]] / r["seconds"] for r in eff_rows if r["sample"] in clean_t and r["seconds"] > 0]
        frac = sum(r["attention_flops_fraction"] for r in eff_rows) / len(eff_rows)
        total = sum(r["flops_fraction"] for r in eff_rows) / len(eff_rows)
        name = eff_rows[0]["config"]
        lines += ["", "## Efficient inference", "",
                  f"- {name}: accuracy {_fmt(summary[name]['accuracy'], True)} vs clean {_fmt(summary['clean']['accuracy'], True)}",
                  f"- attention FLOPs (QKᵀ, AV): {frac:.1%} of clean; all FLOPs: {total:.1%}",
                  f"- measured prefill speed-up (median over samples): {sorted(speedups)[len(speedups) // 2]:.2f}×" if speedups else ""]
    lines += _mechanisms_section(out, records, summary, n_layers)
    if skipped:
        lines += ["", "## Skipped samples", ""] + [f"- `{s}`: {why}" for s, why in skipped[:50]]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report
