"""Score every sample under every configuration of the chosen protocols, into the result store."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from vlens.data import Sample
from vlens.engine import SweepConfig, run_naive, run_sweep
from vlens.metrics import LETTERS, kl_letters, language_prior, score
from vlens.prompts import letter_token_ids, mc_question
from vlens.store import ResultStore
from vlens.video import VideoError


def sample_inputs(model, sample: Sample, n_frames: int, allow_repeat: bool = False):
    return model.to_inputs(
        sample.video, mc_question(sample.question, sample.options), n_frames=n_frames,
        start=sample.start, end=sample.end, fps=sample.fps, allow_repeat=allow_repeat,
    )


def shard_of(samples: Sequence[Sample], shard: tuple[int, int]) -> list[Sample]:
    i, n = shard
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {i}/{n} is out of range: use i/n with 0 <= i < n (0-based)")
    return [s for k, s in enumerate(samples) if k % n == i]


@torch.no_grad()
def run_study(
    model,
    samples: Sequence[Sample],
    configs: Sequence[SweepConfig],
    store: ResultStore,
    *,
    n_frames: int,
    engine: str = "fast",
    max_memory: int | None = None,
    allow_repeat: bool = False,
    progress: bool = True,
) -> dict:
    """Run `configs` on every sample not already complete in `store`. Returns counts."""
    if engine not in ("fast", "naive"):
        raise ValueError(f"engine must be 'fast' or 'naive', got {engine!r}")
    names = ["clean"] + [c.name for c in configs]
    counts = {"done": 0, "skipped": 0, "already": 0}
    letter_cache: dict[int, list[int]] = {}
    # the no-video baseline from the answer distribution, stored as configuration "prior"
    priors = dict(zip((s.id for s in samples), language_prior(samples)))
    bar = tqdm(samples, desc="samples", unit="sample", disable=not progress, dynamic_ncols=True)
    for sample in bar:
        todo = [c for c in configs if not store.has(sample.id, c.name)]
        if not todo and store.has(sample.id, "clean"):
            counts["already"] += 1
            continue
        base = {"sample": sample.id, "meta": {k: v for k, v in sample.meta.items() if isinstance(v, (str, int, float, bool))}}
        reason = sample.missing
        inputs = None
        if reason is None:
            try:
                inputs = sample_inputs(model, sample, n_frames, allow_repeat)
            except VideoError as e:  # recorded, not fatal: a long run keeps going
                reason = str(e)
        if reason is not None:
            store.append([{**base, "config": n, "skipped": reason} for n in names])
            counts["skipped"] += 1
            continue
        n_opt = len(sample.options)
        if n_opt not in letter_cache:
            letter_cache[n_opt] = letter_token_ids(model.tokenizer, n_opt)
        letters = letter_cache[n_opt]
        if engine == "fast":
            logits = run_sweep(model, inputs, todo, max_memory=max_memory)
        else:
            logits = run_naive(model, inputs, todo)
        clean = score(logits["clean"], letters, sample.answer)
        records = [{**base, "config": "clean", **clean}]
        if priors.get(sample.id) is not None:
            records.append({**base, "config": "prior", "pred": LETTERS[priors[sample.id]], "answer": LETTERS[sample.answer],
                            "correct": priors[sample.id] == sample.answer})
        for c in todo:
            s = score(logits[c.name], letters, sample.answer)
            s["kl"] = kl_letters(clean["letter_logits"], s["letter_logits"])
            records.append({**base, "config": c.name, "spec": repr(c.spec), "layers": list(c.layers.resolve(model.cfg.n_layers)), **s})
        store.append(records)
        counts["done"] += 1
        bar.set_postfix(done=counts["done"], skipped=counts["skipped"])
    return counts


def _mean(rows: Sequence[dict], field: str) -> float:
    vals = [r[field] for r in rows if field in r]
    return sum(vals) / len(vals) if vals else math.nan


def summarise(records: Sequence[dict], key: str) -> dict[str, dict]:
    """Per configuration: n, accuracy, performance ratio, bootstrap CI, mean p/logit diff/KL."""
    from vlens.metrics import accuracy, bootstrap_ci, performance_ratio

    by_sample_clean = {r["sample"]: r for r in records if r["config"] == "clean" and "correct" in r}
    import re

    natural = lambda name: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]  # noqa: E731
    configs = sorted({r["config"] for r in records if "correct" in r}, key=lambda n: (n != "clean", n != "prior", natural(n)))
    out = {}
    clean_acc = accuracy([r["correct"] for r in by_sample_clean.values()])
    for name in configs:
        rows = [r for r in records if r["config"] == name and "correct" in r and r["sample"] in by_sample_clean]
        if not rows:
            continue
        clean = [by_sample_clean[r["sample"]]["correct"] for r in rows]
        knocked = [r["correct"] for r in rows]
        acc = accuracy(knocked)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ratio = performance_ratio(acc, accuracy(clean)) if name != "clean" else 1.0 if clean_acc else math.nan
        ci = bootstrap_ci(clean, knocked, f"{key}|{name}")
        out[name] = {
            "n": len(rows),
            "accuracy": acc,
            "ratio": ratio,
            "accuracy_ci": ci["accuracy"],
            "ratio_ci": ci["ratio"],
            "p_correct": _mean(rows, "p_correct"),
            "logit_diff": _mean(rows, "logit_diff"),
            "kl": _mean(rows, "kl") if name not in ("clean", "prior") else 0.0,
            "layers": rows[0].get("layers"),
        }
    return out
