"""Caching activations over a dataset: what `vlens cache-activations` runs.

    from vlens.features.cache import cache_activations
    counts = cache_activations(model, samples, "acts/", hooks="blocks.*.hook_resid_post",
                               positions="video,last", n_frames=8)
    store = ActivationStore("acts/", model=model)

Each sample is one forward (up to the deepest hook) through `ActivationWriter`; its labels (the
answer index and text, the dataset's scalar facts: question kind, colour, direction, ...) go into
the store's index, where probes read them. Running it again with the same settings resumes (a
finished sample is not recomputed); other settings in the same directory are an
`ActivationStoreError` naming what differs.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlens.features.store import ActivationStoreError, ActivationWriter
from vlens.inputs.prompts import mc_question

GLOB_CHARS = "*?["


@dataclass
class CacheCounts:
    """What one `cache_activations` call did.

    Attributes:
        written: samples run and stored now.
        already: samples found in the store (a resumed run).
        skipped: `{sample id: reason}` for samples that could not be read (missing or unreadable video).
        shard: the shard written, `(i, n)`.
    """

    written: int = 0
    already: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    shard: tuple[int, int] = (0, 1)


def _natural(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def resolve_hooks(model: Any, hooks: str | Sequence[str]) -> list[str]:
    """Hook names from a comma-separated string or a list; entries with `*`, `?` or `[` are glob
    patterns over `model.hook_dict` (`blocks.*.hook_resid_post`: every layer, in layer order).

    Raises:
        ActivationStoreError: no hook given, or a pattern that matches no hook point (the message
            shows a few names that exist). Unknown literal names are refused by `ActivationWriter`.
    """
    entries = [h.strip() for h in hooks.split(",")] if isinstance(hooks, str) else [str(h).strip() for h in hooks]
    entries = [h for h in entries if h]
    if not entries:
        raise ActivationStoreError(
            f"hooks={hooks!r}: no hook given; pass names such as 'blocks.0.hook_resid_post' or a pattern "
            "such as 'blocks.*.hook_resid_post'"
        )
    out: list[str] = []
    for entry in entries:
        if any(c in entry for c in GLOB_CHARS):
            matched = sorted((h for h in model.hook_dict if fnmatch.fnmatchcase(h, entry)), key=_natural)
            if not matched:
                raise ActivationStoreError(
                    f"hooks pattern {entry!r} matches no hook point of this model; hook points look like "
                    "'blocks.0.hook_resid_post', 'blocks.0.attn.hook_z', 'hook_video_features'"
                )
            out += [h for h in matched if h not in out]
        elif entry not in out:
            out.append(entry)
    return out


def sample_labels(sample: Any) -> dict:
    """What the store's index keeps of a sample for probes: `answer` (the option index),
    `answer_text` (that option), and the scalar facts of `sample.meta` (str, int, float, bool)."""
    labels: dict = {k: v for k, v in sample.meta.items() if isinstance(v, (str, int, float, bool)) and k != "missing"}
    if sample.answer is not None:
        labels["answer"] = int(sample.answer)
        labels["answer_text"] = str(sample.options[sample.answer])
    return labels


def cache_activations(
    model: Any,
    samples: Sequence[Any],
    out: str | Path,
    *,
    hooks: str | Sequence[str],
    positions: str | Sequence[str] = "all",
    dtype: str = "float32",
    shard: tuple[int, int] = (0, 1),
    n_frames: int = 8,
    allow_repeat: bool = False,
    chunk_rows: int = 65536,
    settings: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CacheCounts:
    """Write `hooks` at `positions` for this shard's samples (`samples[i::n]`) into the store `out`.

    Args:
        model: a `HookedVideoLLM`.
        samples: `vlens.data.Sample`s (the whole dataset: the shard is taken here).
        out: the store directory (created; resumed if it holds the same settings).
        hooks: names or glob patterns (`resolve_hooks`).
        positions: the position group (`"video"`, `"video,last"`, `"all"`, ...).
        dtype: the stored dtype ("float32", "float16", "bfloat16").
        shard: `(i, n)`: this process writes samples i, i+n, ... (0-based).
        n_frames: frames sampled per clip (`model.to_inputs`).
        allow_repeat: allow clips shorter than `n_frames` (`model.to_inputs`).
        chunk_rows: rows buffered before a chunk is written (the memory bound).
        settings: what else changes the rows (the dataset spec, ...): recorded in the manifest, and
            a resumed run must give the same.
        progress: called as `progress(done, total)` after each sample of the shard.

    Returns:
        CacheCounts.

    Raises:
        ActivationStoreError: a bad hook, dtype or shard, or a directory written with other settings
            or by another model. StoreLockedError: another process writes this shard.
    """
    names = resolve_hooks(model, hooks)
    extra = {"frames": n_frames, "allow_repeat": allow_repeat, **(settings or {})}
    counts = CacheCounts(shard=shard)
    with ActivationWriter(
        out, model, names, positions=positions, dtype=dtype, shard=shard, chunk_rows=chunk_rows, extra_settings=extra
    ) as writer:
        share = list(samples)[shard[0] :: shard[1]]
        for k, sample in enumerate(share):
            if sample.id in writer.done:
                counts.already += 1
            elif sample.missing is not None:
                counts.skipped[sample.id] = str(sample.missing)
            else:
                try:
                    inputs = model.to_inputs(
                        sample.video,
                        mc_question(sample.question, sample.options),
                        n_frames=n_frames,
                        start=sample.start,
                        end=sample.end,
                        fps=sample.fps,
                        allow_repeat=allow_repeat,
                    )
                except ValueError as e:  # VideoError: unreadable, too short
                    counts.skipped[sample.id] = str(e)
                else:
                    writer.add(sample.id, inputs, sample_labels(sample))
                    counts.written += 1
            if progress is not None:
                progress(k + 1, len(share))
    return counts
