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
COLUMNS = (("clean", "clean"), ("prior", "no-video prior"), ("global2/lv", "LV-K all"), ("global2/vt", "VT-K all"),
           ("global2/vs", "VS-K all"))


def summary_table(out: Path) -> str:
    """Accuracy by question kind: clean, the language prior, and each knockout in all layers."""
    from vlens.store import load_results

    _, records = load_results(out)
    kinds = sorted({r["meta"].get("kind") for r in records if "correct" in r and r["meta"].get("kind")})
    head = f"{'kind':<13}" + "".join(f"{label:>16}" for _, label in COLUMNS)
    rows = [head, "-" * len(head)]
    for kind in [*kinds, "all"]:
        cells = []
        for config, _ in COLUMNS:
            vals = [r["correct"] for r in records if r["config"] == config and "correct" in r
                    and (kind == "all" or r["meta"].get("kind") == kind)]
            cells.append(f"{sum(vals) / len(vals):>15.0%} " if vals else f"{'–':>16}")
        rows.append(f"{kind:<13}" + "".join(cells))
    return "\n".join(rows)


def main(out: str | Path | None = None, *, n: int = 120, frames: int = 8, protocols: str = PROTOCOLS,
         model_dir: str | Path | None = None) -> int:
    from vlens.cli import main as cli
    from vlens.organism import checkpoint_dir

    out = Path(out) if out is not None else Path("vlens-demo")
    model_dir = Path(model_dir) if model_dir is not None else checkpoint_dir()
    print(f"vlens demo: the model organism ({model_dir}) on {n} held-out synthetic clips, {frames} frames each\n"
          f"  protocols {protocols} → {out}/", file=sys.stderr)
    code = cli(["run", protocols, "--model", str(model_dir), "--data", f"synthetic:{HELD_OUT_SEED},n={n},frames={frames}",
                "--frames", str(frames), "--window", "4", "--out", str(out)])
    if code != 0:
        return code
    print("\naccuracy by question kind (held-out):")
    print(summary_table(out))
    print(f"\nreport: {out / 'report.md'}  (figures: global1.png, global2.png, windows.png, layers.png, lens.png)")
    return 0
