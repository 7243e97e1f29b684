"""A tiny random SmolVLM2 checkpoint (video through `SmolVLMForConditionalGeneration`)."""

from __future__ import annotations

from pathlib import Path

import torch

from vlens.testing.common import save_checkpoint, text_config, token_id, vision_config
from vlens.testing.tokenizer import word_tokenizer_with

# SmolVLM2's chat template for videos (transformers' processing_smolvlm.DEFAULT_CHAT_TEMPLATE).
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'] is string %}"
    "{{': ' + message['content']}}{% else %}{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}"
    "{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% elif line['type'] == 'video' %}{{ '<video>' }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
# What the processor writes around the frames (intro, per-frame timestamp) and the template's roles.
SMOLVLM_WORDS = ("User", "Assistant", "provided", "series", "Frame", "H", "MM", "SS", "[", "]", "eleven", "twelve")


def make_tiny_smolvlm(
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
    scale_factor: int = 2,
    vision_layers: int = 2,
    vision_d: int = 32,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """A tiny random SmolVLM2 checkpoint in `path`: SigLIP-style tower, pixel-shuffle connector
    (`scale_factor`² patches into one token), Llama LM, the real `SmolVLMProcessor` (frames resized
    to image_size² without splitting; the processor writes an intro line and "Frame from MM:SS:"
    before every frame's `<fake_token_around_image><global-img><image>×k<fake_token_around_image>`).
    32×32 frames with 4-pixel patches give (8/2)² = 16 tokens a frame."""
    from transformers import (
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessor,
        SmolVLMProcessor,
        SmolVLMVideoProcessor,
    )
    from transformers.models.smolvlm.configuration_smolvlm import SmolVLMVisionConfig

    path = Path(path)
    tokenizer = word_tokenizer_with(
        {
            "fake_image_token": "<fake_token_around_image>",
            "image_token": "<image>",
            "global_image_token": "<global-img>",
            "end_of_utterance_token": "<end_of_utterance>",
        },
        extra_words=SMOLVLM_WORDS,
    )
    text = text_config(
        "llama", tokenizer, n_layers=n_layers, d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads, d_mlp=d_mlp
    )
    vision = vision_config(SmolVLMVisionConfig, vision_d, vision_layers, image_size, patch_size)
    config = SmolVLMConfig(
        text_config=text.to_dict(),
        vision_config=vision.to_dict(),
        image_token_id=token_id(tokenizer, "<image>"),
        scale_factor=scale_factor,
        tie_word_embeddings=False,
    )
    config.architectures = ["SmolVLMForConditionalGeneration"]
    torch.manual_seed(seed)
    model = SmolVLMForConditionalGeneration(config)
    seq_len = (image_size // patch_size) ** 2 // scale_factor**2
    edge = {"longest_edge": image_size}
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(size=edge, max_image_size=edge, do_image_splitting=False),
        video_processor=SmolVLMVideoProcessor(size=edge, max_image_size=edge),
        tokenizer=tokenizer,
        image_seq_len=seq_len,
        chat_template=SMOLVLM_CHAT_TEMPLATE,
    )
    return save_checkpoint(model, processor, tokenizer, path, dtype)
