"""The one per-sample loop every protocol runs in.

For each sample of this process's share: skip it if every record its protocols write is already in
the store; else build its inputs once (a missing or unreadable video is recorded as *skipped*
with the reason, not fatal), let each protocol compute the records it still lacks from a shared
`SampleContext` (inputs, option-letter ids, the clean logits computed once), and append the
sample's records in one write, so a sample is complete in the store or recomputed.

A protocol is a small object (see `vlens.experiments.protocols.Protocol`): its record names, the
settings that change its numbers, `__call__(ctx, todo) -> records` and a cost estimate.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from vlens.data import Sample
from vlens.inputs.prompts import mc_question
from vlens.inputs.sampling import VideoError
from vlens.metrics import score

if TYPE_CHECKING:
    from vlens.inputs.video_inputs import VideoInputs
    from vlens.model.hooked_video_llm import HookedVideoLLM


def sample_inputs(model, sample: Sample, n_frames: int, allow_repeat: bool = False):
    """The model's inputs for one sample: its clip, the multiple-choice prompt.

    Raises:
        VideoError: the clip cannot be read or sampled as asked.
    """
    return model.to_inputs(
        sample.video,
        mc_question(sample.question, sample.options),
        n_frames=n_frames,
        start=sample.start,
        end=sample.end,
        fps=sample.fps,
        allow_repeat=allow_repeat,
    )


T = TypeVar("T")


def shard_of(samples: Sequence[T], shard: tuple[int, int]) -> list[T]:
    """Samples i, i+n, i+2n, … of `samples` for shard (i, n), 0-based.

    Raises:
        ValueError: i or n out of range.
    """
    i, n = shard
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {i}/{n} is out of range: use i/n with 0 <= i < n (0-based)")
    return [s for k, s in enumerate(samples) if k % n == i]


def base_record(sample: Sample) -> dict:
    """The fields every record of a sample carries: its id and scalar metadata (kind, task, …)."""
    return {
        "sample": sample.id,
        "meta": {k: v for k, v in sample.meta.items() if isinstance(v, (str, int, float, bool))},
    }


@dataclass
class SampleContext:
    """What the protocols of one sample share. `index` is the sample's position in the whole
    dataset (`dataset`), not in this process's share, so anything derived from it (the next
    sample's clip, a corruption seed) does not depend on sharding."""

    model: HookedVideoLLM
    sample: Sample
    index: int
    dataset: Sequence[Sample]
    n_frames: int
    allow_repeat: bool
    inputs: VideoInputs
    letters: list[int]
    _clean: Tensor | None = None
    clean_seconds: float | None = None  # set when the clean logits came from a timed plain forward
    _clean_score: dict | None = field(default=None, repr=False)

    def clean_logits(self) -> Float[Tensor, " d_vocab"]:
        """Last-position logits of the clean forward, computed once per sample (timed)."""
        if self._clean is None:
            t0 = time.perf_counter()
            clean: Tensor = self.model(self.inputs, logits_to_keep=1)[0, -1]
            if clean.is_cuda:
                torch.cuda.synchronize(clean.device)
            self._clean = clean
            self.clean_seconds = time.perf_counter() - t0
        return self._clean

    def set_clean_logits(self, logits: Float[Tensor, " d_vocab"]) -> None:
        """Share clean logits another computation already produced (the sweep engine's)."""
        if self._clean is None:
            self._clean = logits

    def clean_score(self) -> dict:
        """`metrics.score` of the clean logits (pred, correct, letter logits, …)."""
        if self._clean_score is None:
            self._clean_score = score(self.clean_logits(), self.letters, self.sample.answer)
        return self._clean_score

    def other_inputs(self, sample: Sample):
        """Inputs of another sample's clip under the same settings.

        Raises:
            VideoError: that clip is missing or cannot be sampled.
        """
        if sample.missing is not None:
            raise VideoError(sample.missing)
        return sample_inputs(self.model, sample, self.n_frames, self.allow_repeat)


