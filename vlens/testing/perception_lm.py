"""A tiny random PerceptionLM checkpoint (HF `PerceptionLMForConditionalGeneration`, timm tower)."""

from __future__ import annotations

from pathlib import Path

import torch

from vlens.testing.common import save_checkpoint, text_config, token_id
from vlens.testing.tokenizer import word_tokenizer_with

# The released checkpoints' chat template (transformers' convert_perception_lm_weights_to_hf.py):
# Llama-3 headers, the BOS first, a default system message, images then videos then the text of
# each turn (every text item trimmed).
PERCEPTION_LM_CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "    {%- set system_message = messages[0]['content']|trim %}\n"
    "    {%- set messages = messages[1:] %}\n"
    "{%- else %}"
    "    {%- set system_message = 'You are a helpful language and vision assistant. You are able to understand the "
    "visual content that the user provides, and assist the user with a variety of tasks using natural language.' %}"
    "{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{- system_message }}"
    "{{- '<|eot_id|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{%- for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<|image|>' }}"
    "{%- endfor %}"
    "{%- for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<|video|>' }}"
    "{%- endfor %}"
    "{%- for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{- content['text'] | trim }}"
    "{%- endfor %}"
    "{{'<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}"
)
# The default system message's words and the template's roles.
PERCEPTION_LM_WORDS = (
    "language",
    "vision",
    "able",
    "understand",
    "visual",
    "content",
    "provides",
    "assist",
    "variety",
    "tasks",
    "using",
    "natural",
)
# The real tokenizer's special tokens (Llama 3 + PerceptionLM's media placeholders).
SPECIAL = {"image_token": "<|image|>", "video_token": "<|video|>"}
HEADERS = ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")


def make_tiny_perception_lm(
    path: str | Path,
    *,
    seed: int = 0,
    n_layers: int = 4,
    d_model: int = 64,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    d_mlp: int = 128,
    tile_size: int = 32,
    patch_size: int = 4,
    pooling_ratio: int = 2,
    vision_layers: int = 2,
    vision_d: int = 32,
    max_num_tiles: int = 4,
    rope_parameters: dict | None = None,
    tokenizer=None,
    chat_template: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """A tiny random PerceptionLM checkpoint in `path`, built offline (needs `timm`).

    Vision: timm's Perception Encoder (`vit_pe_core_large_patch14_336` with tiny `model_args`:
    `vision_d` wide, `vision_layers` deep, `patch_size` pixels, CLS token, 2-D RoPE; created with
    pretrained=False, nothing downloaded) → CLS dropped → 2-layer MLP projector → `pooling_ratio`
    average pooling of the patch grid. LM: Llama. The real `PerceptionLMProcessor`: video frames
    resized to tile_size² (one tile each), images as a thumbnail plus up to `max_num_tiles` tiles.
    The defaults give (32/4/2)² = 16 tokens a frame (and a tile). `rope_parameters` replaces the
    LM's default RoPE (e.g. the released checkpoints' "llama3" scaling). `tokenizer` (with `<|image|>`,
    `<|video|>` and Llama 3's headers) and `chat_template` replace the word-level ones.

    Raises:
        ImportError: timm is not installed (`pip install timm`).
    """
    from vlens.families.perception_lm import require_timm

    require_timm("building a tiny PerceptionLM checkpoint")
    from transformers import (
        PerceptionLMConfig,
        PerceptionLMForConditionalGeneration,
        PerceptionLMImageProcessor,
        PerceptionLMProcessor,
        PerceptionLMVideoProcessor,
        TimmWrapperConfig,
    )

    path = Path(path)
    if tokenizer is None:
        tokenizer = word_tokenizer_with(SPECIAL, extra_words=PERCEPTION_LM_WORDS, new_special=HEADERS)
        tokenizer.bos_token = "<|begin_of_text|>"  # the template writes it; the tokenizer adds nothing
    text = text_config(
        "llama", tokenizer, n_layers=n_layers, d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads, d_mlp=d_mlp
    )
    if rope_parameters is not None:
        text.rope_parameters = dict(rope_parameters)
    grid = tile_size // patch_size
    vision = TimmWrapperConfig(
        architecture="vit_pe_core_large_patch14_336",  # PerceptionLM-1B/3B's tower, shrunk by model_args
        model_args=dict(
            embed_dim=vision_d,
            depth=vision_layers,
            num_heads=2,
            img_size=(tile_size, tile_size),
            patch_size=patch_size,
            global_pool="",
            use_post_transformer_norm=False,
            init_values=0.1,
            ref_feat_shape=(grid, grid),
        ),
    )
    config = PerceptionLMConfig(
        text_config=text.to_dict(),
        vision_config=vision.to_dict(),
        vision_use_cls_token=True,
        projector_pooling_ratio=pooling_ratio,
        image_token_id=token_id(tokenizer, "<|image|>"),
        video_token_id=token_id(tokenizer, "<|video|>"),
        tie_word_embeddings=False,
    )
    config.architectures = ["PerceptionLMForConditionalGeneration"]
    torch.manual_seed(seed)
    model = PerceptionLMForConditionalGeneration(config)
    size = {"height": tile_size, "width": tile_size}
    processor = PerceptionLMProcessor(
        video_processor=PerceptionLMVideoProcessor(size=size),
        image_processor=PerceptionLMImageProcessor(
            tile_size=tile_size, max_num_tiles=max_num_tiles, vision_input_type="thumb+tile", size=size
        ),
        tokenizer=tokenizer,
        patch_size=patch_size,
        pooling_ratio=pooling_ratio,
        chat_template=chat_template or PERCEPTION_LM_CHAT_TEMPLATE,
    )
    return save_checkpoint(model, processor, tokenizer, path, dtype)
