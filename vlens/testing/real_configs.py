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
"""

from __future__ import annotations

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


REAL = {
    "llava-onevision-qwen2-7b-ov-hf": (lambda: llava_onevision(QWEN2_7B), QWEN2_7B),
    "llava-onevision-qwen2-0.5b-ov-hf": (lambda: llava_onevision(QWEN2_0_5B), QWEN2_0_5B),
}
