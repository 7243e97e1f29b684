"""Decoding with a KV cache, greedy or sampled; hooks and knockouts apply at every generated step.

Sampling follows HF's `generate(do_sample=True)` step by step, so the same settings and seed give
the same tokens (tests/test_generation.py): the last position's logits in fp32, then temperature
(÷ T), top-k (keep the k largest; ties with the k-th are kept), top-p (drop the tokens whose
cumulative probability, summed from the least likely, stays ≤ 1 − p; the most likely is always
kept), in that order, as HF's TemperatureLogitsWarper, TopKLogitsWarper and TopPLogitsWarper;
then one `torch.multinomial` draw per row (finished rows too, so the random stream does not depend
on which rows finished). `seed=` an int seeds a fresh `torch.Generator` on the model's device
(the same stream as `torch.manual_seed(seed)` before HF's generate); a Generator is used as given
(and advanced); None draws from torch's global generator, as HF does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from vlens.arguments import ArgumentError
from vlens.components.kv_cache import KVCache
from vlens.components.per_call import RowPlan
from vlens.config import HookedVideoLLMConfig
from vlens.families import Family
from vlens.inputs.video_inputs import VideoInputs


@dataclass(frozen=True)
class Decoding:
    """How `generate` picks each next token, checked on construction.

    Args:
        do_sample: draw from the (warped) distribution; False is greedy (argmax).
        temperature: divides the logits; 0 is greedy, whatever `do_sample` says. Must be ≥ 0.
        top_k: keep the k most likely tokens; 0 keeps all. Must be ≥ 0.
        top_p: keep the smallest set of most likely tokens whose probability reaches p; 1 keeps all.
            Must lie in (0, 1].

    Raises:
        ArgumentError: a value outside those ranges, or a sampling setting (temperature ≠ 1,
            top_k > 0, top_p < 1) with `do_sample=False`, which would silently be ignored."""

    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.do_sample, bool):
            raise ArgumentError(f"do_sample must be True or False, got {self.do_sample!r}")
        t, p, k = self.temperature, self.top_p, self.top_k
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
            raise ArgumentError(f"temperature must be a finite number ≥ 0 (0 = greedy), got {t!r}")
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
            raise ArgumentError(f"top_p must lie in (0, 1] (1 keeps every token), got {p!r}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ArgumentError(f"top_k must be an integer ≥ 0 (0 keeps every token), got {k!r}")
        if not self.do_sample and (t not in (0, 1) or k > 0 or p < 1):
            raise ArgumentError(
                f"temperature={t!r}, top_k={k!r}, top_p={p!r} only change sampling, and do_sample=False is greedy: "
                "pass do_sample=True to sample, or leave them at their defaults (1.0, 0, 1.0)"
            )

    @property
    def greedy(self) -> bool:
        """Whether the next token is the argmax (no sampling, or temperature 0)."""
        return not self.do_sample or self.temperature == 0

    def warp(self, logits: Float[Tensor, "batch d_vocab"]) -> Float[Tensor, "batch d_vocab"]:
        """fp32 logits with temperature, top-k and top-p applied as HF's warpers (−inf = dropped)."""
        scores = logits.float()
        if self.temperature != 1.0:
            scores = scores / self.temperature
        if self.top_k > 0:
            k = min(self.top_k, scores.shape[-1])
            scores = scores.masked_fill(scores < torch.topk(scores, k)[0][..., -1, None], -math.inf)
        if self.top_p < 1.0:
            sorted_scores, order = torch.sort(scores, descending=False)
            drop = sorted_scores.softmax(-1).cumsum(-1) <= 1 - self.top_p
            drop[..., -1:] = False  # the most likely token stays
            scores = scores.masked_fill(drop.scatter(1, order, drop), -math.inf)
        return scores

    def next_token(
        self, logits: Float[Tensor, "batch d_vocab"], generator: torch.Generator | None
    ) -> Int[Tensor, " batch"]:
        """The next token of every row: the argmax, or one multinomial draw from the warped softmax."""
        if self.greedy:
            return logits.argmax(-1)
        probs = self.warp(logits).softmax(-1)
        return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)


def _generator(seed: int | torch.Generator | None, device: torch.device | str) -> torch.Generator | None:
    if seed is None or isinstance(seed, torch.Generator):
        if isinstance(seed, torch.Generator) and seed.device.type != torch.device(device).type:
            raise ArgumentError(
                f"seed is a torch.Generator on {seed.device}, but the model runs on {device}: "
                f"pass torch.Generator(device={str(device)!r}).manual_seed(…) or an int seed"
            )
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ArgumentError(f"seed must be an int ≥ 0, a torch.Generator or None, got {seed!r}")
    return torch.Generator(device=device).manual_seed(seed)