@dataclass
class Counts:
    """What one process's loop did: samples newly scored, newly skipped, and already in the store
    (of which `already_scored` have a scored record). `reasons`: sample → why it was skipped
    (this run's and earlier runs'), for samples of this share that have no scored record."""

    scored: int = 0
    skipped: int = 0
    already: int = 0
    already_scored: int = 0
    reasons: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.scored + self.skipped + self.already

    def postfix(self) -> dict:
        return {"scored": self.scored, "skipped": self.skipped, "already": self.already}


def record_names(protocols: Sequence) -> list[str]:
    """Every record name a sample gets from `protocols` ("clean" first when one needs it)."""
    names = ["clean"] if any(p.needs_clean for p in protocols) else []
    for p in protocols:
        names += [n for n in p.names() if n not in names]
    return names


@torch.no_grad()
def run_samples(
    model,
    share: Sequence[tuple[int, Sample]],
    dataset: Sequence[Sample],
    protocols: Sequence,
    store,
    *,
    n_frames: int,
    allow_repeat: bool = False,
    progress: bool = True,
    desc: str = "samples",
) -> Counts:
    """Run `protocols` on every sample of `share` not yet complete in `store`.

    Args:
        model: a HookedVideoLLM.
        share: (index in `dataset`, sample) pairs this process runs.
        dataset: the whole dataset (after filters, before --limit/--shard): baselines and
            cross-sample corruptions read it, so results do not depend on the share.
        protocols: Protocol objects (vlens.experiments.protocols), run in this order per sample.
        store: anything with `has(sample, config)`, `append(records)` (a ResultStore).
        n_frames, allow_repeat: frame sampling of every clip.
        progress: show one bar over `share`; its postfix counts scored / skipped / already,
            which add up to the bar's position.

    Returns:
        Counts of this call.
    """
    names = record_names(protocols)
    counts = Counts()
    letter_cache: dict[int, list[int]] = {}
    bar = tqdm(share, desc=desc, unit="sample", disable=not progress, dynamic_ncols=True)
    for index, sample in bar:
        todo = [n for n in names if not store.has(sample.id, n)]
        if not todo:
            counts.already += 1
            if sample.id in getattr(store, "scored", {sample.id}):
                counts.already_scored += 1
            elif sample.id in getattr(store, "skipped", {}):
                counts.reasons[sample.id] = store.skipped[sample.id]
            bar.set_postfix(counts.postfix(), refresh=False)
            continue
        base = base_record(sample)
        reason, inputs = sample.missing, None
        if reason is None:
            try:
                inputs = sample_inputs(model, sample, n_frames, allow_repeat)
            except VideoError as e:  # recorded, not fatal: a long run keeps going
                reason = str(e)
        if reason is not None:
            store.append([{**base, "config": n, "method": _method_of(n, protocols), "skipped": reason} for n in todo])
            counts.skipped += 1
            counts.reasons[sample.id] = reason
            bar.set_postfix(counts.postfix(), refresh=False)
            continue
        assert inputs is not None  # built above (a failure set reason and continued)
        n_opt = len(sample.options)
        if n_opt not in letter_cache:
            letter_cache[n_opt] = model.answer_letter_ids(n_opt)  # the ids written after its own generation prompt
        ctx = SampleContext(model, sample, index, dataset, n_frames, allow_repeat, inputs, letter_cache[n_opt])
        records = []
        for p in protocols:
            mine = [n for n in p.names() if n in todo]
            if mine:
                records += [{**base, "method": p.method, **r} for r in p(ctx, mine)]
        if "clean" in todo:
            clean = {**base, "config": "clean", "method": "clean", **ctx.clean_score()}
            if ctx.clean_seconds is not None:
                clean["seconds"] = ctx.clean_seconds
            records.insert(0, clean)
        store.append(records)
        counts.scored += 1
        bar.set_postfix(counts.postfix(), refresh=False)
    bar.close()
    return counts


def _method_of(name: str, protocols: Sequence) -> str:
    return next((p.method for p in protocols if name in p.names()), "clean")
