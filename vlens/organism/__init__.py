"""The model organism: a tiny LLaVA-OneVision trained from scratch on the synthetic task.

It ships inside the package (`vlens/organism/checkpoint/`, a `save_pretrained` directory) and
loads through the same `HookedVideoLLM.from_pretrained` path as any checkpoint:

    from vlens.organism import checkpoint_dir
    model = HookedVideoLLM.from_pretrained(checkpoint_dir())

`vlens organism train` retrains it (seeded) on 2 CPU cores; see docs/organism.md.
"""

from __future__ import annotations

from pathlib import Path

CHECKPOINT = Path(__file__).parent / "checkpoint"


def checkpoint_dir() -> Path:
    if not (CHECKPOINT / "config.json").exists():
        raise FileNotFoundError(
            f"the organism checkpoint is missing from {CHECKPOINT}; reinstall vlens or run `vlens organism train`"
        )
    return CHECKPOINT