class Generation:
    """`generate` (a mixin of HookedVideoLLM)."""

    # set by HookedVideoLLM.__init__ (declared here for the type checker)
    cfg: HookedVideoLLMConfig
    family: Family
    processor: Any
    hf_model: nn.Module
    if TYPE_CHECKING:  # the host's own (InputBuilder, HookedRootModule, HookedVideoLLM.forward)
        tokenizer: Any
        _as_inputs: Callable[..., dict]
        position_ids: Callable[..., Tensor]
        hooks: Callable[..., AbstractContextManager[Any]]
        forward: Callable[..., Any]

    @torch.no_grad()
    def generate(
        self,
        inputs: VideoInputs | dict,
        max_new_tokens: int = 20,
        *,
        fwd_hooks: Sequence = (),
        eos_token_id: int | None = None,
        plan: RowPlan | None = None,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | torch.Generator | None = None,
    ) -> Int[Tensor, "batch new"]:
        """Decode up to `max_new_tokens` tokens with a KV cache, greedy (the default) or sampled.

        Args:
            inputs: the prompt (VideoInputs, or a dict of the same HF kwargs).
            max_new_tokens: at most this many new tokens (≥ 1).
            fwd_hooks: hooks (knockouts included) applied at every step: the prefill and each new token.
            eos_token_id: stop a row at this token (default: the checkpoint's generation config).
            plan: a RowPlan (vlens.interventions.efficient) for the prompt's prefill.
            do_sample: sample; False is greedy (`Decoding`; the module docstring gives HF's order).
            temperature: divides the logits (0: greedy).
            top_k: keep the k most likely tokens (0: all).
            top_p: keep the most likely tokens up to probability p (1: all).
            seed: an int (a fresh torch.Generator, reproducible), a torch.Generator (used and
                advanced) or None (torch's global generator, as HF). Sampling only.

        Returns:
            The new tokens [batch, new]; rows that finished are padded with the pad token.

        Raises:
            ArgumentError: a sampling setting out of range (see `Decoding`), a bad seed, or a
                Generator on another device; ValueError: max_new_tokens < 1."""
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        decoding = Decoding(do_sample, temperature, top_k, top_p)
        generator = _generator(seed, self.cfg.device) if not decoding.greedy else None
        inputs = self._as_inputs(inputs)
        eos = eos_token_id if eos_token_id is not None else self._eos_id()
        pad = self.tokenizer.pad_token_id if self.processor is not None else 0
        kv = KVCache(self.cfg.n_layers)
        mask = inputs.get("attention_mask")
        B, N = inputs["input_ids"].shape
        mask = torch.ones(B, N, dtype=torch.long, device=self.cfg.device) if mask is None else mask
        out = []
        done = torch.zeros(B, dtype=torch.bool, device=self.cfg.device)
        # a new token's rotary position: one past the largest prompt position of its row (= its
        # index for 1-D RoPE; for M-RoPE all three axes continue from the prompt's largest one)
        prompt_pos = self.position_ids(inputs)
        next_pos = prompt_pos.reshape(-1, B, N).amax(dim=(0, 2)) + 1
        with self.hooks(list(fwd_hooks)):
            logits = self.forward(inputs, kv_cache=kv, plan=plan)
            pos = N
            for _ in range(max_new_tokens):
                tok = decoding.next_token(logits[:, -1], generator)
                tok = torch.where(done, torch.full_like(tok, pad), tok)
                out.append(tok)
                if eos is not None:
                    done = done | (tok == eos)
                if bool(done.all()) or len(out) == max_new_tokens:
                    break
                mask = torch.cat([mask, torch.ones(B, 1, dtype=mask.dtype, device=mask.device)], dim=1)
                step = {"input_ids": tok[:, None], "attention_mask": mask, "position_ids": next_pos[:, None]}
                logits = self.forward(step, kv_cache=kv, q_start=pos, generated=True)
                next_pos = next_pos + 1
                pos += 1
        return torch.stack(out, dim=1)

    def _eos_id(self) -> int | None:
        gen = getattr(self.hf_model, "generation_config", None)
        eos = getattr(gen, "eos_token_id", None)
        if isinstance(eos, list):
            eos = eos[0] if eos else None
        if eos is None and self.processor is not None:
            eos = self.tokenizer.eos_token_id
        return eos
