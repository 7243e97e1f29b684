"""Greedy decoding with a KV cache; hooks and knockouts apply at every generated step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor, nn

from vlens.components.kv_cache import KVCache
from vlens.components.per_call import RowPlan
from vlens.config import HookedVideoLLMConfig
from vlens.families import Family
from vlens.inputs.video_inputs import VideoInputs


class Generation:
    """`generate` (a mixin of HookedVideoLLM)."""

    # set by HookedVideoLLM.__init__ (declared here for the type checker)
    cfg: HookedVideoLLMConfig
    family: Family
    processor: Any
    hf_model: nn.Module

    @torch.no_grad()
    def generate(
        self,
        inputs: VideoInputs,
        max_new_tokens: int = 20,
        *,
        fwd_hooks: Sequence = (),
        eos_token_id: int | None = None,
        plan: RowPlan | None = None,
    ) -> Int[Tensor, "batch new"]:
        """Greedy decoding with a KV cache; `fwd_hooks` (knockouts included) apply at every step,
        `plan` (vlens.interventions.efficient) to the prompt's prefill. Returns the new tokens; rows that
        finished are padded with the pad token."""
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
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
                tok = logits[:, -1].argmax(-1)
                tok = torch.where(done, torch.full_like(tok, pad), tok)
                out.append(tok)
                if eos is not None:
                    done = done | (tok == eos)
                if bool(done.all()) or len(out) == max_new_tokens:
                    break
                mask = torch.cat([mask, torch.ones(B, 1, dtype=mask.dtype, device=mask.device)], dim=1)
                step = {"input_ids": tok[:, None], "attention_mask": mask, "position_ids": next_pos[:, None]}
                logits = self.forward(step, kv_cache=kv, q_start=pos)
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
