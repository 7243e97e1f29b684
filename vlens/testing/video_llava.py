"""A tiny random Video-LLaVA checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from vlens.testing.llava_llama import tiny_llava_llama


def make_tiny_video_llava(
    path: str | Path,
    *,
    seed: int = 0,
    n_layers: int = 2,
    d_model: int = 64,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    d_mlp: int = 128,
    image_size: int = 16,
    patch_size: int = 8,
    vision_layers: int = 2,
    vision_d: int = 32,
    tokenizer=None,
    chat_template: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """A tiny random Video-LLaVA checkpoint (CLIP-architecture video tower as HF converts
    LanguageBind's, Llama LM, real processor) in `path`.

    Every frame gives 1 + P² tokens (its CLS token first, then the P×P patches, P = image_size //
    patch_size): the defaults give 1 + 2·2 = 5 video tokens a frame.
    """
    from transformers import (
        VideoLlavaConfig,
        VideoLlavaForConditionalGeneration,
        VideoLlavaImageProcessor,
        VideoLlavaProcessor,
        VideoLlavaVideoProcessor,
    )

    patches = (image_size // patch_size) ** 2
    return tiny_llava_llama(
        path,
        (
            VideoLlavaConfig,
            VideoLlavaForConditionalGeneration,
            VideoLlavaProcessor,
            VideoLlavaImageProcessor,
            VideoLlavaVideoProcessor,
        ),
        config_extra=dict(image_seq_length=patches, video_seq_length=8 * (patches + 1)),
        image_processor_extra={},
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
