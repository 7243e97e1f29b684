"""What the Vicuna-style LLaVA video checkpoints share (LLaVA-NeXT-Video, Video-LLaVA)."""

from __future__ import annotations

from pathlib import Path

import torch

from vlens.testing.common import save_checkpoint, text_config, vision_config
from vlens.testing.tokenizer import VICUNA_WORDS, word_tokenizer_with

# Vicuna-style "USER: ... ASSISTANT:" as LLaVA-NeXT-Video and Video-LLaVA checkpoints use it
# (the video placeholder first, then the text; a system message is plain text before).
VICUNA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{% for content in message['content'] %}{{ content['text'] + ' ' }}{% endfor %}"
    "{% else %}"
    "{{ message['role'].upper() + ': ' }}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' ' }}{% endfor %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


def tiny_llava_llama(
    path: str | Path,
    hf_classes: tuple,
    *,
    config_extra: dict,
    image_processor_extra: dict,
    seed: int,
    n_layers: int,
    d_model: int,
    n_heads: int,
    n_kv_heads: int,
    d_mlp: int,
    image_size: int,
    patch_size: int,
    vision_layers: int,
    vision_d: int,
    dtype: torch.dtype,
    tokenizer=None,
    chat_template: str | None = None,
) -> Path:
    """What the Vicuna-style LLaVA video checkpoints share (LLaVA-NeXT-Video, Video-LLaVA): the
    word tokenizer with USER/ASSISTANT, a Llama LM, a CLIP tower read at layer −2 with the
    "default" (CLS-dropping) strategy, frames resized to the shortest edge and centre-cropped.
    `hf_classes`: (config, model, processor, image processor, video processor) classes;
    `tokenizer` (with `<image>`, `<video>`) and `chat_template` replace the word-level ones."""
    from transformers import CLIPVisionConfig

    config_cls, model_cls, processor_cls, image_processor_cls, video_processor_cls = hf_classes
    path = Path(path)
    tokenizer = tokenizer if tokenizer is not None else word_tokenizer_with(extra_words=VICUNA_WORDS)
    text = text_config(
        "llama", tokenizer, n_layers=n_layers, d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads, d_mlp=d_mlp
    )
    vision = vision_config(CLIPVisionConfig, vision_d, vision_layers, image_size, patch_size, projection_dim=vision_d)
    config = config_cls(
        text_config=text.to_dict(),
        vision_config=vision.to_dict(),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        tie_word_embeddings=False,
        **config_extra,
    )
    config.architectures = [model_cls.__name__]
    torch.manual_seed(seed)
    model = model_cls(config)
    size, crop = {"shortest_edge": image_size}, {"height": image_size, "width": image_size}
    processor = processor_cls(
        image_processor=image_processor_cls(size=size, crop_size=crop, **image_processor_extra),
        video_processor=video_processor_cls(size=size, crop_size=crop),
        tokenizer=tokenizer,
        chat_template=chat_template or VICUNA_CHAT_TEMPLATE,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    return save_checkpoint(model, processor, tokenizer, path, dtype)
