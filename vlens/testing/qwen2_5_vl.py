"""A tiny random Qwen2.5-VL checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from vlens.families.base import chatml_template
from vlens.testing.common import lm_kwargs, save_checkpoint
from vlens.testing.tokenizer import word_tokenizer_with

# ChatML with Qwen2-VL's vision wrapping; the default system prompt as Qwen2.5-VL's template has it.
QWEN_VL_CHAT_TEMPLATE = chatml_template(
    "<|vision_start|><|video_pad|><|vision_end|>",
    image="<|vision_start|><|image_pad|><|vision_end|>",
    system="You are a helpful assistant.",
)


def qwen_vl_tokenizer(extra_words=()):
    """The word-level tokenizer with Qwen-VL's vision tokens (`<|image_pad|>`, `<|video_pad|>`,
    `<|vision_start|>`, `<|vision_end|>`) exposed as the processor reads them."""
    return word_tokenizer_with(
        {
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_start_token": "<|vision_start|>",
            "vision_end_token": "<|vision_end|>",
        },
        extra_words=extra_words,
    )


def make_tiny_qwen2_5_vl(
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
    window_size: int = 16,
    tokens_per_second: int = 2,
    min_pixels: int = 16 * 16,
    max_pixels: int = 64 * 64,
    video_pixels: tuple[int, int] | None = None,
    tokenizer=None,
    chat_template: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """A tiny random Qwen2.5-VL checkpoint (windowed ViT with 2×2 patch merging, Qwen2 LM with
    M-RoPE, real processor) in `path`.

    Frames are resized to multiples of patch_size·2 (min/max_pixels bound the area); two frames
    make one temporal patch (a trailing odd frame is repeated), so a clip of T frames of H×W gives
    ⌈T/2⌉ groups of (H/2p)·(W/2p) tokens between `<|vision_start|>` and `<|vision_end|>`:
    32×32 frames give 4·4 = 16 tokens a group. The vision tower uses window attention in every
    block but the last (`fullatt_block_indexes`). `video_pixels` = (min, max) pixels of a video frame
    where they differ from an image's (the released processors give videos a smaller budget);
    `tokenizer` (with Qwen-VL's vision tokens) and `chat_template` replace the word-level ones.
    """
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
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
        hidden_size=vision_d,
        intermediate_size=2 * vision_d,
        num_heads=2,
        patch_size=patch_size,
        spatial_merge_size=2,
        temporal_patch_size=2,
        tokens_per_second=tokens_per_second,
        window_size=window_size,
        out_hidden_size=d_model,
        fullatt_block_indexes=[vision_layers - 1],
    )
    return save_qwen_vl(
        (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor),
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


def save_qwen_vl(
    hf_classes: tuple,
    text: dict,
    vision: dict,
    tokenizer,
    path: Path,
    *,
    seed: int,
    patch_size: int,
    min_pixels: int,
    max_pixels: int,
    dtype: torch.dtype,
    video_processor: tuple | None = None,
    video_pixels: tuple[int, int] | None = None,
    chat_template: str | None = None,
) -> Path:
    """What the Qwen-VL builders share: the config with the vision token ids, the seeded random
    model, the image/video processors (2 frames a temporal patch, 2×2 merging), saving.
    `hf_classes`: (config, model, processor) classes of the family; `video_processor`: (class,
    extra kwargs) where it is not Qwen2-VL's; `video_pixels`: a video frame's (min, max) pixels
    (an image's by default); `chat_template`: the ChatML one by default."""
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    config_cls, model_cls, processor_cls = hf_classes
    video_cls, video_extra = video_processor or (Qwen2VLVideoProcessor, {})
    ids = tokenizer.convert_tokens_to_ids
    config = config_cls(
        text_config=text,
        vision_config=vision,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=False,
    )
    config.architectures = [model_cls.__name__]
    torch.manual_seed(seed)
    model = model_cls(config)
    size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    common = dict(size=size, patch_size=patch_size, temporal_patch_size=2, merge_size=2)
    video_size = size if video_pixels is None else {"shortest_edge": video_pixels[0], "longest_edge": video_pixels[1]}
    video_common = dict(common, size=video_size)
    processor = processor_cls(
        image_processor=Qwen2VLImageProcessor(**common),
        video_processor=video_cls(**video_common, **video_extra),
        tokenizer=tokenizer,
        chat_template=chat_template or QWEN_VL_CHAT_TEMPLATE,
    )
    return save_checkpoint(model, processor, tokenizer, path, dtype)


# ChatML as InternVL-HF checkpoints use it: the video placeholder on its own line, the processor
# expands it into "Frame1: <img>…</img>\nFrame2: …"; a default system prompt as InternVL3's
# template has one (in English here: the word-level tokenizer has no Chinese).
