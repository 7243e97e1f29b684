"""Protocols: what the per-sample loop (vlens.experiments.runner) computes for one sample.

A protocol is a small object:

    class MyProtocol(Protocol):
        method = "attribution"                  # the records' `method` field
        needs_clean = True                      # the loop then writes the "clean" record too
        def names(self): return ["attribution/ig"]             # record names per sample
        def settings(self): return {"attribution": {...}}      # what changes its numbers (run key)
        def __call__(self, ctx, todo): return [{"config": "attribution/ig", ...}]
        def cost(self, ctx): return Cost(forwards=…, flops=…)  # for --dry-run (beyond clean)

and is plugged in with `vlens.experiments.registry.register_protocol("attribution", factory)`, where
`factory(config, model, dataset) -> Protocol` reads its options from `config.options["attribution"]`.
`vlens run attribution …` and `RunConfig(protocols=("attribution",))` then run it in the same
loop, store, resume, sharding and report as the study's protocols.

Built in: the knockout protocols `global1`, `global2`, `windows` (one `KnockoutProtocol` running
all their configurations through the sweep engine, plus the language prior), `patching`, `lens`,
`efficient`, `attribution`, `flow` (map-the-flow's protocols, vlens.experiments.flow_protocol) and `heads`
(vlens.experiments.heads_protocol).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from vlens.data import Sample
from vlens.experiments.runner import SampleContext
from vlens.inputs.sampling import VideoError
from vlens.interventions import flops
from vlens.interventions.patching import (
    CORRUPTIONS,
    SITES,
    PatchingError,
    corrupt,
    patch_sweep,
    position_groups,
)
from vlens.interventions.sweep import SweepConfig, plan, run_naive, run_sweep
from vlens.metrics import LETTERS, kl_letters, language_prior, score


@dataclass(frozen=True)
class Cost:
    """What a protocol runs on one sample beyond the shared clean forward: model forwards (a
    batched or partial forward counts once) and FLOPs (vlens.interventions.flops / engine.plan formulas)."""

    forwards: int
    flops: float


def clean_cost(model, layout) -> Cost:
    """One clean forward (the formulas of vlens.interventions.flops)."""
    return Cost(1, sum(x.attention + x.linear for x in flops.clean_flops(model.cfg, layout)))


class Protocol:
    """Base class: see the module docstring."""

    method: str = ""
    needs_clean: bool = True

    def names(self) -> list[str]:
        """The record names (`config` fields) this protocol writes for every sample."""
        raise NotImplementedError

    def settings(self) -> dict:
        """Settings that change this protocol's numbers; merged into the run key (settings.json)."""
        return {}

    def __call__(self, ctx: SampleContext, todo: Sequence[str]) -> list[dict]:
        """Records for one sample.

        Args:
            ctx: the sample's shared context (inputs, letters, clean logits, the whole dataset).
            todo: the subset of `names()` not yet in the store (compute at least these).

        Returns:
            One dict per record, each with a `config` field; the loop adds `sample`, `meta` and
            `method`. A record with a `skipped` field (the reason) marks a record that cannot be made.
        """
        raise NotImplementedError

    def cost(self, ctx: SampleContext) -> Cost:
        """Forwards and FLOPs of one sample beyond the shared clean forward (for --dry-run)."""
        return Cost(0, 0.0)


class KnockoutProtocol(Protocol):
    """Every knockout configuration of a sample, from one shared clean pass (the sweep engine)."""

    method = "knockout"

    def __init__(
        self, configs: Sequence[SweepConfig], n_layers: int, *, engine: str = "fast", max_memory: int | None = None
    ):
        if engine not in ("fast", "naive"):
            raise ValueError(f"engine must be 'fast' or 'naive', got {engine!r}")
        self.configs, self.n_layers, self.engine, self.max_memory = list(configs), n_layers, engine, max_memory
        self.layers = {c.name: list(c.layers.resolve(n_layers)) for c in self.configs}

    def names(self) -> list[str]:
        return [c.name for c in self.configs]

    def __call__(self, ctx: SampleContext, todo: Sequence[str]) -> list[dict]:
        todo_set = set(todo)
        sub = [c for c in self.configs if c.name in todo_set]
        if self.engine == "fast":
            logits = run_sweep(ctx.model, ctx.inputs, sub, max_memory=self.max_memory)
        else:
            logits = run_naive(ctx.model, ctx.inputs, sub)
        ctx.set_clean_logits(logits["clean"])
        clean = ctx.clean_score()
        records = []
        for c in sub:
            s = score(logits[c.name], ctx.letters, ctx.sample.answer)
            s["kl"] = kl_letters(clean["letter_logits"], s["letter_logits"])
            records.append({"config": c.name, "spec": repr(c.spec), "layers": self.layers[c.name], **s})
        return records

    def cost(self, ctx: SampleContext) -> Cost:
        engine, naive = plan(self.configs, ctx.inputs.layout, self.n_layers).flops(ctx.model.cfg)
        full = naive / (len(self.configs) + 1)  # plan counts one clean forward in both
        if self.engine == "naive":
            return Cost(len(self.configs), naive - full)
        return Cost(len(plan(self.configs, ctx.inputs.layout, self.n_layers).groups), engine - full)


