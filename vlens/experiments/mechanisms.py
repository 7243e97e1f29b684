"""`vlens run patching` and `vlens run lens`: activation patching and the logit lens over a dataset.

Both write one record per sample into the same result store as the knockout protocols, so one run
directory can hold `windows`, `patching` and `lens` and the report puts them on one layer axis.

patching  For sample i the corrupted input is the *same prompt* with another sample's clip (the next
          sample of the dataset, cyclically; `--corruption reverse|shuffle|replace` edits the clip
          itself instead). The clean `--site` activation is patched into the corrupted run at every
          (layer, position group); the record keeps the raw logit differences of the clean answer.
          The report normalises the *averages* — (mean patched − mean corrupted) /
          (mean clean − mean corrupted) — because per-sample normalisation blows up on samples
          where the corruption barely moves the answer.
lens      Per layer, the option-letter probabilities and the rank of the correct letter at the final
          position (final norm + unembed), and the attention mass from the question to each frame
          (mean over heads), reduced inside the hooks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from vlens.data import Sample
from vlens.experiments.runner import sample_inputs
from vlens.lens import attention_to_frames, logit_lens
from vlens.metrics import score
from vlens.patching import CORRUPTIONS, SITES, PatchingError, corrupt, patch_sweep
from vlens.prompts import letter_token_ids
from vlens.store import ResultStore
from vlens.video import VideoError

MECHANISMS = ("patching", "lens")
VIDEO_CORRUPTIONS = tuple(c for c in CORRUPTIONS if c != "question")


def patching_name(site: str, corruption: str) -> str:
    return f"patching/{site}/{corruption}"


def _base(sample: Sample) -> dict:
    return {"sample": sample.id, "meta": {k: v for k, v in sample.meta.items() if isinstance(v, (str, int, float, bool))}}


def _inputs_or_reason(model, sample: Sample, n_frames: int, allow_repeat: bool):
    if sample.missing is not None:
        return None, sample.missing
    try:
        return sample_inputs(model, sample, n_frames, allow_repeat), None
    except VideoError as e:  # recorded, not fatal: a long run keeps going
        return None, str(e)


@torch.no_grad()
def run_patching(model, samples: Sequence[Sample], store: ResultStore, *, n_frames: int, site: str = "resid_pre",
                 corruption: str = "video", batch_size: int = 16, allow_repeat: bool = False,
                 progress: bool = True) -> dict:
    if site not in SITES or site == "z":
        raise PatchingError(f"--site must be one of resid_pre, attn_out, mlp_out; got {site!r}")
    if corruption not in VIDEO_CORRUPTIONS:
        raise PatchingError(f"--corruption must be one of {', '.join(VIDEO_CORRUPTIONS)}; got {corruption!r}")
    if corruption == "video" and len(samples) < 2:
        raise PatchingError("--corruption video takes the next sample's clip: give at least 2 samples")
    name = patching_name(site, corruption)
    counts = {"done": 0, "skipped": 0, "already": 0}
    for i, sample in enumerate(tqdm(samples, desc="patching", unit="sample", disable=not progress, dynamic_ncols=True)):
        if store.has(sample.id, name):
            counts["already"] += 1
            continue
        clean, reason = _inputs_or_reason(model, sample, n_frames, allow_repeat)
        other_id = None
        if reason is None and corruption == "video":
            other_sample = samples[(i + 1) % len(samples)]
            other, why = _inputs_or_reason(model, other_sample, n_frames, allow_repeat)
            reason = None if why is None else f"the corrupting clip ({other_sample.id}) is unusable: {why}"
            other_id = other_sample.id
        if reason is not None:
            store.append([{**_base(sample), "config": name, "skipped": reason}])
            counts["skipped"] += 1
            continue
        corrupted = corrupt(model, clean, corruption, other=other.videos[0] if corruption == "video" else None,
                            seed=i)
        letters = letter_token_ids(model.tokenizer, len(sample.options))
        res = patch_sweep(model, clean, corrupted, letters, sample.answer, site=site, batch_size=batch_size)
        store.append([{
            **_base(sample), "config": name, "site": site, "corruption": corruption, "other": other_id,
            "groups": res.groups, "layers": res.layers, "raw": [[round(float(x), 6) for x in row] for row in res.raw],
            "clean_diff": res.clean_diff, "corrupted_diff": res.corrupted_diff,
        }])
        counts["done"] += 1
    return counts


@torch.no_grad()
def run_lens(model, samples: Sequence[Sample], store: ResultStore, *, n_frames: int, allow_repeat: bool = False,
             progress: bool = True) -> dict:
    counts = {"done": 0, "skipped": 0, "already": 0}
    for sample in tqdm(samples, desc="lens", unit="sample", disable=not progress, dynamic_ncols=True):
        if store.has(sample.id, "lens"):
            counts["already"] += 1
            continue
        inputs, reason = _inputs_or_reason(model, sample, n_frames, allow_repeat)
        if reason is not None:
            store.append([{**_base(sample), "config": "lens", "skipped": reason}])
            counts["skipped"] += 1
            continue
        letters = letter_token_ids(model.tokenizer, len(sample.options))
        lens = logit_lens(model, inputs, letters, sample.answer)
        mass = attention_to_frames(model, inputs).mean(1)  # [layer, frames + 2], mean over heads
        final = model(inputs, logits_to_keep=1)[0, -1]
        store.append([
            {**_base(sample), "config": "clean", **score(final, letters, sample.answer)},
            {**_base(sample), "config": "lens", "labels": lens.labels,
             "p_correct": [round(float(x), 6) for x in lens.p_letters[:, sample.answer]],
             "rank": [int(x) for x in lens.rank],
             "frame_mass": [[round(float(x), 6) for x in row] for row in mass]},
        ])
        counts["done"] += 1
    return counts


def aggregate_patching(records: Sequence[dict]) -> dict[str, dict]:
    """Per patching configuration: normalised effect [layer, group] of the averaged logit diffs."""
    by_name: dict[str, list[dict]] = {}
    for r in records:
        if r["config"].startswith("patching/") and "raw" in r:
            by_name.setdefault(r["config"], []).append(r)
    out = {}
    for name, rows in by_name.items():
        groups = rows[0]["groups"]
        rows = [r for r in rows if r["groups"] == groups]  # same frame count → same groups
        raw = torch.tensor([r["raw"] for r in rows]).mean(0)
        clean = sum(r["clean_diff"] for r in rows) / len(rows)
        corr = sum(r["corrupted_diff"] for r in rows) / len(rows)
        denom = clean - corr
        effect = (raw - corr) / denom if abs(denom) > 1e-9 else torch.full_like(raw, float("nan"))
        out[name] = {"effect": effect, "groups": groups, "layers": rows[0]["layers"], "n": len(rows),
                     "clean_diff": clean, "corrupted_diff": corr}
    return out


def aggregate_lens(records: Sequence[dict]) -> dict | None:
    rows = [r for r in records if r["config"] == "lens" and "p_correct" in r]
    if not rows:
        return None
    n_frames = min(len(r["frame_mass"][0]) for r in rows)
    rows_f = [r for r in rows if len(r["frame_mass"][0]) == n_frames]
    return {
        "labels": rows[0]["labels"],
        "p_correct": torch.tensor([r["p_correct"] for r in rows]).mean(0),
        "top1": torch.tensor([[x == 0 for x in r["rank"]] for r in rows]).float().mean(0),
        "frame_mass": torch.tensor([r["frame_mass"] for r in rows_f]).mean(0),
        "n": len(rows),
    }
