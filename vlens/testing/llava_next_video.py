"""A tiny random LLaVA-NeXT-Video checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from vlens.testing.llava_llama import tiny_llava_llama


def make_tiny_llava_next_video(
    path: str | Path,
    *,
    seed: int = 0,
    n_layers: int = 2,
    d_model: int = 64,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    d_mlp: int = 128,
    image_size: int = 32,
    patch_size: int = 8,
    vision_layers: int = 2,
    vision_d: int = 32,
    tokenizer=None,
    chat_template: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """A tiny random LLaVA-NeXT-Video checkpoint (CLIP tower, Llama LM, real processor) in `path`.

    Frames are resized/cropped to image_size; CLIP's CLS is dropped ("default" strategy), the
    P×P patch grid (P = image_size // patch_size) is 2×2 average-pooled: (P/2)² tokens a frame,
    no separators. The defaults give 2·2 = 4 video tokens a frame.
    """
    from transformers import (
        LlavaNextImageProcessor,
        LlavaNextVideoConfig,
        LlavaNextVideoForConditionalGeneration,
        LlavaNextVideoProcessor,
        LlavaNextVideoVideoProcessor,
    )

    pinpoints = [[image_size, image_size]]
    return tiny_llava_llama(
        path,
        (
            LlavaNextVideoConfig,
            LlavaNextVideoForConditionalGeneration,
            LlavaNextVideoProcessor,
            LlavaNextImageProcessor,
            LlavaNextVideoVideoProcessor,
        ),
        config_extra=dict(spatial_pool_mode="average", spatial_pool_stride=2, image_grid_pinpoints=pinpoints),
        image_processor_extra=dict(image_grid_pinpoints=pinpoints),
        seed=seed,
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        d_mlp=d_mlp,
        image_size=image_size,
        patch_size=patch_size,
        vision_layers=vision_layers,
        vision_d=vision_d,
        tokenizer=tokenizer,
        chat_template=chat_template,
        dtype=dtype,
    )
