"""One registry of everything vlens loads, keyed by what a checkpoint's config.json says.

Two kinds of entry, looked up the same way:

* **HF-native families**: `config.json`'s `architectures[0]` is a transformers class vlens has a
  family for (`Qwen2_5_VLForConditionalGeneration` → the `qwen2.5-vl` spec). Loading is the
  transformers class's `from_pretrained` plus the checkpoint's own `AutoProcessor`.
* **Release formats**: checkpoints in their authors' own format that transformers cannot load
  without remote code (`LlavaQwenForCausalLM`: LongVA, LLaVA-NeXT-Video-32B-Qwen;
  `InternVLChatModel`: InternVideo2.5). Their converter module reads the files and builds an
  in-memory HF model, processor and family (`build(path, ...)`), whose spec depends on the
  release's settings.

Anything else is an `UnsupportedModelError` listing every entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from vlens.families.base import Family, UnsupportedModelError
from vlens.families.hf_progress import hf_progress_bars_off


@dataclass(frozen=True)
class Registration:
    """One loadable kind of checkpoint.

    Attributes:
        name: the family name (HF-native) or the release formats' names.
        architectures: the `architectures[0]` values of config.json it accepts.
        family: the frozen spec of an HF-native family; None for a release format (the converter
            builds the spec from the release's settings).
        converter: the release format's converter module (`matches(config)`, `build(...)`,
            `export_refusal(...)`); None for an HF-native family.
    """

    name: str
    architectures: tuple[str, ...]
    family: Family | None = None
    converter: ModuleType | None = None

    @property
    def is_release(self) -> bool:
        return self.converter is not None

    def matches(self, config: dict) -> bool:
        """Whether a config.json (as a dict) is this entry's checkpoint."""
        if self.converter is not None:
            return bool(self.converter.matches(config))
        return (config.get("architectures") or [None])[0] in self.architectures

    def load(
        self,
        path: Path,
        config: dict,
        *,
        dtype: torch.dtype,
        device: str | torch.device,
        attn_implementation: str,
        device_map: str | dict | None = None,
        max_memory: dict | None = None,
    ) -> tuple[nn.Module, Any, Family]:
        """(hf_model, processor, family) for the checkpoint directory `path` (local files only).
        With `device_map`, accelerate plans the placement (HF-native: HF reads the safetensors
        onto their devices; release formats: dispatched after conversion)."""
        if self.converter is not None:
            hf_model, processor, family = self.converter.build(
                path,
                dtype=dtype,
                device="cpu" if device_map is not None else device,
                attn_implementation=attn_implementation,
                config=config,
            )
            if device_map is not None:
                hf_model = _dispatch(hf_model, device_map, max_memory)
            return hf_model, processor, family
        import transformers
        from transformers import AutoProcessor

        assert self.family is not None  # an entry without a converter is HF-native and holds its spec
        self.family.check_requirements()  # a missing package (timm) named with its pip install
        hf_cls = getattr(transformers, config["architectures"][0])
        placement = {"device_map": device_map, "max_memory": max_memory} if device_map is not None else {}
        with hf_progress_bars_off():
            hf_model = hf_cls.from_pretrained(
                path, dtype=dtype, attn_implementation=attn_implementation, local_files_only=True, **placement
            )
            if device_map is None:
                hf_model = hf_model.to(device)
            processor = AutoProcessor.from_pretrained(path, local_files_only=True)
        return hf_model, processor, self.family


def _dispatch(hf_model: nn.Module, device_map: str | dict, max_memory: dict | None) -> nn.Module:
    """Place an in-memory HF model across devices with accelerate (release formats, which are
    converted in memory rather than loaded by HF's from_pretrained)."""
    from accelerate import dispatch_model, infer_auto_device_map

    if isinstance(device_map, str):
        no_split = getattr(hf_model, "_no_split_modules", None) or []
        device_map = infer_auto_device_map(hf_model, max_memory=max_memory, no_split_module_classes=no_split)
    return dispatch_model(hf_model, device_map=device_map)


def _release(name: str, module: str) -> Registration:
    import importlib

    conv = importlib.import_module(f"vlens.families.{module}")
    return Registration(name, (conv.ARCHITECTURE,), converter=conv)


def build_registry(families: tuple[Family, ...]) -> tuple[Registration, ...]:
    """The HF-native families then the release formats (no architecture is in both)."""
    native = tuple(Registration(f.name, f.architectures, family=f) for f in families)
    releases = (
        _release("longva / llava-next-video-qwen (LLaVA release format)", "llava_qwen_release"),
        _release("internvideo2.5 (InternVL chat release format)", "internvideo2_5"),
    )
    archs = [a for r in native + releases for a in r.architectures]
    assert len(archs) == len(set(archs)), f"an architecture is registered twice: {archs}"
    return native + releases


def supported(registry: tuple[Registration, ...]) -> str:
    """Every registered architecture and what vlens calls it, for error messages."""
    return ", ".join(f"{a} ({r.name})" for r in registry for a in r.architectures)


def resolve(registry: tuple[Registration, ...], config: dict, where: str = "config.json") -> Registration:
    """The registration a config.json (as a dict) belongs to.

    Raises:
        UnsupportedModelError: no `architectures` in the config, or an architecture nothing in the
            registry accepts (the message lists every supported one).
    """
    archs = config.get("architectures") or []
    if not archs:
        raise UnsupportedModelError(
            f"{where} names no 'architectures'; cannot tell the model family. Supported: {supported(registry)}."
        )
    for reg in registry:
        if reg.matches(config):
            return reg
    raise UnsupportedModelError(
        f"architecture {archs[0]!r} is not supported by vlens. Supported: {supported(registry)}."
    )
