"""A tiny random GLM-4.1V checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from vlens.testing.common import lm_kwargs, save_checkpoint, token_id
from vlens.testing.tokenizer import word_tokenizer_with

# GLM-4.1V's own template, shortened: "[gMASK]<sop>", role tags, the video item as
# <|begin_of_video|><|video|><|end_of_video|> (the processor expands <|video|> into, per temporal
# group, "<|begin_of_image|><|image|>×k<|end_of_image|>{seconds}").
GLM4V_CHAT_TEMPLATE = (
    "[gMASK]<sop>"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'video' %}{{ '<|begin_of_video|><|video|><|end_of_video|>' }}"
    "{% elif content['type'] == 'image' %}{{ '<|begin_of_image|><|image|><|end_of_image|>' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
GLM4V_SPECIAL = (
    "[gMASK]",
    "<sop>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|begin_of_image|>",
    "<|end_of_image|>",
    "<|begin_of_video|>",
    "<|end_of_video|>",
)


def glm4v_tokenizer():
    """The word-level tokenizer with GLM-4.1V's special tokens; `<|image|>` / `<|video|>` exposed
    as the processor reads them (`tokenizer.image_token`, `tokenizer.video_token`)."""
    return word_tokenizer_with({"image_token": "<|image|>", "video_token": "<|video|>"}, new_special=GLM4V_SPECIAL)


def make_tiny_glm4v(
    path: str | Path,
    *,
    seed: int = 0,
    n_layers: int = 4,
    d_model: int = 64,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    d_mlp: int = 128,
    partial_rotary_factor: float = 0.5,
    mrope_section: tuple[int, int, int] = (2, 1, 1),
    patch_size: int = 4,
    vision_layers: int = 2,
    vision_d: int = 32,
    min_pixels: int = 16 * 16,
    max_pixels: int = 64 * 64 * 64,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """A tiny random GLM-4.1V checkpoint in `path`: the ViT (2-D rotary, learned position
    embeddings, 2×2 conv downsampling, SwiGLU merger), the GLM-4 LM (q/k/v biases, sandwich norms,
    a fused gate_up_proj, partial M-RoPE over the first `partial_rotary_factor`·d_head dims with
    adjacent-pair rotation) and the real `Glm4vProcessor` / `Glm4vVideoProcessor`.

    Two frames make one temporal group (an odd last frame is repeated; the video processor refuses
    a single frame); frames are resized to multiples of patch_size·2, so 32×32 frames give 4·4 =
    16 tokens a group. `max_pixels` bounds frames × height × width of the whole clip.
    """
    from transformers import (
        Glm4vConfig,
        Glm4vForConditionalGeneration,
        Glm4vImageProcessor,
        Glm4vProcessor,
        Glm4vVideoProcessor,
    )

    path = Path(path)
    tokenizer = glm4v_tokenizer()
    text = dict(
        lm_kwargs(tokenizer, n_layers=n_layers, d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads, d_mlp=d_mlp),
        rms_norm_eps=1e-5,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": list(mrope_section),
            "partial_rotary_factor": partial_rotary_factor,
        },
    )
    vision = dict(
        depth=vision_layers,
        hidden_size=vision_d,
        intermediate_size=2 * vision_d,
        num_heads=2,
        image_size=8 * patch_size,
        patch_size=patch_size,
        spatial_merge_size=2,
        temporal_patch_size=2,
        out_hidden_size=d_model,
    )

    def ids(token: str) -> int:
        return token_id(tokenizer, token)

    config = Glm4vConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids("<|image|>"),
        video_token_id=ids("<|video|>"),
        image_start_token_id=ids("<|begin_of_image|>"),
        image_end_token_id=ids("<|end_of_image|>"),
        video_start_token_id=ids("<|begin_of_video|>"),
        video_end_token_id=ids("<|end_of_video|>"),
        tie_word_embeddings=False,
    )
    config.architectures = ["Glm4vForConditionalGeneration"]
    torch.manual_seed(seed)
    model = Glm4vForConditionalGeneration(config)
    common = dict(
        size={"shortest_edge": min_pixels, "longest_edge": max_pixels},
        patch_size=patch_size,
        temporal_patch_size=2,
        merge_size=2,
    )
    processor = Glm4vProcessor(
        image_processor=Glm4vImageProcessor(**common),
        video_processor=Glm4vVideoProcessor(**common),
        tokenizer=tokenizer,
        chat_template=GLM4V_CHAT_TEMPLATE,
    )
    return save_checkpoint(model, processor, tokenizer, path, dtype)
