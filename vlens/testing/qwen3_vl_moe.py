"""A tiny random Qwen3-VL-MoE checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from vlens.testing.qwen3_vl import build_qwen3_vl


def make_tiny_qwen3_vl_moe(
    path: str | Path,
    *,
    seed: int = 0,
    n_layers: int = 3,
    n_experts: int = 4,
    top_k: int = 2,
    d_expert: int = 32,
    mlp_only_layers: tuple[int, ...] = (1,),
    dtype: torch.dtype = torch.float32,
    **sizes,
) -> Path:
    """`make_tiny_qwen3_vl`'s checkpoint with sparse MoE MLPs (`n_experts` SwiGLU experts of width
    `d_expert`, `top_k` per position) in every LM block except `mlp_only_layers` (dense MLPs).
    `sizes` overrides the shared shape (d_model, n_heads, n_kv_heads, d_head, d_mlp, mrope_section,
    patch_size, vision_layers, vision_d, deepstack_visual_indexes, min/max_pixels)."""
    from transformers import Qwen3VLMoeConfig, Qwen3VLMoeForConditionalGeneration

    moe = dict(
        num_experts=n_experts,
        num_experts_per_tok=top_k,
        moe_intermediate_size=d_expert,
        decoder_sparse_step=1,
        mlp_only_layers=list(mlp_only_layers),
    )
    shape = dict(
        d_model=64,
        n_heads=4,
        n_kv_heads=2,
        d_head=16,
        d_mlp=128,
        mrope_section=(2, 3, 3),
        patch_size=4,
        vision_layers=3,
        vision_d=32,
        deepstack_visual_indexes=(0, 1),
        min_pixels=16 * 16,
        max_pixels=64 * 64,
    )
    unknown = set(sizes) - set(shape)
    if unknown:
        raise TypeError(f"make_tiny_qwen3_vl_moe got unknown sizes {sorted(unknown)}; it takes {sorted(shape)}")
    return build_qwen3_vl(
        path,
        Qwen3VLMoeConfig,
        Qwen3VLMoeForConditionalGeneration,
        moe,
        seed=seed,
        n_layers=n_layers,
        dtype=dtype,
        **{**shape, **sizes},
    )
