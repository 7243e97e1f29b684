"""Qwen3-VL-MoE (HF `Qwen3VLMoeForConditionalGeneration`).

Qwen3-VL (vlens/families/qwen3_vl.py: DeepStack, timestamps, interleaved M-RoPE, the same layout)
whose LM blocks have a sparse mixture-of-experts MLP (`vlens.components.moe.SparseMoE`: router logits, the
chosen experts, their weights and per-expert outputs are hook points) except the blocks in
`mlp_only_layers` or off the `decoder_sparse_step` grid, which keep a dense SwiGLU MLP.
"""

from __future__ import annotations

import dataclasses

from vlens.config import HookedVideoLLMConfig, MoEConfig
from vlens.families.qwen3_vl import Qwen3VL


class Qwen3VLMoe(Qwen3VL):
    name = "qwen3-vl-moe"
    architectures = ("Qwen3VLMoeForConditionalGeneration",)
    title = "Qwen3-VL-MoE"

    def config(self, hf_config) -> HookedVideoLLMConfig:
        t = hf_config.text_config
        cfg = super().config(hf_config)
        only = set(t.mlp_only_layers or ())
        layers = tuple(
            l
            for l in range(t.num_hidden_layers)
            if l not in only and t.num_experts > 0 and (l + 1) % t.decoder_sparse_step == 0
        )
        moe = MoEConfig(
            n_experts=t.num_experts, top_k=t.num_experts_per_tok, d_expert=t.moe_intermediate_size, layers=layers
        )
        return dataclasses.replace(cfg, moe=moe)

    def weight_table(self, cfg: HookedVideoLLMConfig) -> dict[str, str]:
        table = super().weight_table(cfg)
        assert cfg.moe is not None  # this family's config() always sets it
        for l in cfg.moe.layers:
            ours, hf = f"blocks.{l}.mlp", f"model.language_model.layers.{l}.mlp"
            for p in ("gate", "up", "down"):
                del table[f"{ours}.{p}_proj.weight"]
            table[f"{ours}.router.weight"] = f"{hf}.gate.weight"
            table[f"{ours}.gate_up_proj"] = f"{hf}.experts.gate_up_proj"
            table[f"{ours}.down_proj"] = f"{hf}.experts.down_proj"
        return table
