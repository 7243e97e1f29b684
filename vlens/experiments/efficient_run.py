"""`vlens run efficient`: score a dataset clean and with visual early exit + temporal pruning."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from vlens import flops
from vlens.data import Sample
from vlens.efficient import EfficientConfig, efficient_forward
from vlens.experiments.runner import sample_inputs
from vlens.metrics import kl_letters, score
from vlens.prompts import letter_token_ids
from vlens.store import ResultStore
from vlens.video import VideoError


def config_name(cfg: EfficientConfig) -> str:
    return f"efficient/E{cfg.exit_layer}-P{cfg.temporal_prune_layers}"


@torch.no_grad()
def run_efficient(model, samples: Sequence[Sample], cfg: EfficientConfig, store: ResultStore, *, n_frames: int,
                  allow_repeat: bool = False, progress: bool = True) -> dict:
    cfg.check(model.cfg.n_layers)
    name = config_name(cfg)
    counts = {"done": 0, "skipped": 0, "already": 0}
    for sample in tqdm(samples, desc="samples", unit="sample", disable=not progress, dynamic_ncols=True):
        if store.has(sample.id, name) and store.has(sample.id, "clean"):
            counts["already"] += 1
            continue
        base = {"sample": sample.id, "meta": {k: v for k, v in sample.meta.items() if isinstance(v, (str, int, float, bool))}}
        reason = sample.missing
        if reason is None:
            try:
                inputs = sample_inputs(model, sample, n_frames, allow_repeat)
            except VideoError as e:
                reason = str(e)
        if reason is not None:
            store.append([{**base, "config": c, "skipped": reason} for c in ("clean", name)])
            counts["skipped"] += 1
            continue
        letters = letter_token_ids(model.tokenizer, len(sample.options))
        t0 = time.perf_counter()
        clean_logits = model(inputs, logits_to_keep=1)[0, -1]
        t_clean = time.perf_counter() - t0
        t0 = time.perf_counter()
        eff_logits = efficient_forward(model, inputs, cfg).logits[0, -1]
        t_eff = time.perf_counter() - t0
        clean = score(clean_logits, letters, sample.answer)
        eff = score(eff_logits, letters, sample.answer)
        eff["kl"] = kl_letters(clean["letter_logits"], eff["letter_logits"])
        f = flops.summary(model.cfg, inputs.layout, cfg)
        store.append([
            {**base, "config": "clean", **clean, "seconds": t_clean},
            {**base, "config": name, **eff, "seconds": t_eff, "attention_flops_fraction": f["attention_fraction"],
             "flops_fraction": f["total_fraction"], "layers": list(range(cfg.exit_layer, model.cfg.n_layers))},
        ])
        counts["done"] += 1
    return counts
