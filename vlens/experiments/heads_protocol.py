"""`vlens run heads`: which attention heads carry a knockout's effect, ranked by attribution and
checked exactly, in the run API (store, resume, shards, report).

For every sample and every spec of `--heads-spec` (default `lv,vt,vs`):

* the spec knocked out on each (layer, query head) alone, estimated from one forward and one
  backward for all specs together (`vlens.interventions.head_attribution.attribute_heads`): the
  layer × head maps of the estimated change of the logit difference and of p(correct);
* the `--top-k` heads of that sample with the largest estimated |Δ logit diff| knocked out exactly
  (`exact_heads`: one forward each, resumed at the head's layer).

One record `heads/<spec>` per sample and spec holds both (`estimate`, `estimate_p_correct`,
`verified`); the analysis (`vlens.experiments.heads_analysis`) averages the maps over samples and
measures how the estimates agree with the exact runs; the report draws the layer × head maps.

Options (`RunConfig.options["heads"]`, CLI `--heads-spec`, `--top-k`):

| key     | default    | meaning |
|---------|------------|---------|
| `specs` | `lv,vt,vs` | knockout names (`vlens.interventions.knockout.from_name`: lv, vt, vs, unions such as `lv+vt`, `all`) |
| `top_k` | 5          | heads re-run exactly per sample and spec; 1 … layers × query heads |
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vlens.arguments import ArgumentError
from vlens.experiments.protocols import Cost, Protocol, clean_cost
from vlens.experiments.runner import SampleContext
from vlens.interventions.knockout import KnockoutError, Spec, from_name

OPTION_KEYS = ("specs", "top_k")
DEFAULT_SPECS = "lv,vt,vs"
DEFAULT_TOP_K = 5
ROUND = 7  # decimals kept in the stored maps


class HeadsError(ArgumentError):
    """A bad option of the heads protocol (`--heads-spec`, `--top-k`); the message names the flag."""


def resolve_specs(specs: str | Sequence[str] | None) -> list[tuple[str, Spec]]:
    """(record key, spec) for each name of `--heads-spec`, in the order given.

    Raises:
        HeadsError: an unknown or repeated name, or nothing selected.
    """
    if specs is None:
        specs = DEFAULT_SPECS
    items = [p.strip() for p in specs.split(",")] if isinstance(specs, str) else list(specs)
    if not all(isinstance(p, str) for p in items):
        raise HeadsError(f"--heads-spec takes knockout names (strings), got {specs!r}")
    items = [p for p in items if p]
    if not items:
        raise HeadsError(f"--heads-spec selects nothing (got {specs!r}); give e.g. lv,vt,vs")
    out: list[tuple[str, Spec]] = []
    for name in items:
        try:
            spec = from_name(name)
        except KnockoutError as e:
            raise HeadsError(f"--heads-spec: {e}") from None
        key = "+".join(p.strip() for p in name.lower().replace("-k", "").replace("|", "+").split("+"))
        if any(spec == s for _, s in out):
            raise HeadsError(f"--heads-spec names {spec!r} twice (in {specs!r})")
        out.append((key, spec))
    return out


def _top_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise HeadsError(f"--top-k must be an integer ≥ 1 (heads re-run exactly per sample and spec), got {k!r}")
    return k


def check_options(opts: Mapping) -> None:
    """Checks `RunConfig.options["heads"]` before anything loads (the head count is checked later).

    Raises:
        HeadsError: an unknown key, a top_k that is not an integer ≥ 1, an unknown spec.
    """
    if not isinstance(opts, Mapping):
        raise HeadsError(f"options['heads'] must be a dict, got {opts!r}")
    unknown = set(opts) - set(OPTION_KEYS)
    if unknown:
        raise HeadsError(f"unknown heads option(s) {sorted(unknown)}; use {', '.join(OPTION_KEYS)}")
    _top_k(opts.get("top_k", DEFAULT_TOP_K))
    resolve_specs(opts.get("specs"))


def _rounded(m) -> list[list[float]]:
    return [[round(float(x), ROUND) for x in row] for row in m]


class HeadsProtocol(Protocol):
    """Per-head attribution of each spec, the top K heads verified exactly (see the module docstring)."""

    method = "heads"

    def __init__(
        self, n_layers: int, n_heads: int, *, specs: str | Sequence[str] | None = None, top_k: int = DEFAULT_TOP_K
    ):
        from vlens.interventions.head_attribution import check_top_k

        self.n_layers, self.n_heads = n_layers, n_heads
        self.specs = resolve_specs(specs)
        try:
            self.top_k = check_top_k(_top_k(top_k), n_layers, n_heads, "--top-k")
        except ArgumentError as e:
            raise HeadsError(str(e)) from None

    def names(self) -> list[str]:
        """`heads/<spec>` for every spec of `--heads-spec`."""
        return [f"heads/{key}" for key, _ in self.specs]

    def settings(self) -> dict:
        """The specs, K, and how heads are ranked: what changes the records (run key)."""
        return {
            "heads": {
                "specs": [key for key, _ in self.specs],
                "top_k": self.top_k,
                "rank_by": "logit_diff",
                "readout": "letters",
            }
        }

    def __call__(self, ctx: SampleContext, todo: Sequence[str]) -> list[dict]:
        """The sample's `heads/<spec>` records among `todo`: one backward for every spec's map,
        then the top K heads of each spec run exactly."""
        from vlens.interventions.head_attribution import attribute_heads, exact_heads

        chosen = [(key, spec) for key, spec in self.specs if f"heads/{key}" in set(todo)]
        answer = ctx.sample.answer
        if answer is None:  # no answer: no logit difference to attribute
            why = "the sample has no answer key: there is no logit difference to attribute"
            return [{"config": f"heads/{key}", "skipped": why} for key, _ in chosen]
        est = attribute_heads(ctx.model, ctx.inputs, [s for _, s in chosen], ctx.letters, answer)
        records = []
        for key, spec in chosen:
            ld, pc = est.map(spec, "logit_diff"), est.map(spec, "p_correct")
            top = est.top(spec, self.top_k)
            exact = exact_heads(ctx.model, ctx.inputs, spec, top, ctx.letters, answer)
            verified = [
                {
                    "layer": l,
                    "head": h,
                    "estimate": round(float(ld[l, h]), ROUND),
                    "exact": round(exact[(l, h)]["d_logit_diff"], ROUND),
                    "estimate_p_correct": round(float(pc[l, h]), ROUND),
                    "exact_p_correct": round(exact[(l, h)]["d_p_correct"], ROUND),
                    "pred": exact[(l, h)]["pred"],
                    "kl": exact[(l, h)]["kl"],
                }
                for l, h in top
            ]
            records.append(
                {
                    "config": f"heads/{key}",
                    "spec": repr(spec),
                    "clean_logit_diff": est.clean["logit_diff"],
                    "clean_p_correct": est.clean["p_correct"],
                    "estimate": _rounded(ld),
                    "estimate_p_correct": _rounded(pc),
                    "verified": verified,
                }
            )
        return records

    def cost(self, ctx: SampleContext) -> Cost:
        """One forward + one backward (≈ 3 forwards with the letter directions batched) for every
        map, then per spec one cached clean forward and K resumed forwards (at most K full ones)."""
        inputs: Any = ctx.inputs  # VideoInputs
        one = clean_cost(ctx.model, inputs.layout)
        n = 3 + len(self.specs) * (1 + self.top_k)
        return Cost(n, n * one.flops)


def factory(config, model, dataset) -> HeadsProtocol:
    """`register_protocol("heads", factory)`: options from `config.options["heads"]`."""
    opts = dict(config.options.get("heads", {}))
    check_options(opts)
    return HeadsProtocol(
        model.cfg.n_layers, model.cfg.n_heads, specs=opts.get("specs"), top_k=opts.get("top_k", DEFAULT_TOP_K)
    )


__all__ = ["HeadsError", "HeadsProtocol", "check_options", "factory", "resolve_specs"]
