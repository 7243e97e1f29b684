"""`vlens view`: one self-contained HTML page showing where a video LLM looks.

    from vlens.viewer.view import view_attention
    path = view_attention(model, inputs, path="view.html",
                          knockouts={"LV-K all layers": ko.LV().hooks(inputs, layers=ko.all_layers())})

    $ vlens view runs/demo            # a run directory: its first scored sample, its results

The page shows the sampled frames with the attention from the answer position (and, averaged,
from the question's positions) over each frame's patches as overlays, one layer and head at a time
(sliders; the head slider's last stop is the mean over heads); the knockout results per
configuration; the activation-patching heatmaps when there are any. Everything (frames as PNG data
URIs, the attention maps, the script) is inside the file: it opens offline, from a mail
attachment, from a CI artifact.

Attention is read from `blocks.{l}.attn.hook_pattern` inside hooks that keep only the rows of the
two query kinds and the columns of the video patches, so no N×N pattern is cached: a 7B model at 32
frames stays within a few hundred MB. Each (query, layer, head) map is stored as uint8 scaled to its
own maximum (printed on the page): the page compares patches and frames within a map, and the
per-frame attention mass (exact, float) compares across layers.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlens.viewer.maps import ViewError, attention_maps
from vlens.viewer.page_data import (
    frame_images,
    knockout_rows,
    page_data,
    patching_list,
    render_html,
)

if TYPE_CHECKING:
    from vlens.inputs.video_inputs import VideoInputs
    from vlens.model.hooked_video_llm import HookedVideoLLM


def view_attention(
    model: HookedVideoLLM,
    inputs: VideoInputs,
    *,
    path: str | Path = "vlens-view.html",
    layers: Sequence[int] | None = None,
    row: int = 0,
    knockouts: Mapping[str, Sequence] | None = None,
    patching: Mapping[str, Mapping] | None = None,
    frames: Any = None,
    title: str | None = None,
    max_frame_px: int = 224,
    fwd_hooks: Sequence = (),
) -> Path:
    """Write the attention viewer for one input as a self-contained HTML file.

    Args:
        model: a `HookedVideoLLM`.
        inputs: `VideoInputs` from `model.to_inputs` (the sampled frames travel on them).
        path: where to write the page.
        layers: layers on the layer slider (default: all).
        row: batch row to show.
        knockouts: optional `{name: fwd_hooks}`, e.g. `{"LV-K all": ko.LV().hooks(inputs,
            layers=ko.all_layers())}`; each is run on this input and compared with the clean run.
        patching: optional `{name: {"effect": [layer, group], "layers": [...], "groups": [...], "n": int}}`
            (the report's aggregate) shown as heatmaps.
        frames: `[T, H, W, 3]` uint8 pixels, only for inputs that carry no sampled video.
        title: page title (default: the model's family and the prompt).
        max_frame_px: frames are downscaled to at most this many pixels on a side in the file.
        fwd_hooks: hooks active while the attention is read (e.g. a knockout), so the overlays show
            attention under that intervention; the knockout table always compares with the clean run.

    Returns:
        The path written.

    Raises:
        ViewError: no video patches in the inputs, a bad `row`/`layers`, or `frames` of the wrong shape.
    """
    maps = attention_maps(model, inputs, layers=layers, row=row, fwd_hooks=fwd_hooks)
    layout = inputs.layouts[row]
    pics, size = frame_images(inputs, layout, row, frames, maps.maps.shape[3], max_frame_px)
    if title is None:
        family = getattr(getattr(model, "family", None), "name", "model")
        title = f"vlens view · {family} · {model.cfg.n_layers} layers × {model.cfg.n_heads} heads"
    prompt = inputs.prompts[row] if row < len(inputs.prompts) else ""
    ko_table = knockout_rows(model, inputs, knockouts, row) if knockouts else None
    data = page_data(
        maps,
        pics,
        size,
        model.cfg.n_heads,
        title=title,
        subtitle=prompt[-300:],
        knockouts=ko_table,
        patching=patching_list(patching),
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(data), encoding="utf-8")
    return path


def _run_knockouts(summary: dict, chance: float | None) -> dict | None:
    from vlens.figures.style import config_label, fmt_value

    if not summary:
        return None
    rows = []
    for name, s in summary.items():
        acc_ci = f"{fmt_value(s['accuracy_ci'][0], True)}–{fmt_value(s['accuracy_ci'][1], True)}"
        ratio_ci = f"{fmt_value(s['ratio_ci'][0])}–{fmt_value(s['ratio_ci'][1])}"
        rows.append(
            {
                "cells": [
                    config_label(name, s.get("layers")),
                    str(s["n"]),
                    fmt_value(s["accuracy"], True),
                    acc_ci,
                    fmt_value(s["ratio"]),
                    ratio_ci,
                ],
                "bar": None if math.isnan(s["accuracy"]) else s["accuracy"],
            }
        )
    note = "Accuracy over the run's samples per configuration, with 95% bootstrap intervals (bar: accuracy)."
    if chance is not None:
        note += f" Chance (a uniform guess over each question's options): {chance:.1%}."
    return {"columns": ["configuration", "n", "accuracy", "95% CI", "ratio", "95% CI"], "rows": rows, "note": note}


def view_run(
    run_dir: str | Path,
    *,
    sample: str | None = None,
    path: str | Path | None = None,
    layers: Sequence[int] | None = None,
    device: str = "cpu",
) -> Path:
    """Write the viewer for a `vlens run` directory: one sample's attention, the run's results.

    The model and dataset are the ones in the directory's settings.json; the sample is `sample`
    (an id from results.jsonl) or the first scored one.

    Args:
        run_dir: a directory written by `vlens run` / `vlens demo`.
        sample: sample id to show (default: the first sample scored clean).
        path: output file (default: `run_dir/view.html`).
        layers: layers on the slider (default: all).
        device: where the model runs.

    Returns:
        The path written.

    Raises:
        ViewError: the directory has no scored sample, or `sample` is not in it.
        StoreError: `run_dir` is not a run directory.
    """
    from vlens.data import load_dataset
    from vlens.figures.summary import chance_accuracy, load_summary
    from vlens.inputs.prompts import mc_question
    from vlens.model.hooked_video_llm import HookedVideoLLM

    run_dir = Path(run_dir)
    settings, records, summary = load_summary(run_dir)
    scored = [r["sample"] for r in records if r["config"] == "clean" and "correct" in r]
    if not scored:
        raise ViewError(f"{run_dir} has no sample scored clean yet; run `vlens run ... --out {run_dir}` first")
    wanted = sample or scored[0]
    samples = load_dataset(settings["data"], task=settings.get("task"), **settings.get("filters", {}))
    match = [s for s in samples if s.id == wanted]
    if not match:
        raise ViewError(
            f"sample {wanted!r} is not in {settings['data']}; pick one of the ids in {run_dir}/results.jsonl "
            f"(e.g. {scored[0]!r})"
        )
    s = match[0]
    model = HookedVideoLLM.from_pretrained(settings["model"], device=device)
    inputs = model.to_inputs(
        s.video,
        mc_question(s.question, s.options),
        n_frames=int(settings["frames"]),
        start=s.start,
        end=s.end,
        fps=s.fps,
        allow_repeat=bool(settings.get("allow_repeat", False)),
    )
    try:
        from vlens.experiments.analysis import aggregate_patching

        patching = aggregate_patching(records)
    except ImportError:  # the analysis layer moved: show the page without the heatmaps
        patching = {}
    answer = "" if s.answer is None else f" (answer: {'ABCDEFGHIJ'[s.answer]}. {s.options[s.answer]})"
    maps = attention_maps(model, inputs, layers=layers)
    pics, size = frame_images(inputs, inputs.layout, 0, None, maps.maps.shape[3], 224)
    data = page_data(
        maps,
        pics,
        size,
        model.cfg.n_heads,
        title=f"vlens view · {run_dir.name} · sample {s.id}",
        subtitle=f"{s.question}{answer} — model {Path(settings['model']).name}, {settings['frames']} frames",
        knockouts=_run_knockouts(summary, chance_accuracy(records)),
        patching=patching_list(patching),
    )
    out = Path(path) if path is not None else run_dir / "view.html"
    out.write_text(render_html(data), encoding="utf-8")
    return out


def build_parser() -> argparse.ArgumentParser:
    """The `vlens view` argument parser (the CLI mounts it as a subcommand)."""
    p = argparse.ArgumentParser(
        prog="vlens view",
        description="Write one self-contained HTML page (no network) for a run directory: a sample's frames with the "
        "attention from the answer position and from the question over each frame's patches, per layer and head "
        "(sliders); the knockout results per configuration; the patching heatmaps when the run has them.",
    )
    p.add_argument("dir", help="run directory written by `vlens run` or `vlens demo` (holds settings.json)")
    p.add_argument("--sample", default=None, help="sample id to show (default: the first one scored)")
    p.add_argument("--out", default=None, help="output HTML file (default: DIR/view.html)")
    p.add_argument("--layers", default=None, help="comma-separated layers for the slider (default: all)")
    p.add_argument("--device", default="cpu", help="where the model runs: cpu, cuda, cuda:1, …")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """`vlens view DIR [--sample ID] [--out FILE] [--layers 0,3,7] [--device cpu]`.

    Args:
        argv: the arguments after `view` (default: `sys.argv[1:]`).

    Returns:
        0 on success, 2 with a message on stderr when the directory or a choice is unusable.
    """
    from vlens.data import DatasetError
    from vlens.experiments.store import StoreError

    args = build_parser().parse_args(argv)
    try:
        layers = None if args.layers is None else [int(x) for x in args.layers.split(",") if x.strip()]
    except ValueError:
        print(f"vlens view: --layers takes comma-separated integers, e.g. 0,3,7; got {args.layers!r}", file=sys.stderr)
        return 2
    try:
        out = view_run(args.dir, sample=args.sample, path=args.out, layers=layers, device=args.device)
    except (ViewError, StoreError, DatasetError, FileNotFoundError) as e:
        print(f"vlens view: {e}", file=sys.stderr)
        return 2
    print(f"view: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
