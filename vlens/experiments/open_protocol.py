"""`vlens run open`: open-ended answers generated under knockouts, beside multiple choice.

For every sample: the model generates an answer clean (record `open/clean`) and under every
knockout configuration of the chosen knockout protocols (record `open/<configuration>`, e.g.
`open/global2/lv`), the knockout applied at every generated step (the prefill and each new
token), and the text is scored against the sample's reference answers
(`vlens.metrics.score_open`). Each record keeps the generated text and token ids, the references,
the match, `correct`, and `baseline: "open/clean"`, so the analysis reports its accuracy and its
ratio to the open-ended clean accuracy (the multiple-choice `clean` record is written beside it).

Prompts (`prompt`):

| prompt     | the user turn                                 | references |
|------------|-----------------------------------------------|------------|
| `question` | the question alone (a free-form answer)       | the answer option's text ("red") |
| `mc`       | the multiple-choice prompt (`mc_question`)    | the letter, the option's text, "B. red" |

A data set's answer key is an option index, so its free-form answer is that option's text: for the
synthetic clips ("What color is the object?" → "red") that is the answer itself. Sampling uses one
seed per sample (from `seed` and the sample id) for every configuration, so clean and knocked
generations share their random numbers, and a resumed run draws what the first one drew.

Options (`RunConfig.options["open"]`, CLI `--open key=value,…`):

| key              | default | meaning |
|------------------|---------|---------|
| `prompt`         | `question` | `question` or `mc` (above) |
| `match`          | `exact` | `exact`, `contains`, `starts` (vlens.metrics) or, from Python, `fn(prediction, references) -> bool` |
| `max_new_tokens` | 16      | at most this many tokens per answer (stops at the end-of-turn token) |
| `temperature`    | 0       | 0: greedy; > 0 samples (with `top_k`, `top_p`, HF's order: `HookedVideoLLM.generate`) |
| `top_k`, `top_p` | 0, 1.0  | sampling only |
| `seed`           | 0       | sampling: the run's seed |
| `protocols`      | the run's knockout protocols, else `global2` | which knockout protocols' configurations to generate under (CLI: `global1+windows`) |
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vlens.data import Sample
from vlens.experiments.protocols import Cost, Protocol, clean_cost
from vlens.experiments.runner import SampleContext
from vlens.experiments.study import PROTOCOLS, configs_for
from vlens.inputs.prompts import LETTERS
from vlens.metrics import AnswerMatch, match_name, score_open, seed_from

PROMPTS = ("question", "mc")
OPTION_KEYS = ("prompt", "match", "max_new_tokens", "temperature", "top_k", "top_p", "seed", "protocols")
DEFAULTS = {"prompt": "question", "match": "exact", "max_new_tokens": 16, "temperature": 0.0, "top_k": 0, "top_p": 1.0}
NORMALISATION = "nfkc-casefold-alnum-v1"  # vlens.metrics.normalise_answer; in the run key


def _model(ctx: SampleContext) -> Any:  # the context types the HookedVideoLLM as `object`
    return ctx.model


class OpenEndedError(ValueError):
    """A bad option of the open protocol (`--open key=value,…`); the message names the fix."""


def references(sample: Sample, prompt: str) -> list[str] | None:
    """The accepted answers of `sample` under `prompt` (None: the sample has no answer key)."""
    if sample.answer is None:
        return None
    text = sample.options[sample.answer]
    if prompt == "question":
        return [text]
    letter = LETTERS[sample.answer]
    return [letter, text, f"{letter}. {text}"]


def _protocols(value) -> list[str]:
    items = value.split("+") if isinstance(value, str) else list(value)
    items = [p.strip() for p in items if isinstance(p, str) and p.strip()]
    bad = [p for p in items if p not in PROTOCOLS]
    if bad or not items:
        raise OpenEndedError(
            f"open protocols {value!r}: choose one or more of {', '.join(PROTOCOLS)} (CLI: joined by '+', e.g. global1+windows)"
        )
    return items


def _decoding(opts: Mapping):
    from vlens.arguments import ArgumentError
    from vlens.model.generation import Decoding

    t = opts.get("temperature", DEFAULTS["temperature"])
    try:
        return Decoding(
            do_sample=isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0,
            temperature=t,
            top_k=opts.get("top_k", DEFAULTS["top_k"]),
            top_p=opts.get("top_p", DEFAULTS["top_p"]),
        )
    except ArgumentError as e:
        raise OpenEndedError(f"--open: {e} (temperature > 0 samples; temperature=0 is greedy)") from None


def check_options(opts: Mapping) -> None:
    """Checks `RunConfig.options["open"]` before anything loads.

    Raises:
        OpenEndedError: an unknown key or a bad value, named."""
    if not isinstance(opts, Mapping):
        raise OpenEndedError(f"options['open'] must be a dict, got {opts!r}")
    unknown = set(opts) - set(OPTION_KEYS)
    if unknown:
        raise OpenEndedError(f"unknown open option(s) {sorted(unknown)}; use {', '.join(OPTION_KEYS)}")
    if opts.get("prompt", DEFAULTS["prompt"]) not in PROMPTS:
        raise OpenEndedError(f"open prompt must be one of {', '.join(PROMPTS)}, got {opts['prompt']!r}")
    try:
        match_name(opts.get("match", DEFAULTS["match"]))
    except ValueError as e:
        raise OpenEndedError(f"--open match: {e}") from None
    n = opts.get("max_new_tokens", DEFAULTS["max_new_tokens"])
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise OpenEndedError(f"open max_new_tokens must be an integer ≥ 1, got {n!r}")
    seed = opts.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise OpenEndedError(f"open seed must be an integer ≥ 0, got {seed!r}")
    _decoding(opts)
    if "protocols" in opts:
        _protocols(opts["protocols"])


class OpenProtocol(Protocol):
    """Open-ended generation clean and under knockouts for one sample (see the module docstring)."""

    method = "open"

    def __init__(
        self,
        n_layers: int,
        *,
        protocols: Sequence[str] = ("global2",),
        window: int = 4,
        prompt: str = "question",
        match: str | AnswerMatch = "exact",
        max_new_tokens: int = 16,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = 0,
    ):
        opts = dict(
            prompt=prompt,
            match=match,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            protocols=list(protocols),
        )
        check_options(opts)
        self.n_layers, self.prompt, self.match, self.max_new_tokens, self.seed = (
            n_layers,
            prompt,
            match,
            max_new_tokens,
            seed,
        )
        self.decoding = _decoding(opts)
        self.protocols = _protocols(protocols)
        self.configs = [c for p in self.protocols for c in configs_for(p, n_layers, window=window)]
        self.layers = {c.name: list(c.layers.resolve(n_layers)) for c in self.configs}

    def names(self) -> list[str]:
        """`open/clean`, then `open/<configuration>` for every knockout configuration."""
        return ["open/clean"] + [f"open/{c.name}" for c in self.configs]

    def settings(self) -> dict:
        """Prompt, match, decoding, knockout protocols, normalisation: what changes the records."""
        d = self.decoding
        return {
            "open": {
                "prompt": self.prompt,
                "match": match_name(self.match),
                "normalisation": NORMALISATION,
                "max_new_tokens": self.max_new_tokens,
                "decoding": "greedy"
                if d.greedy
                else {"temperature": d.temperature, "top_k": d.top_k, "top_p": d.top_p, "seed": self.seed},
                "protocols": self.protocols,
            }
        }

    def inputs(self, ctx: SampleContext):
        """The sample's inputs under this prompt (`mc`: the multiple-choice inputs as they are)."""
        if self.prompt == "mc":
            return ctx.inputs
        s, model = ctx.sample, _model(ctx)
        return model.to_inputs(
            s.video,
            s.question,
            n_frames=ctx.n_frames,
            start=s.start,
            end=s.end,
            fps=s.fps,
            allow_repeat=ctx.allow_repeat,
        )

    def _generate(self, ctx: SampleContext, inputs, hooks) -> tuple[list[int], str]:
        model, d = _model(ctx), self.decoding
        kw = {}
        if not d.greedy:  # one seed per sample, shared by its configurations
            kw = dict(
                do_sample=True,
                temperature=d.temperature,
                top_k=d.top_k,
                top_p=d.top_p,
                seed=seed_from(f"{self.seed}|{ctx.sample.id}") >> 1,
            )
        tokens = model.generate(inputs, self.max_new_tokens, fwd_hooks=hooks, **kw)[0].tolist()
        eos = model._eos_id()
        if eos is not None and eos in tokens:  # the answer ends at the end-of-turn token
            tokens = tokens[: tokens.index(eos) + 1]
        return tokens, model.tokenizer.decode(tokens, skip_special_tokens=True)

    def __call__(self, ctx: SampleContext, todo: Sequence[str]) -> list[dict]:
        """One generation per record of `todo` (clean first), each scored against the references."""
        inputs, refs = self.inputs(ctx), references(ctx.sample, self.prompt)
        todo_set, records = set(todo), []
        runs = [("open/clean", None)] + [(f"open/{c.name}", c) for c in self.configs]
        for name, c in runs:
            if name not in todo_set:
                continue
            hooks = [] if c is None else c.spec.hooks(inputs, layers=c.layers)
            tokens, text = self._generate(ctx, inputs, hooks)
            rec: dict = {"config": name, "baseline": "open/clean", "tokens": tokens, "n_tokens": len(tokens)}
            if c is not None:
                rec.update(spec=repr(c.spec), layers=self.layers[c.name])
            if refs is None:  # no answer key: the text is kept, nothing is scored
                rec.update(text=text, answer=None)
            else:
                rec.update(score_open(text, refs, self.match))
            records.append(rec)
        return records

    def cost(self, ctx: SampleContext) -> Cost:
        """One prefill per generation (clean + each configuration) and up to `max_new_tokens` − 1
        one-token steps each; FLOPs count the prefills only (a step is one row)."""
        runs = 1 + len(self.configs)
        inputs: Any = self.inputs(ctx)
        one = clean_cost(ctx.model, inputs.layout)
        return Cost(runs * self.max_new_tokens, runs * one.flops)


def factory(config, model, dataset) -> OpenProtocol:
    """`register_protocol("open", factory)`: options from `config.options["open"]`; the knockout
    protocols default to those of the run (else `global2`)."""
    opts = dict(config.options.get("open", {}))
    check_options(opts)
    chosen = [p for p in PROTOCOLS if p in config.protocols] or ["global2"]
    return OpenProtocol(
        model.cfg.n_layers,
        protocols=_protocols(opts.get("protocols", chosen)),
        window=config.window,
        prompt=opts.get("prompt", DEFAULTS["prompt"]),
        match=opts.get("match", DEFAULTS["match"]),
        max_new_tokens=opts.get("max_new_tokens", DEFAULTS["max_new_tokens"]),
        temperature=opts.get("temperature", DEFAULTS["temperature"]),
        top_k=opts.get("top_k", DEFAULTS["top_k"]),
        top_p=opts.get("top_p", DEFAULTS["top_p"]),
        seed=opts.get("seed", 0),
    )


__all__ = ["OpenEndedError", "OpenProtocol", "check_options", "factory", "references"]
