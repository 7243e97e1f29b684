"""A run directory read for the figures: its settings, records and per-configuration summary, and
the chance accuracy of its samples.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from vlens.experiments.store import load_results, run_key

if TYPE_CHECKING:
    from vlens.experiments.analysis import ConfigSummary


# data ------------------------------------------------------------------------------------------
def load_summary(out_dir: str | Path) -> tuple[dict, list[dict], dict[str, ConfigSummary]]:
    """Read a run directory and summarise it per configuration.

    Args:
        out_dir: a directory written by `vlens run`.

    Returns:
        `(settings, records, summary)`: summary maps a configuration name to its n, accuracy,
        ratio, 95% intervals, mean p(correct), logit difference, KL and layers.

    Raises:
        StoreError: `out_dir` is not a run directory.
    """
    from vlens.experiments.analysis import (
        summarise,  # the analysis layer, between the store and the plots
    )

    settings, records = load_results(out_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = summarise(records, run_key(settings))
    return settings, records, summary


def chance_accuracy(records: Sequence[dict]) -> float | None:
    """Expected accuracy of a uniform guess: the mean of 1 / (number of options) over the samples
    scored clean (the option count is the length of their `letter_logits`).

    Args:
        records: result records of a run.

    Returns:
        The chance accuracy, or None when no clean record has letter logits.
    """
    sizes = [len(r["letter_logits"]) for r in records if r.get("config") == "clean" and r.get("letter_logits")]
    return sum(1 / n for n in sizes) / len(sizes) if sizes else None
