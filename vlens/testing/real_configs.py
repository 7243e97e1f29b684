"""The real configurations of claimed checkpoints, as published facts with their sources (no
download: the numbers are written here). Used by tests/test_check.py and examples/15 to check `vlens check`'s
parameter and byte figures against a parameter count of the meta-device model.

LLaVA-OneVision (HF format, llava-hf/llava-onevision-qwen2-{0.5b,7b}-ov-hf) is built by
transformers' src/transformers/models/llava_onevision/convert_llava_onevision_weights_to_hf.py:
  * text_config = AutoConfig of Qwen/Qwen2-7B-Instruct (7B) or Qwen/Qwen2-0.5B-Instruct (0.5B);
  * vision_config = SiglipVisionConfig(hidden_size=1152, image_size=384, intermediate_size=4304,
    num_attention_heads=16, num_hidden_layers=26 ("drop the last layer" of SigLIP-so400m's 27),
    patch_size=14, vision_use_head=False);
  * then `resize_token_embeddings(vocab_size + 2, pad_to_multiple_of=64)` for <image>/<video>.
Qwen2 configs (the models' config.json on the hub, e.g. as printed for Qwen/Qwen2-7B-Instruct):
  * Qwen2-7B: hidden 3584, 28 layers, 28 query / 4 key-value heads, MLP 18944, vocab 152064,
    rope_theta 1e6, untied embeddings;
  * Qwen2-0.5B: hidden 896, 24 layers, 14 / 2 heads, MLP 4864, vocab 151936, rope_theta 1e6,
    tied embeddings.
LLaVA-OneVision's video tokens: 196 per frame at 384² (27×27 SigLIP patches, 2×2 bilinear
pooling to 14×14; the LLaVA-OneVision paper, arXiv:2408.03326, and HF's model docs).
Qwen2.5-VL-7B-Instruct: see QWEN2_5_VL_7B_* below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PretrainedConfig

SIGLIP_SO400M_26 = {
    "hidden_size": 1152,
    "image_size": 384,
    "intermediate_size": 4304,
    "num_attention_heads": 16,
    "num_hidden_layers": 26,
    "patch_size": 14,
    "vision_use_head": False,
}

QWEN2_7B = {
    "hidden_size": 3584,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "intermediate_size": 18944,
    "vocab_size": 152064,
    "rope_theta": 1000000.0,
    "tie_word_embeddings": False,
    "max_position_embeddings": 32768,
}

QWEN2_0_5B = {
    "hidden_size": 896,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "intermediate_size": 4864,
    "vocab_size": 151936,
    "rope_theta": 1000000.0,
    "tie_word_embeddings": True,
    "max_position_embeddings": 32768,
}

OV_TOKENS_PER_FRAME = 196


def resized_vocab(vocab: int) -> int:
    """The conversion script's resize: two tokens added, padded to a multiple of 64."""
    return -(-(vocab + 2) // 64) * 64


def llava_onevision(text: dict):
    """The LlavaOnevisionConfig the conversion script writes for this Qwen2 text config."""
    from transformers import LlavaOnevisionConfig

    text = dict(text, model_type="qwen2", vocab_size=resized_vocab(text["vocab_size"]))
    config = LlavaOnevisionConfig(
        text_config=text,
        vision_config=dict(SIGLIP_SO400M_26, model_type="siglip_vision_model"),
        tie_word_embeddings=text["tie_word_embeddings"],
    )
    config.architectures = ["LlavaOnevisionForConditionalGeneration"]
    return config


# checkpoint name -> (its HF config, built on call; its text config's published numbers)
REAL: dict[str, tuple[Callable[[], PretrainedConfig], dict]] = {
    "llava-onevision-qwen2-7b-ov-hf": (lambda: llava_onevision(QWEN2_7B), QWEN2_7B),
    "llava-onevision-qwen2-0.5b-ov-hf": (lambda: llava_onevision(QWEN2_0_5B), QWEN2_0_5B),
}


# Qwen2.5-VL-7B-Instruct (Qwen/Qwen2.5-VL-7B-Instruct): the module tree transformers prints for it
# (published in e.g. github acproject/duorou docs/qwen2.5vl_graph.md) and its config.json: a
# 32-block ViT 1280 wide (16 heads, SwiGLU MLP 3420, Conv3d patch 2×14×14, window 112 with full
# attention at blocks 7, 15, 23, 31), a 2×2 merger 5120 → 3584; the LM is Qwen2.5-7B's shape:
# hidden 3584, 28 layers, 28 / 4 heads, MLP 18944, vocab 152064, untied; mrope_section [16, 24, 24].
QWEN2_5_VL_7B_TEXT = {
    "hidden_size": 3584,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "intermediate_size": 18944,
    "vocab_size": 152064,
    "rope_theta": 1000000.0,
    "tie_word_embeddings": False,
    "max_position_embeddings": 128000,
}
QWEN2_5_VL_7B_VISION = {
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "in_chans": 3,
    "out_hidden_size": 3584,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31],
    "hidden_act": "silu",
}
# a temporal group of 2 frames at 448×448: (448/28)² = 256 merged tokens, 128 per frame
QWEN2_5_VL_TOKENS_PER_FRAME_448 = 128


def qwen2_5_vl_7b():
    from transformers import Qwen2_5_VLConfig

    text = dict(
        QWEN2_5_VL_7B_TEXT,
        model_type="qwen2_5_vl_text",
        rope_parameters={"rope_type": "default", "mrope_section": [16, 24, 24], "rope_theta": 1000000.0},
    )
    config = Qwen2_5_VLConfig(text_config=text, vision_config=QWEN2_5_VL_7B_VISION, tie_word_embeddings=False)
    config.architectures = ["Qwen2_5_VLForConditionalGeneration"]
    return config


REAL["qwen2.5-vl-7b-instruct"] = (qwen2_5_vl_7b, QWEN2_5_VL_7B_TEXT)
TOKENS_PER_FRAME = {
    "llava-onevision-qwen2-7b-ov-hf": OV_TOKENS_PER_FRAME,
    "llava-onevision-qwen2-0.5b-ov-hf": OV_TOKENS_PER_FRAME,
    "qwen2.5-vl-7b-instruct": QWEN2_5_VL_TOKENS_PER_FRAME_448,
}
