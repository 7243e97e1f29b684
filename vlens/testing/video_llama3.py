"""A tiny random VideoLLaMA3 checkpoint (HF `VideoLlama3ForConditionalGeneration`)."""

from __future__ import annotations

from pathlib import Path

import torch

from vlens.families.base import chatml_template
from vlens.testing.common import save_checkpoint, text_config, token_id
from vlens.testing.qwen2_5_vl import qwen_vl_tokenizer

# ChatML with the video placeholder on its own line, as VideoLLaMA3's HF template writes a video
# item; the processor expands `<|video_pad|>` into "Time 0.0s:<|video_pad|>×k,Time 0.5s:…" (one
# "Time t s:" per frame, frames joined by ",").
VIDEO_LLAMA3_CHAT_TEMPLATE = chatml_template(
    "<|video_pad|>\n", image="<|image_pad|>\n", system="You are a helpful assistant."
)
TIMESTAMP_WORDS = ("Time", "s")


def make_tiny_video_llama3(
    path: str | Path,
    *,
    seed: int = 0,
    n_layers: int = 4,
    d_model: int = 64,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    d_mlp: int = 128,
    patch_size: int = 4,
    vision_layers: int = 2,
    vision_d: int = 32,
    min_pixels: int = 16 * 16,
    max_pixels: int = 64 * 64 * 16,
    use_token_compression: bool = True,
    tokenizer=None,
    chat_template: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """A tiny random VideoLLaMA3 checkpoint in `path`: SigLIP-style ViT with 2-D axial RoPE (every
    frame attends within itself), 2×2 bilinear downsampling of the patch grid, a 2-layer MLP
    projector, Qwen2 LM (q/k/v biases, 1-D RoPE), and the real `VideoLlama3Processor` /
    `VideoLlama3VideoProcessor` (its differential frame pruning on: tokens whose pixels barely
    change from the previous frame are dropped, unless `use_token_compression=False`).

    Frames are resized to multiples of patch_size·2 with at most `max_pixels` / n_frames pixels
    each (VideoLLaMA3 splits one pixel budget over the clip): 32×32 frames give 4·4 = 16 tokens a
    frame (before pruning). `tokenizer` (with Qwen-VL's `<|image_pad|>`/`<|video_pad|>`) and
    `chat_template` replace the word-level tokenizer and the ChatML template."""
    from transformers import (
        VideoLlama3Config,
        VideoLlama3ForConditionalGeneration,
        VideoLlama3ImageProcessor,
        VideoLlama3Processor,
        VideoLlama3VideoProcessor,
    )

    path = Path(path)
    tokenizer = tokenizer if tokenizer is not None else qwen_vl_tokenizer(extra_words=TIMESTAMP_WORDS)
    text = text_config(
        "qwen2", tokenizer, n_layers=n_layers, d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads, d_mlp=d_mlp
    )
    vision = dict(
        hidden_size=vision_d,
        intermediate_size=2 * vision_d,
        num_hidden_layers=vision_layers,
        num_attention_heads=2,
        patch_size=patch_size,
    )

    def ids(token: str) -> int:
        return token_id(tokenizer, token)

    config = VideoLlama3Config(
        text_config=text.to_dict(),
        vision_config=vision,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
    )
    config.architectures = ["VideoLlama3ForConditionalGeneration"]
    torch.manual_seed(seed)
    model = VideoLlama3ForConditionalGeneration(config)
    size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    processor = VideoLlama3Processor(
        image_processor=VideoLlama3ImageProcessor(size=size, patch_size=patch_size, merge_size=1),
        video_processor=VideoLlama3VideoProcessor(
            size=size, patch_size=patch_size, merge_size=2, use_token_compression=use_token_compression
        ),
        tokenizer=tokenizer,
        chat_template=chat_template or VIDEO_LLAMA3_CHAT_TEMPLATE,
    )
    return save_checkpoint(model, processor, tokenizer, path, dtype)
