"""A tiny random Qwen2-VL checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from vlens.testing.common import lm_kwargs
from vlens.testing.qwen2_5_vl import qwen_vl_tokenizer, save_qwen_vl


def make_tiny_qwen2_vl(
    path: str | Path,
    *,
    seed: int = 0,
    n_layers: int = 2,
    d_model: int = 64,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    d_mlp: int = 128,
    mrope_section: tuple[int, int, int] = (2, 3, 3),
    patch_size: int = 4,
    vision_layers: int = 2,
    vision_d: int = 32,
    min_pixels: int = 16 * 16,
    max_pixels: int = 64 * 64,
    video_pixels: tuple[int, int] | None = None,
    tokenizer=None,
    chat_template: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """A tiny random Qwen2-VL checkpoint (full-attention ViT with 2×2 patch merging, Qwen2 LM with
    M-RoPE over group indices, real `Qwen2VLProcessor`) in `path`. Geometry as
    `make_tiny_qwen2_5_vl`: 32×32 frames give 4·4 = 16 tokens per group of 2 frames; `video_pixels`,
    `tokenizer`, `chat_template` as there."""
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLProcessor,
    )

    path = Path(path)
    tokenizer = tokenizer if tokenizer is not None else qwen_vl_tokenizer()
    text = dict(
        lm_kwargs(tokenizer, n_layers=n_layers, d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads, d_mlp=d_mlp),
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": list(mrope_section)},
    )
    vision = dict(
        depth=vision_layers,
        embed_dim=vision_d,
        mlp_ratio=2,
        num_heads=2,
        hidden_size=d_model,
        patch_size=patch_size,
        spatial_merge_size=2,
        temporal_patch_size=2,
    )
    return save_qwen_vl(
        (Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor),
        text,
        vision,
        tokenizer,
        path,
        seed=seed,
        patch_size=patch_size,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        video_pixels=video_pixels,
        chat_template=chat_template,
        dtype=dtype,
    )
