"""A tiny random LLaVA-OneVision checkpoint."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from vlens.families.base import chatml_template
from vlens.testing.common import save_checkpoint, text_config, token_id, vision_config
from vlens.testing.tokenizer import build_word_tokenizer

# ChatML as LLaVA-OneVision/Qwen2 checkpoints use it, with HF content lists ({"type": "video"}).
CHAT_TEMPLATE = chatml_template("<video>\n", image="<image>\n")


def make_tiny_onevision(
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
    extra_words: Iterable[str] = (),
    vocab_size: int | None = None,
    image_grid_pinpoints: list[list[int]] | None = None,
    tokenizer=None,
    chat_template: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """A tiny random LLaVA-OneVision checkpoint (SigLIP tower, Qwen2 LM, real processor) in `path`.

    Each frame gives ⌈P/2⌉² video tokens (P = image_size // patch_size) and the video ends with one
    `image_newline` separator: 4 frames of the defaults are 4·4 + 1 = 17 vision positions.
    `vocab_size` larger than the tokenizer pads the embedding/unembedding (benchmarks use it to
    give the unembed a realistic cost). `image_grid_pinpoints` are the anyres grids of images (model
    and processor alike; default one image_size² grid). `tokenizer` and `chat_template` replace the word-level
    tokenizer and the ChatML template (`vlens.testing.realistic` passes the real ones).
    """
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
        SiglipVisionConfig,
    )

    path = Path(path)
    pinpoints = image_grid_pinpoints or [[image_size, image_size]]
    tokenizer = tokenizer if tokenizer is not None else build_word_tokenizer(extra_words)
    text = text_config(
        "qwen2",
        tokenizer,
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        d_mlp=d_mlp,
        vocab_size=vocab_size,
    )
    vision = vision_config(SiglipVisionConfig, vision_d, vision_layers, image_size, patch_size)
    config = LlavaOnevisionConfig(
        text_config=text.to_dict(),
        vision_config=vision.to_dict(),
        image_token_index=token_id(tokenizer, "<image>"),  # the fields behind image/video_token_id
        video_token_index=token_id(tokenizer, "<video>"),
        vision_feature_select_strategy="full",  # SigLIP has no CLS token
        vision_feature_layer=-1,
        tie_word_embeddings=False,
        image_grid_pinpoints=pinpoints,
    )
    config.architectures = ["LlavaOnevisionForConditionalGeneration"]
    torch.manual_seed(seed)
    model = LlavaOnevisionForConditionalGeneration(config)
    size = {"height": image_size, "width": image_size}
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size=size, image_grid_pinpoints=pinpoints),
        video_processor=LlavaOnevisionVideoProcessor(size=size),
        tokenizer=tokenizer,
        num_image_tokens=(image_size // patch_size) ** 2,
        vision_feature_select_strategy="full",
        chat_template=chat_template or CHAT_TEMPLATE,
    )
    return save_checkpoint(model, processor, tokenizer, path, dtype)
