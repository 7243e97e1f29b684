"""`vlens demo`: the study end to end on the model organism, in a few minutes on a laptop CPU.

The organism (vlens/organism/checkpoint, a tiny LLaVA-OneVision trained on the synthetic task)
is loaded through `HookedVideoLLM.from_pretrained` like any checkpoint; a held-out synthetic set
(seed 1; training draws from seeds ≥ 10 000) is scored clean, under the language-prior baseline and
under every knockout of global1, global2 and windows, plus activation patching and the logit lens.
The run directory gets results.jsonl (resumable), report.md and the PNGs; the terminal gets a
summary table by question kind.
"""

from __future__ import annotations

import sys
from pathlib import Path

HELD_OUT_SEED = 1
PROTOCOLS = "global1,global2,windows,lens"
COLUMNS = (
    ("clean", "clean"),
    ("prior", "no-video prior"),
    ("global2/lv", "LV-K all"),
    ("global2/vt", "VT-K all"),
    ("global2/vs", "VS-K all"),
)


def summary_table(out: str | Path) -> str:
    """Accuracy by question kind: clean, the language prior, and each knockout in all layers."""
    from vlens.experiments.analysis import accuracy_by
    from vlens.experiments.store import load_results

    _, records = load_results(out)
    table = accuracy_by(records, "kind", [c for c, _ in COLUMNS])
    head = f"{'kind':<13}" + "".join(f"{label:>16}" for _, label in COLUMNS)
    rows = [head, "-" * len(head)]
    for kind, accs in table.items():
        rows.append(f"{kind:<13}" + "".join(f"{accs[c]:>15.0%} " if c in accs else f"{'–':>16}" for c, _ in COLUMNS))
    return "\n".join(rows)


def config(
    out: str | Path | None = None,
    *,
    n: int = 120,
    frames: int = 8,
    protocols: str = PROTOCOLS,
    model_dir: str | Path | None = None,
):
    """The demo's RunConfig: the organism on `n` held-out synthetic clips of `frames` frames."""
    from vlens.organism import checkpoint_dir
    from vlens.run import RunConfig

    return RunConfig(
        model=Path(model_dir) if model_dir is not None else checkpoint_dir(),
        data=f"synthetic:{HELD_OUT_SEED},n={n},frames={frames}",
        out=Path(out or "vlens-demo"),
        protocols=protocols,
        frames=frames,
        window=4,
    )


def main(
    out: str | Path | None = None,
    *,
    n: int = 120,
    frames: int = 8,
    protocols: str = PROTOCOLS,
    model_dir: str | Path | None = None,
) -> int:
    """Run the demo and print its summary (the CLI's `vlens demo`). Returns the exit code."""
    from vlens.run import run

    cfg = config(out, n=n, frames=frames, protocols=protocols, model_dir=model_dir)
    print(
        f"vlens demo: the model organism ({cfg.model}) on {n} held-out synthetic clips, {frames} frames each\n"
        f"  protocols {','.join(cfg.protocols)} → {cfg.out}/",
        file=sys.stderr,
    )
    result = run(cfg)
    print(
        f"done: {result.totals.scored} scored, {result.totals.skipped} skipped, {result.totals.already} already in the store",
        file=sys.stderr,
    )
    print("\naccuracy by question kind (held-out):")
    print(summary_table(cfg.out))
    print(f"\nreport: {result.report}  (figures: global1.png, global2.png, windows.png, layers.png, lens.png)")
    return 0
