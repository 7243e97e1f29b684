"""Draw docs/img/organism_training.png from the shipped checkpoint's train_log.json.

python docs/figures_organism.py
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from vlens.organism import checkpoint_dir


def main(out: Path = Path(__file__).parent / "img" / "organism_training.png") -> Path:
    log = json.loads((checkpoint_dir() / "train_log.json").read_text())
    steps = log["steps"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
    a.plot(steps, log["loss"], color="#1f77b4")
    a.axhline(math.log(4), color="grey", ls=":", lw=1, label="ln 4 (uniform over 4 letters)")
    a.set_xlabel("step")
    a.set_ylabel("cross-entropy of the answer token")
    a.legend(fontsize=8)
    b.plot(steps, log["acc"], color="#2ca02c")
    b.set_xlabel("step")
    b.set_ylabel("training accuracy (running)")
    b.set_ylim(0, 1)
    cfg = log["config"]
    total = steps[-1] * cfg["batch_size"]
    fig.suptitle(
        f"Model organism training: {steps[-1]} steps × {cfg['batch_size']} clips = {total} clips, "
        f"{log['seconds'][-1] / 60:.0f} min on 2 CPU cores (options in canonical order)",
        fontsize=9,
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    print(main())
