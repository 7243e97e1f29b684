"""Loading a checkpoint into `HookedVideoLLM`: the family resolved from its config, the HF model
and processor built by HF, and the decoder's parameters pointed at the HF tensors (shared, not
copied), strictly: every key used or listed as dropped, every shape checked.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from typing_extensions import Self

from vlens.components.embed import Embed
from vlens.config import HookedVideoLLMConfig
from vlens.families import Family, check_weight_coverage, family_for, resolve
from vlens.families.base import hf_parameter
from vlens.model.hub import HubCheckpoint, checkpoint_source


class Loading:
    """`from_pretrained` / `from_hf` and the strict weight sharing (a mixin of HookedVideoLLM)."""

    # set by HookedVideoLLM.__init__ (declared here for the type checker)
    cfg: HookedVideoLLMConfig
    family: Family
    processor: Any
    hf_model: nn.Module
    embed: Embed
    rotary: nn.Module
    if TYPE_CHECKING:  # HookedVideoLLM's (cfg, family, hf_model, processor) and nn.Module's (this is its mixin)

        def __init__(self, *args: Any, **kwargs: Any) -> None: ...

        named_parameters: Callable[..., Iterator[tuple[str, nn.Parameter]]]
        get_submodule: Callable[[str], nn.Module]

    def _share_weights(self, hf_model: nn.Module) -> None:
        """Point our parameters at the HF tensors named in the family's weight table, strictly:
        every decoder parameter is covered, shapes must match, and every HF language-model
        tensor is either used or listed in the family's `dropped_keys`."""
        table = self.family.weight_table(self.cfg)
        ours = {n for n, _ in self.named_parameters(remove_duplicate=False)}
        decoder = {n for n in ours if not n.startswith(("vision.", "vision_params."))}
        missing = decoder - set(table)
        if missing:
            raise KeyError(f"the {self.family.name} weight table does not cover {sorted(missing)[:5]}")
        for our_name, hf_name in table.items():
            module_path, _, leaf = our_name.rpartition(".")
            module = self.get_submodule(module_path)
            if getattr(module, leaf, None) is None:  # e.g. no bias in this config
                continue
            param = hf_parameter(hf_model, hf_name)
            expected = tuple(getattr(module, leaf).shape)
            if tuple(param.shape) != expected:
                raise ValueError(
                    f"{self.family.name}: HF tensor {hf_name} has shape {tuple(param.shape)} but vlens' "
                    f"{our_name} expects {expected}; the checkpoint's config does not describe its weights"
                )
            setattr(module, leaf, param)
        check_weight_coverage(self.family, self.cfg, hf_model)  # every HF LM key used or dropped
        self.rotary.to(self.embed.W_E.device)
        self.cfg = dataclasses.replace(self.cfg, device=self.embed.W_E.device, dtype=self.embed.W_E.dtype)

    @classmethod
    def from_hf(cls, hf_model: nn.Module, processor: Any = None) -> Self:
        """Wrap an already-built HF model (weights shared, not copied) and its processor."""
        arch = type(hf_model).__name__
        name = getattr(hf_model.config, "_name_or_path", "") or arch
        return cls._assemble(family_for(arch), hf_model, processor, name)

    @classmethod
    def _assemble(cls, family: Family, hf_model: nn.Module, processor: Any, name: str) -> Self:
        cfg = dataclasses.replace(family.config(hf_model.config), model_name=name)
        if processor is not None and getattr(processor, "tokenizer", None) is not None:
            processor.tokenizer.padding_side = "left"  # batches are left-padded (docs/getting-started.md)
        return cls(cfg, family, hf_model.eval(), processor)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
        dtype: torch.dtype | str = torch.float32,
        device: str | torch.device = "cpu",
        attn_implementation: str = "sdpa",
        device_map: str | dict | None = None,
        max_memory: dict | None = None,
    ) -> Self:
        """Load a checkpoint, a hub id or a local HF checkpoint directory, with its own processor.

        A hub id ("llava-hf/llava-onevision-qwen2-7b-ov-hf") is resolved by huggingface_hub into
        its cache (vlens/model/hub.py): config.json first, so an unsupported architecture is
        refused before any weight is downloaded, then the snapshot's config, safetensors,
        tokenizer and processor files. `HF_HUB_OFFLINE=1` (or `local_files_only=True`) reads the
        cache only. An existing local path wins over a hub id of the same spelling.

        Args:
            path: a hub id ("org/name") or the folder `save_pretrained` (or an authors' release) wrote.
            revision: a hub id's branch, tag or commit (default: its main branch).
            cache_dir: the hub cache to use (default: `HF_HUB_CACHE`, ~/.cache/huggingface/hub).
            local_files_only: never reach the hub; a hub id must already be in the cache.
            dtype: torch dtype or its name ("bfloat16").
            device: where the whole model goes (ignored with `device_map`).
            attn_implementation: the HF model's own attention (used by its vision path).
            device_map: a model larger than one device: "auto"/"balanced"/… or a dict, planned by
                accelerate (`max_memory` caps each device, e.g. {0: "70GiB", "cpu": "200GiB"}).
                HF reads the safetensors tensor by tensor onto their devices; each decoder block
                then runs on its weights' device (the residual stream moves between blocks).

        Raises:
            CheckpointNotFoundError: (a FileNotFoundError) neither an existing directory nor a hub
                id, or a hub id not in the cache while offline (the message says how to download it).
            ValueError: not a checkpoint directory, device and device_map both given, or
                revision= with a local directory.
            UnsupportedModelError: an architecture vlens has no family for (the message lists the
                supported ones).
        """
        if device_map is not None and str(device) != "cpu":
            raise ValueError(
                f"pass device= or device_map=, not both (got device={device!r}, device_map={device_map!r})"
            )
        if max_memory is not None and device_map is None:
            raise ValueError("max_memory plans a device_map; pass device_map='auto' with it")
        source = checkpoint_source(path, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
        if isinstance(source, HubCheckpoint):
            config_file = source.config_file()
            config_dict = json.loads(config_file.read_text())
            entry = resolve(config_dict, where=f"{source.repo_id}/config.json")  # before any weight moves
            path, name = source.snapshot(), source.repo_id
        else:
            path, name = source, str(source)
            config_file = path / "config.json"
            if not path.is_dir() or not config_file.exists():
                raise ValueError(
                    f"{path} is not a HF checkpoint directory (no config.json); pass the folder that "
                    "save_pretrained wrote (config.json, *.safetensors, processor files)"
                )
            config_dict = json.loads(config_file.read_text())
            entry = resolve(config_dict, where=str(config_file))  # clear error before loading any weights
        if isinstance(dtype, str):
            found = getattr(torch, dtype, None)
            if not isinstance(found, torch.dtype):
                raise TypeError(
                    f"dtype={dtype!r} is not a torch dtype; pass one of 'float32', 'bfloat16', 'float16' "
                    "(or torch.float32, ...)"
                )
            dtype = found
        hf_model, processor, family = entry.load(
            path,
            config_dict,
            dtype=dtype,
            device=device,
            attn_implementation=attn_implementation,
            device_map=device_map,
            max_memory=max_memory,
        )
        return cls._assemble(family, hf_model, processor, name)
