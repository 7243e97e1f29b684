"""A tiny random InternVL checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from vlens.families.base import chatml_template
from vlens.testing.common import save_checkpoint, text_config, token_id, vision_config
from vlens.testing.tokenizer import word_tokenizer_with

INTERNVL_CHAT_TEMPLATE = chatml_template("<video>\n", image="<image>\n", system="You are a helpful assistant.")


def make_tiny_internvl(
    path: str | Path,
    *,
    seed: int = 0,
    n_layers: int = 2,
    d_model: int = 64,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    d_mlp: int = 128,
    image_size: int = 32,
    patch_size: int = 4,
    vision_layers: int = 2,
    vision_d: int = 32,
    tie_word_embeddings: bool = False,
    tokenizer=None,
    chat_template: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """A tiny random InternVL checkpoint (InternViT tower with CLS, 2×2 pixel shuffle, MLP
    projector, Qwen2 LM with q/k/v biases, real `InternVLProcessor`) in `path`.

    Every frame is resized to image_size² and is one image: its P×P patches (P = image_size //
    patch_size, CLS dropped) are pixel-shuffled to (P/2)² tokens, written by the processor as
    "FrameN: <img>" + (P/2)² × <IMG_CONTEXT> + "</img>", frames joined by newlines. The defaults give
    4·4 = 16 video tokens a frame. `tokenizer` (with `<img>`, `</img>`, `<IMG_CONTEXT>`, `<video>`)
    and `chat_template` replace the word-level tokenizer and the ChatML template.
    """
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
        InternVLVisionConfig,
    )

    path = Path(path)
    # The names InternVLProcessor reads from its tokenizer (tokenizer.start_image_token, ...).
    tokenizer = (
        tokenizer
        if tokenizer is not None
        else word_tokenizer_with(
            {
                "start_image_token": "<img>",
                "end_image_token": "</img>",
                "context_image_token": "<IMG_CONTEXT>",
                "video_token": "<video>",
            }
        )
    )
    text = text_config(
        "qwen2",
        tokenizer,
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        d_mlp=d_mlp,
        tie=tie_word_embeddings,
    )
    vision = vision_config(InternVLVisionConfig, vision_d, vision_layers, image_size, patch_size)
    tokens_per_frame = (image_size // patch_size // 2) ** 2  # downsample_ratio 0.5
    config = InternVLConfig(
        text_config=text.to_dict(),
        vision_config=vision.to_dict(),
        image_token_id=token_id(tokenizer, "<IMG_CONTEXT>"),
        image_seq_length=tokens_per_frame,
        downsample_ratio=0.5,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",  # drop InternViT's CLS token
        tie_word_embeddings=tie_word_embeddings,
    )
    config.architectures = ["InternVLForConditionalGeneration"]
    torch.manual_seed(seed)
    model = InternVLForConditionalGeneration(config)
    size = {"height": image_size, "width": image_size}
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(size=size, crop_to_patches=False),
        video_processor=InternVLVideoProcessor(size=size),
        tokenizer=tokenizer,
        image_seq_length=tokens_per_frame,
        chat_template=chat_template or INTERNVL_CHAT_TEMPLATE,
    )
    return save_checkpoint(model, processor, tokenizer, path, dtype)
