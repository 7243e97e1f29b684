"""A tiny random Qwen3-VL checkpoint (dense, or MoE with `moe=True`)."""

from __future__ import annotations

from pathlib import Path

import torch

from vlens.families.base import chatml_template
from vlens.testing.common import lm_kwargs
from vlens.testing.qwen2_5_vl import qwen_vl_tokenizer, save_qwen_vl

# ChatML with Qwen-VL's vision wrapping, as Qwen3-VL's own template writes a video item; the
# processor expands the `<|video_pad|>` into "<t seconds><|vision_start|>…<|vision_end|>" per group.
QWEN3_VL_CHAT_TEMPLATE = chatml_template(
    "<|vision_start|><|video_pad|><|vision_end|>", image="<|vision_start|><|image_pad|><|vision_end|>"
)
TIMESTAMP_WORDS = ("seconds", "<", ">")


def make_tiny_qwen3_vl(
    path: str | Path,
    *,
    seed: int = 0,
    n_layers: int = 3,
    d_model: int = 64,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    d_head: int = 16,
    d_mlp: int = 128,
    mrope_section: tuple[int, int, int] = (2, 3, 3),
    patch_size: int = 4,
    vision_layers: int = 3,
    vision_d: int = 32,
    deepstack_visual_indexes: tuple[int, ...] = (0, 1),
    min_pixels: int = 16 * 16,
    max_pixels: int = 64 * 64,
    video_pixels: tuple[int, int] | None = None,
    tokenizer=None,
    chat_template: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """A tiny random Qwen3-VL checkpoint in `path`: ViT with learned position embeddings and 2×2
    patch merging whose layers `deepstack_visual_indexes` also feed DeepStack mergers (their
    outputs are added to the residual stream after LM layers 0, 1, …), Qwen3 LM (q/k RMSNorm, no
    biases, head_dim `d_head`) with interleaved M-RoPE, the real `Qwen3VLProcessor` (textual
    timestamps before every temporal group). 32×32 frames give 4·4 = 16 tokens a group of 2;
    `video_pixels`, `tokenizer`, `chat_template` as `make_tiny_qwen2_5_vl` takes them."""
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    return build_qwen3_vl(
        path,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        {},
        seed=seed,
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        d_head=d_head,
        d_mlp=d_mlp,
        mrope_section=mrope_section,
        patch_size=patch_size,
        vision_layers=vision_layers,
        vision_d=vision_d,
        deepstack_visual_indexes=deepstack_visual_indexes,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        video_pixels=video_pixels,
        tokenizer=tokenizer,
        chat_template=chat_template,
        dtype=dtype,
    )


def build_qwen3_vl(
    path,
    config_cls,
    model_cls,
    text_extra: dict,
    *,
    seed,
    n_layers,
    d_model,
    n_heads,
    n_kv_heads,
    d_head,
    d_mlp,
    mrope_section,
    patch_size,
    vision_layers,
    vision_d,
    deepstack_visual_indexes,
    min_pixels,
    max_pixels,
    dtype,
    video_pixels=None,
    tokenizer=None,
    chat_template=None,
) -> Path:
    """A tiny Qwen3-VL(-MoE) checkpoint: `config_cls`/`model_cls` with `text_extra` in the text config."""
    from transformers import Qwen3VLProcessor, Qwen3VLVideoProcessor

    path = Path(path)
    tokenizer = tokenizer if tokenizer is not None else qwen_vl_tokenizer(extra_words=TIMESTAMP_WORDS)
    text = dict(
        lm_kwargs(tokenizer, n_layers=n_layers, d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads, d_mlp=d_mlp),
        head_dim=d_head,
        rms_norm_eps=1e-6,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": list(mrope_section),
            "mrope_interleaved": True,
        },
        **text_extra,
    )
    vision = dict(
        depth=vision_layers,
        hidden_size=vision_d,
        intermediate_size=2 * vision_d,
        num_heads=2,
        patch_size=patch_size,
        spatial_merge_size=2,
        temporal_patch_size=2,
        out_hidden_size=d_model,
        num_position_embeddings=64,
        deepstack_visual_indexes=list(deepstack_visual_indexes),
    )
    return save_qwen_vl(
        (config_cls, model_cls, Qwen3VLProcessor),
        text,
        vision,
        tokenizer,
        path,
        seed=seed,
        patch_size=patch_size,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        dtype=dtype,
        video_processor=(Qwen3VLVideoProcessor, {"min_frames": 1, "cap_pixels_per_frame": False}),
        video_pixels=video_pixels,
        chat_template=chat_template or QWEN3_VL_CHAT_TEMPLATE,
    )