class PriorProtocol(Protocol):
    """The language prior (record "prior"): the option most often the answer of the same question
    among the other samples of the **whole dataset** (metrics.language_prior), so it does not
    depend on which samples a process ran."""

    method = "prior"
    needs_clean = False

    def __init__(self, dataset: Sequence[Sample]):
        self.preds = language_prior(dataset)

    def names(self) -> list[str]:
        return ["prior"]

    def __call__(self, ctx: SampleContext, todo: Sequence[str]) -> list[dict]:
        pred, answer = self.preds[ctx.index], ctx.sample.answer
        if pred is None:  # no answer key: nothing to score, but the record marks the sample done
            return [{"config": "prior", "pred": None, "answer": None}]
        assert answer is not None  # language_prior predicts only for samples with an answer key
        return [{"config": "prior", "pred": LETTERS[pred], "answer": LETTERS[answer], "correct": pred == answer}]


def patching_name(site: str, corruption: str) -> str:
    return f"patching/{site}/{corruption}"


VIDEO_CORRUPTIONS = tuple(c for c in CORRUPTIONS if c != "question")


class PatchingProtocol(Protocol):
    """Activation patching of `site` from the clean run into a corrupted one, every layer × group.

    With `corruption="video"` the corrupted input is the same prompt with the clip of the *next
    sample of the whole dataset* (cyclically); reverse/shuffle/replace edit the clip itself, seeded
    by the sample's dataset index. Either way the result does not depend on sharding."""

    method = "patching"
    needs_clean = False

    def __init__(self, site: str, corruption: str, dataset: Sequence[Sample], *, batch_size: int = 16):
        if site not in SITES or site == "z":
            raise PatchingError(f"--site must be one of resid_pre, attn_out, mlp_out; got {site!r}")
        if corruption not in VIDEO_CORRUPTIONS:
            raise PatchingError(f"--corruption must be one of {', '.join(VIDEO_CORRUPTIONS)}; got {corruption!r}")
        if corruption == "video" and len(dataset) < 2:
            raise PatchingError("--corruption video takes the next sample's clip: give at least 2 samples")
        self.site, self.corruption, self.batch_size = site, corruption, batch_size
        self.name = patching_name(site, corruption)

    def names(self) -> list[str]:
        return [self.name]

    def settings(self) -> dict:
        return {"site": self.site, "corruption": self.corruption}

    def __call__(self, ctx: SampleContext, todo: Sequence[str]) -> list[dict]:
        answer = ctx.sample.answer
        if answer is None:  # no answer: no logit difference to patch (patch_sweep would refuse it)
            return [{"config": self.name, "skipped": "the sample has no answer key: there is no logit difference"}]
        other, other_id = None, None
        if self.corruption == "video":
            other_sample = ctx.dataset[(ctx.index + 1) % len(ctx.dataset)]
            other_id = other_sample.id
            try:
                other = ctx.other_inputs(other_sample).videos[0]
            except VideoError as e:
                return [{"config": self.name, "skipped": f"the corrupting clip ({other_id}) is unusable: {e}"}]
        corrupted = corrupt(ctx.model, ctx.inputs, self.corruption, other=other, seed=ctx.index)
        res = patch_sweep(
            ctx.model, ctx.inputs, corrupted, ctx.letters, answer, site=self.site, batch_size=self.batch_size
        )
        return [
            {
                "config": self.name,
                "site": self.site,
                "corruption": self.corruption,
                "other": other_id,
                "groups": res.groups,
                "layers": res.layers,
                "raw": [[round(float(x), 6) for x in row] for row in res.raw],
                "clean_diff": res.clean_diff,
                "corrupted_diff": res.corrupted_diff,
            }
        ]

    def cost(self, ctx: SampleContext) -> Cost:
        per_layer = [x.attention + x.linear for x in flops.clean_flops(ctx.model.cfg, ctx.inputs.layout)]
        L, G = len(per_layer), len(position_groups(ctx.inputs.layout))
        jobs = [l for l in range(L) for _ in range(G)]  # patch_sweep's job order: layer-major
        chunks = [jobs[i : i + self.batch_size] for i in range(0, len(jobs), self.batch_size)]
        # a chunk runs len(chunk) rows from its lowest patched layer up; + clean and corrupted caches
        total = 2 * sum(per_layer) + sum(len(c) * sum(per_layer[min(c) :]) for c in chunks)
        return Cost(2 + len(chunks), total)


