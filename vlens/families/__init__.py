"""Model families: one file each, a weight-name table plus layout rules.

A family maps a checkpoint's HF architecture onto the shared hooked decoder:

* `config(hf_config)`: the decoder's shape (`HookedVideoLLMConfig`).
* `weight_table(cfg)`: our parameter name → the HF model's parameter name. Loading *shares* the
  HF tensors (no copy), so a 7B checkpoint is held once.
* `vision_modules(hf_model)`: the HF vision tower / projector modules vlens runs as they are.
* `video_features(model, inputs)`: the per-position vision embeddings, in sequence order.
* `layout(...)`: the `VideoLayout` of one row, by arithmetic from the config, checked against the
  placeholder count.
"""

from __future__ import annotations

from vlens.families.base import Family, UnsupportedModelError
from vlens.families.internvl import InternVL
from vlens.families.llava_next_video import LlavaNextVideo
from vlens.families.onevision import OneVision
from vlens.families.qwen2_5_vl import Qwen25VL
from vlens.families.video_llava import VideoLlava

FAMILIES: tuple[Family, ...] = (OneVision(), LlavaNextVideo(), VideoLlava(), Qwen25VL(), InternVL())


def release_converter(config: dict):
    """The converter module for a checkpoint in its authors' own release format (LLaVA-style
    `LlavaQwenForCausalLM`: LongVA, LLaVA-NeXT-Video-32B-Qwen; remote-code `InternVLChatModel`
    with InternLM2: InternVideo2.5), or None for an HF-format checkpoint. Each converter has
    `build(path, dtype=, device=, attn_implementation=) -> (hf_model, processor, family)`."""
    from vlens.families import internvideo2_5, llava_qwen_release

    for conv in (llava_qwen_release, internvideo2_5):
        if conv.matches(config):
            return conv
    return None


def family_for(architecture: str) -> Family:
    for fam in FAMILIES:
        if architecture in fam.architectures:
            return fam
    supported = ", ".join(f"{a} ({f.name})" for f in FAMILIES for a in f.architectures)
    raise UnsupportedModelError(
        f"architecture {architecture!r} is not supported by vlens. Supported: {supported}."
    )


__all__ = ["FAMILIES", "Family", "UnsupportedModelError", "family_for", "release_converter"]
