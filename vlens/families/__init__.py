"""Model families: one file each, a frozen spec (weight-name table, layout rules) plus the adapter
`bind(processor)` returns for one checkpoint.

A family maps a checkpoint's HF architecture onto the shared hooked decoder:

* `config(hf_config)`: the decoder's shape (`HookedVideoLLMConfig`).
* `weight_table(cfg)`: our parameter name → the HF model's parameter name. Loading *shares* the
  HF tensors (no copy), so a 7B checkpoint is held once. `dropped_keys(cfg)`: HF language-model
  keys deliberately unused; every other LM key must be in the table (`check_weight_coverage`).
* `rotary(cfg)`: the rotary module (1-D RoPE, or M-RoPE with the checkpoint's sections) and
  `position_ids(...)`: the positions it takes.
* `vision_modules(hf_model)`: the HF vision tower / projector modules vlens runs as they are.
* `video_features(model, inputs)`: the per-position vision embeddings, in sequence order.
* `layout(...)`: the `VideoLayout` of one row, by arithmetic from the config, checked against the
  placeholder count; a family whose tensors are not one entry per row (VideoLLaMA3's per-token
  `video_compression_mask`) also gives `row_inputs(hf_config, tensors)`, each row's share.

`REGISTRY` (vlens.families.registry) holds these and the authors' release formats, keyed by what
config.json says; `resolve(config)` finds the entry or lists every supported one.
"""

from __future__ import annotations

from vlens.families.base import Family, UnsupportedModelError, check_weight_coverage
from vlens.families.glm4v import Glm4V
from vlens.families.internvl import InternVL
from vlens.families.llava_next_video import LlavaNextVideo
from vlens.families.onevision import OneVision
from vlens.families.perception_lm import PerceptionLM
from vlens.families.qwen2_5_vl import Qwen25VL
from vlens.families.qwen2_vl import Qwen2VL
from vlens.families.qwen3_vl import Qwen3VL
from vlens.families.qwen3_vl_moe import Qwen3VLMoe
from vlens.families.registry import Registration, build_registry
from vlens.families.registry import resolve as _resolve
from vlens.families.smolvlm import SmolVLM
from vlens.families.video_llama3 import VideoLlama3
from vlens.families.video_llava import VideoLlava

# HF-native families (one spec each).
FAMILIES: tuple[Family, ...] = (
    OneVision(),
    LlavaNextVideo(),
    VideoLlava(),
    Qwen25VL(),
    InternVL(),
    Qwen2VL(),
    Qwen3VL(),
    Qwen3VLMoe(),
    SmolVLM(),
    VideoLlama3(),
    Glm4V(),
    PerceptionLM(),
)
REGISTRY: tuple[Registration, ...] = build_registry(FAMILIES)


def resolve(config: dict, where: str = "config.json") -> Registration:
    """The registry entry (HF-native family or release format) a config.json dict belongs to.

    Raises:
        UnsupportedModelError: an unknown or missing architecture; the message lists every entry.
    """
    return _resolve(REGISTRY, config, where)


def release_converter(config: dict):
    """The converter module for a checkpoint in its authors' own release format (LLaVA-style
    `LlavaQwenForCausalLM`: LongVA, LLaVA-NeXT-Video-32B-Qwen; remote-code `InternVLChatModel`
    with InternLM2: InternVideo2.5), or None for an HF-format checkpoint (or an unknown one).
    Each converter has `build(path, dtype=, device=, attn_implementation=) -> (hf_model, processor, family)`."""
    for reg in REGISTRY:
        if reg.is_release and reg.matches(config):
            return reg.converter
    return None


def family_for(architecture: str) -> Family:
    """The HF-native family of an HF model class name (`type(hf_model).__name__`).

    Raises:
        UnsupportedModelError: the class has no family (the message lists every supported one), or
            it is a release format, which only loads from its directory.
    """
    reg = resolve({"architectures": [architecture]}, where=f"the model class {architecture}")
    if reg.family is None:
        raise UnsupportedModelError(
            f"{architecture} is a release format ({reg.name}): load it with HookedVideoLLM.from_pretrained(DIR)"
        )
    return reg.family


__all__ = [
    "FAMILIES",
    "REGISTRY",
    "Family",
    "Registration",
    "UnsupportedModelError",
    "check_weight_coverage",
    "family_for",
    "release_converter",
    "resolve",
]