class LensProtocol(Protocol):
    """The logit lens at the final position and the question→frame attention, per layer."""

    method = "lens"

    def names(self) -> list[str]:
        return ["lens"]

    def __call__(self, ctx: SampleContext, todo: Sequence[str]) -> list[dict]:
        from vlens.interventions.lens import attention_to_frames, logit_lens

        lens = logit_lens(ctx.model, ctx.inputs, ctx.letters, ctx.sample.answer)
        mass = attention_to_frames(ctx.model, ctx.inputs).mean(1)  # [layer, frames + 2], mean over heads
        return [
            {
                "config": "lens",
                "labels": lens.labels,
                "p_correct": [round(float(x), 6) for x in lens.p_letters[:, ctx.sample.answer]],
                "rank": [int(x) for x in lens.rank],
                "frame_mass": [[round(float(x), 6) for x in row] for row in mass],
            }
        ]

    def cost(self, ctx: SampleContext) -> Cost:
        one = clean_cost(ctx.model, ctx.inputs.layout)
        return Cost(2, 2 * one.flops)  # a cached forward for the lens, one reading the patterns


class EfficientProtocol(Protocol):
    """Visual early exit + temporal pruning (vlens.interventions.efficient), timed against the clean forward."""

    method = "efficient"

    def __init__(self, cfg, n_layers: int):
        cfg.check(n_layers)
        self.cfg, self.n_layers = cfg, n_layers
        self.name = f"efficient/E{cfg.exit_layer}-P{cfg.temporal_prune_layers}"

    def names(self) -> list[str]:
        return [self.name]

    def settings(self) -> dict:
        return {"exit_layer": self.cfg.exit_layer, "prune_layers": self.cfg.temporal_prune_layers}

    def __call__(self, ctx: SampleContext, todo: Sequence[str]) -> list[dict]:
        from vlens.interventions.efficient import efficient_forward

        clean = ctx.clean_score()  # the timed plain clean forward comes first, as a baseline
        t0 = time.perf_counter()
        logits = efficient_forward(ctx.model, ctx.inputs, self.cfg).logits[0, -1]
        if logits.is_cuda:
            torch.cuda.synchronize(logits.device)
        seconds = time.perf_counter() - t0
        eff = score(logits, ctx.letters, ctx.sample.answer)
        eff["kl"] = kl_letters(clean["letter_logits"], eff["letter_logits"])
        f = flops.summary(ctx.model.cfg, ctx.inputs.layout, self.cfg)
        return [
            {
                "config": self.name,
                **eff,
                "seconds": seconds,
                "attention_flops_fraction": f["attention_fraction"],
                "flops_fraction": f["total_fraction"],
                "layers": list(range(self.cfg.exit_layer, self.n_layers)),
            }
        ]

    def cost(self, ctx: SampleContext) -> Cost:
        eff = flops.efficient_flops(ctx.model.cfg, ctx.inputs.layout, self.cfg)
        return Cost(1, sum(x.attention + x.linear for x in eff))


class AttributionProtocol(Protocol):
    """The whole knockout study of a sample estimated from one forward + one backward
    (vlens.interventions.attribution), stored under the exact protocols' names with method="attribution";
    `verify_top` > 0 re-runs the largest estimates exactly, stored as `verified/<name>`."""

    method = "attribution"

    def __init__(self, configs: Sequence[SweepConfig], n_layers: int, *, readout: str = "letters", verify_top: int = 0):
        if verify_top < 0:
            raise ValueError(f"--verify-top must be >= 0, got {verify_top}")
        self.configs, self.n_layers, self.readout, self.verify_top = list(configs), n_layers, readout, verify_top

    def names(self) -> list[str]:
        return [c.name for c in self.configs]

    def settings(self) -> dict:
        return {"attribution": {"readout": self.readout, "verify_top": self.verify_top}}

    def __call__(self, ctx: SampleContext, todo: Sequence[str]) -> list[dict]:
        from vlens.interventions.attribution import attribute_sample
        from vlens.interventions.attribution_validation import verify_top

        todo_set = set(todo)
        sub = [c for c in self.configs if c.name in todo_set]
        answer = ctx.sample.answer
        if answer is None:  # no answer: no logit difference to attribute (attribute_sample would refuse it)
            why = "the sample has no answer key: there is no logit difference to attribute"
            return [{"config": c.name, "skipped": why} for c in sub]
        recs = attribute_sample(ctx.model, ctx.inputs, sub, ctx.letters, answer, readout=self.readout)
        records = [{"config": c.name, **recs[c.name]} for c in sub]
        if self.verify_top:
            exact = verify_top(ctx.model, ctx.inputs, recs, sub, min(self.verify_top, len(sub)), ctx.letters, answer)
            records += [{"config": f"verified/{name}", **r} for name, r in exact.items()]
        return records

    def cost(self, ctx: SampleContext) -> Cost:
        c = clean_cost(ctx.model, ctx.inputs.layout)
        return Cost(2, 2 * c.flops)  # about one forward and one backward (2× a forward) beyond the clean pass
