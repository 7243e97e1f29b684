"""Benchmarks as lists of `Sample`s, read from the released layouts (docs/datasets.md).

    load_dataset("videomme:/data/Video-MME", duration="short", limit=50)
    load_dataset("mvbench:/data/MVBench", task="action_sequence")
    load_dataset("egoschema:/data/egoschema")
    load_dataset("synthetic:0,n=200,frames=8,size=32")

Missing videos are not an error at load time: the sample gets `meta["missing"]` with the reason,
and `vlens run` records it as skipped (with that reason) instead of failing halfway through a long
run. A missing annotation file, or a missing task source folder, is an error naming the path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class DatasetError(ValueError):
    """A dataset directory does not have the released layout (names the expected path)."""


def inside(root: str | Path, relative: str, what: str) -> Path:
    """`root / relative` for a path read from an annotation file, refused unless it stays inside
    `root`: an absolute path or one whose `..` parts climb out would read files the dataset does
    not hold. The check is on the path's text (normalised), so a dataset folder that is itself a
    symlink to another disk still works.

    Args:
        root: the dataset folder (or a folder inside it) the annotation's paths are relative to.
        relative: the path as written in the annotation.
        what: where it was read from, for the error (e.g. "MVBench action_sequence.json item 3").

    Returns:
        The joined path.

    Raises:
        DatasetError: `relative` is empty, absolute, or leaves `root`.
    """
    text = str(relative)
    if not text.strip() or "\x00" in text:
        raise DatasetError(f"{what}: video path {relative!r} is empty or invalid")
    if os.path.isabs(text) or Path(text).drive or text.startswith(("~", "\\")):
        raise DatasetError(
            f"{what}: video path {relative!r} is absolute; annotation paths must be relative to {root} "
            "(vlens only reads videos inside the dataset folder)"
        )
    joined = os.path.normpath(os.path.join(str(root), text))
    base = os.path.normpath(str(root))
    if os.path.commonpath([base, joined]) != base:
        raise DatasetError(
            f"{what}: video path {relative!r} leaves the dataset folder {root} (it resolves to {joined}); "
            "vlens only reads videos inside the dataset folder"
        )
    return Path(joined)


@dataclass(frozen=True)
class Sample:
    id: str
    video: str | np.ndarray
    question: str
    options: tuple[str, ...]
    answer: int | None
    start: float | None = None
    end: float | None = None
    fps: float | None = None
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def missing(self) -> str | None:
        return self.meta.get("missing")


def _loaders() -> dict[str, Callable[..., list[Sample]]]:
    from vlens.data import egoschema, mvbench, synthetic, videomme

    return {
        "videomme": videomme.load,
        "mvbench": mvbench.load,
        "egoschema": egoschema.load,
        "synthetic": synthetic.load,
    }


DATASET_NAMES = ("videomme", "mvbench", "egoschema", "synthetic")


def load_dataset(
    spec: str, *, limit: int | None = None, task: str | list[str] | None = None, **filters
) -> list[Sample]:
    """`NAME:DIR` (or `synthetic[:SEED[,n=…,frames=…,size=…]]`) → samples in the release's order.
    `limit` applies after the filters."""
    name, _, arg = spec.partition(":")
    name = name.strip().lower()
    loaders = _loaders()
    if name not in loaders:
        raise DatasetError(f"unknown dataset {name!r} in {spec!r}; use one of {', '.join(DATASET_NAMES)} as NAME:DIR")
    if name != "synthetic" and not arg:
        raise DatasetError(f"{name} needs its directory: --data {name}:/path/to/{name}")
    filters = {k: v for k, v in filters.items() if v is not None}
    samples = loaders[name](arg, task=task, **filters)
    return samples[:limit] if limit is not None else samples


__all__ = ["DATASET_NAMES", "DatasetError", "Sample", "inside", "load_dataset"]
