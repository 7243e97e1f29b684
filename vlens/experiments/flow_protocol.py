"""`vlens run flow`: map-the-flow's protocols in the run API (store, resume, shards, report).

For every sample, on inputs with text roles (`vlens.inputs.roles.with_roles`):

* each chosen pathway of `vlens.interventions.flow.flow_specs()` knocked out in map-the-flow's centred window
  around every layer l (`vlens.interventions.flow.flow_window(l, k, L)`: l−k//2 … l−k//2+k−1, clipped to the
  model, as its `window_style="center"`), one record `flow/<pathway>/<l>` each, run by the sweep
  engine from one clean pass;
* the effective pathway (`vlens.interventions.flow.effective_pathway`): one forward with seven pathways blocked
  in their layers, record `flow/effective_pathway`, with the kept fraction of edges;
* the attention flow (`vlens.interventions.flow.attention_flow`): mass from `last` and `question` to every frame
  and role per layer, reduced in the pattern hook, record `flow/attention`.

Every knockout record carries `metrics.score` (pred, correct, p(correct) over the letters and over
the vocabulary, logit diff) and the KL from clean; the analysis (vlens.experiments.analysis.aggregate_flow)
derives accuracy and map-the-flow's change in p(answer) from them.

Options (`RunConfig.options["flow"]`, CLI `--flow-window`, `--flow-protocols`):

| key         | default | meaning |
|-------------|---------|---------|
| `window`    | 9       | window size k (map-the-flow's `--window 9`); 1 … the model's depth |
| `protocols` | all     | pathway names, map-the-flow target names (`vql-to-ql`, …), `effective_pathway`, `attention_flow` |
| `effective_ranges` | map-the-flow's 7B ranges scaled to the depth | kept `[start, end)` layers per pathway (`vlens.interventions.flow.EFFECTIVE_7B`) |
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from vlens.experiments.protocols import Cost, Protocol, clean_cost
from vlens.experiments.runner import SampleContext
from vlens.interventions.sweep import SweepConfig, plan, run_naive, run_sweep
from vlens.metrics import kl_letters, score

EXTRA = ("effective_pathway", "attention_flow")
OPTION_KEYS = ("window", "protocols", "effective_ranges")
DEFAULT_WINDOW = 9
SOURCES = ("last", "question")


class FlowError(ValueError):
    """A bad option of the flow protocol (`--flow-window`, `--flow-protocols`); the message names the fix."""


def _pathways() -> dict:
    from vlens.interventions.flow import flow_specs

    return flow_specs()


def choices() -> tuple[str, ...]:
    """Every name `--flow-protocols` accepts: pathways, map-the-flow targets, the two extras."""
    from vlens.interventions.flow import TARGETS

    return (*_pathways(), *TARGETS, *EXTRA)


def resolve_names(protocols: str | Sequence[str] | None) -> list[str]:
    """The pathway / extra names a `protocols` option selects (targets expanded), in table order.

    Raises:
        FlowError: an unknown name, or nothing selected.
    """
    from vlens.interventions.flow import TARGETS

    if protocols is None:
        return [*_pathways(), *EXTRA]
    items = [p.strip() for p in protocols.split(",")] if isinstance(protocols, str) else list(protocols)
    if not all(isinstance(p, str) for p in items):
        raise FlowError(f"--flow-protocols takes names (strings), got {protocols!r}")
    # the report's names ("last ← video") are accepted as the CLI's ("last<-video")
    items = [p.replace("←", "<-").replace(" <-", "<-").replace("<- ", "<-") for p in items if p]
    unknown = [p for p in items if p not in choices()]
    if unknown:
        raise FlowError(f"unknown flow protocol(s) {unknown}; choose from {', '.join(choices())}")
    if not items:
        raise FlowError(f"--flow-protocols selects nothing; choose from {', '.join(choices())}")
    chosen = {n for p in items for n in TARGETS.get(p, (p,))}
    return [n for n in (*_pathways(), *EXTRA) if n in chosen]


def check_options(opts: Mapping) -> None:
    """Checks `RunConfig.options["flow"]` before anything loads (the depth is checked later).

    Raises:
        FlowError: an unknown key, a window that is not a positive integer, an unknown protocol.
    """
    if not isinstance(opts, Mapping):
        raise FlowError(f"options['flow'] must be a dict, got {opts!r}")
    unknown = set(opts) - set(OPTION_KEYS)
    if unknown:
        raise FlowError(f"unknown flow option(s) {sorted(unknown)}; use {', '.join(OPTION_KEYS)}")
    from vlens.interventions.flow import is_window_size

    k = opts.get("window", DEFAULT_WINDOW)
    if not is_window_size(k):
        raise FlowError(f"--flow-window must be an integer ≥ 1 (map-the-flow uses 9), got {k!r}")
    resolve_names(opts.get("protocols"))


class FlowProtocol(Protocol):
    """map-the-flow's protocols for one sample (see the module docstring)."""

    method = "flow"

    def __init__(
        self,
        n_layers: int,
        *,
        window: int = DEFAULT_WINDOW,
        protocols: str | Sequence[str] | None = None,
        effective_ranges: Mapping | None = None,
        engine: str = "fast",
        max_memory: int | None = None,
    ):
        from vlens.interventions.flow import (
            effective_pathway,
            flow_window,
            is_window_size,
        )
        from vlens.interventions.flow import effective_ranges as ranges_for

        if engine not in ("fast", "naive"):
            raise ValueError(f"engine must be 'fast' or 'naive', got {engine!r}")
        if not is_window_size(window) or window > n_layers:
            raise FlowError(
                f"--flow-window {window!r} must be an integer between 1 and the model's {n_layers} layers "
                f"(the default is {DEFAULT_WINDOW}, map-the-flow's window on its 32-layer models; "
                f"pass --flow-window K with K <= {n_layers}, e.g. {max(1, round(DEFAULT_WINDOW * n_layers / 32)) | 1})"
            )
        self.n_layers, self.window, self.engine, self.max_memory = n_layers, window, engine, max_memory
        self.chosen = resolve_names(protocols)
        try:
            self.ranges = ranges_for(n_layers, effective_ranges)
        except ValueError as e:
            raise FlowError(str(e)) from None
        self.effective = effective_pathway(n_layers, self.ranges)
        specs = _pathways()
        self.configs = [
            SweepConfig(f"flow/{p}/{l}", specs[p], flow_window(l, window, n_layers))
            for p in self.chosen
            if p in specs
            for l in range(n_layers)
        ]
        self.layers = {c.name: list(c.layers.resolve(n_layers)) for c in self.configs}

    def names(self) -> list[str]:
        """`flow/<pathway>/<centre>` for every pathway and window centre, then the extras."""
        return (
            [c.name for c in self.configs]
            + (["flow/effective_pathway"] if "effective_pathway" in self.chosen else [])
            + (["flow/attention"] if "attention_flow" in self.chosen else [])
        )

    def settings(self) -> dict:
        """The window, pathways, effective ranges and sources: what changes the records (run key)."""
        return {
            "flow": {
                "window": self.window,
                "protocols": self.chosen,
                "window_style": "center, clipped",
                "effective_ranges": {k: list(v) for k, v in self.ranges.items()},
                "sources": list(SOURCES),
            }
        }

    @staticmethod
    def roles_inputs(ctx: SampleContext):
        """The sample's inputs with text roles (the option specs need the answer)."""
        from vlens.inputs.roles import with_roles

        s = ctx.sample
        return with_roles(ctx.model, ctx.inputs, s.question, list(s.options), answer=s.answer)

    def _record(self, ctx: SampleContext, name: str, logits, **extra) -> dict:
        s = score(logits, ctx.letters, ctx.sample.answer)
        s["kl"] = kl_letters(ctx.clean_score()["letter_logits"], s["letter_logits"])
        return {"config": name, **extra, **s}

    def __call__(self, ctx: SampleContext, todo: Sequence[str]) -> list[dict]:
        """The sample's records among `todo`: pathway knockouts (one sweep from one clean pass),
        the effective pathway (one forward) and the attention flow (one forward)."""
        from vlens.interventions.flow import (
            NEEDS_ANSWER,
            attention_flow,
            edges_kept,
            effective_pathway_hooks,
        )

        todo_set, records = set(todo), []
        inputs = self.roles_inputs(ctx)
        no_answer = ctx.sample.answer is None
        sub = [c for c in self.configs if c.name in todo_set]
        if no_answer:  # option(correct=…) is undefined: those records say why instead
            skip = [c for c in sub if c.name.split("/")[1] in NEEDS_ANSWER]
            records += [
                {"config": c.name, "skipped": "the sample has no answer key: the true / false option is unknown"}
                for c in skip
            ]
            sub = [c for c in sub if c not in skip]
        if sub:
            if self.engine == "fast":
                logits = run_sweep(ctx.model, inputs, sub, max_memory=self.max_memory)
            else:
                logits = run_naive(ctx.model, inputs, sub)
            ctx.set_clean_logits(logits["clean"])
            for c in sub:
                _, pathway, centre = c.name.split("/")
                records.append(
                    self._record(
                        ctx,
                        c.name,
                        logits[c.name],
                        spec=repr(c.spec),
                        layers=self.layers[c.name],
                        pathway=pathway,
                        centre=int(centre),
                    )
                )
        if "flow/effective_pathway" in todo_set:
            hooks = effective_pathway_hooks(inputs, self.n_layers, self.ranges)
            logits = ctx.model.run_with_hooks(inputs, fwd_hooks=hooks, logits_to_keep=1)[0, -1]
            records.append(
                self._record(
                    ctx,
                    "flow/effective_pathway",
                    logits,
                    layers=list(range(self.n_layers)),
                    edges_kept=edges_kept(inputs.layout, self.effective, self.n_layers),
                    parts={n: list(sel.resolve(self.n_layers)) for n, _, sel in self.effective},
                )
            )
        if "flow/attention" in todo_set:
            groups, mass = attention_flow(ctx.model, inputs, sources=SOURCES)
            records.append(
                {
                    "config": "flow/attention",
                    "groups": groups,
                    "sources": list(SOURCES),
                    "mass": [[[round(float(x), 7) for x in row] for row in layer] for layer in mass],
                }
            )
        return records

    def cost(self, ctx: SampleContext) -> Cost:
        """The sweep engine's bill for the pathways plus one full forward per extra."""
        from vlens.interventions.flow import NEEDS_ANSWER

        layout = self.roles_inputs(ctx).layout
        configs = (
            self.configs
            if ctx.sample.answer is not None
            else [c for c in self.configs if c.name.split("/")[1] not in NEEDS_ANSWER]
        )
        out = Cost(0, 0.0)
        if configs:
            p = plan(configs, layout, self.n_layers)
            engine, naive = p.flops(ctx.model.cfg)
            full = naive / (len(configs) + 1)  # plan counts one clean forward in both
            out = Cost(len(p.groups), engine - full) if self.engine == "fast" else Cost(len(configs), naive - full)
        extra = sum(n in self.chosen for n in EXTRA)  # one full forward each (explicit attention for the flow)
        one = clean_cost(ctx.model, layout)
        return Cost(out.forwards + extra, out.flops + extra * one.flops)


def factory(config, model, dataset) -> FlowProtocol:
    """`register_protocol("flow", factory)`: options from `config.options["flow"]`."""
    opts = dict(config.options.get("flow", {}))
    check_options(opts)
    max_memory = None if config.max_memory_gib is None else int(config.max_memory_gib * 2**30)
    return FlowProtocol(
        model.cfg.n_layers,
        window=opts.get("window", DEFAULT_WINDOW),
        protocols=opts.get("protocols"),
        effective_ranges=opts.get("effective_ranges"),
        engine=config.engine,
        max_memory=max_memory,
    )


__all__ = ["FlowError", "FlowProtocol", "check_options", "choices", "factory", "resolve_names"]
