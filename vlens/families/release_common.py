"""What the release converters (checkpoints in their authors' own formats) share: reading the
release's config.json and safetensors as they are on disk, and building an in-memory HF model of
an existing transformers class from a renamed state dict. No remote code is ever run."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor

from vlens.families.hf_progress import hf_progress_bars_off


class ReleaseFormatError(ValueError):
    """A checkpoint in an author's own format that vlens cannot convert exactly."""


def read_config(path: Path) -> dict:
    return json.loads((Path(path) / "config.json").read_text())


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """Every tensor of the release's *.safetensors files (single file or shards), by its key on
    disk. safetensors memory-maps the files, so nothing is copied until a tensor is used."""
    from safetensors.torch import load_file

    files = sorted(Path(path).glob("*.safetensors"))
    if not files:
        raise ReleaseFormatError(
            f"{path} has no *.safetensors files; vlens reads released weights from safetensors only "
            "(convert .bin shards with `safetensors`' convert script first)"
        )
    state: dict[str, Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    return state


def take(state: dict[str, Tensor], key: str, where: str) -> Tensor:
    try:
        return state[key]
    except KeyError:
        raise ReleaseFormatError(f"{where}: the checkpoint has no tensor {key!r}; is it a complete release?") from None


def build_hf_model(hf_cls, config, state: dict[str, Tensor], *, dtype: torch.dtype, device, attn_implementation: str):
    """`hf_cls` built from `config` with exactly the tensors of `state` (HF names). transformers'
    own loader does the meta-device init and the dtype cast; missing or unexpected keys are an
    error here (a silent random init would change results)."""
    with torch.device("meta"):
        expected = set(hf_cls(config).state_dict())
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        raise ReleaseFormatError(
            f"converting to {hf_cls.__name__}: missing {sorted(missing)[:6]} (of {len(missing)}), "
            f"unexpected {sorted(unexpected)[:6]} (of {len(unexpected)}); the key mapping does not fit this checkpoint"
        )
    config._attn_implementation = attn_implementation
    with hf_progress_bars_off():
        model = hf_cls.from_pretrained(
            None, config=config, state_dict=state, dtype=dtype, attn_implementation=attn_implementation
        )
    return model.to(device).eval()


def load_tokenizer(path: Path):
    """The release's tokenizer without remote code and without consulting config.json (whose
    `auto_map` would make transformers ask to run the release's code): a tokenizer_config that
    names remote code is read from its tokenizer.json (fast) form."""
    from transformers import AutoTokenizer, PretrainedConfig, PreTrainedTokenizerFast

    path = Path(path)
    tc_file = path / "tokenizer_config.json"
    tc = json.loads(tc_file.read_text()) if tc_file.exists() else {}
    if "auto_map" in tc:
        if not (path / "tokenizer.json").exists():
            raise ReleaseFormatError(
                f"{path}'s tokenizer is remote code ({tc['auto_map']}) and there is no tokenizer.json; vlens never runs "
                "remote code: save a fast tokenizer.json for it (e.g. with the tokenizers library) next to the weights"
            )
        return PreTrainedTokenizerFast.from_pretrained(path, local_files_only=True)
    return AutoTokenizer.from_pretrained(
        path, config=PretrainedConfig(), local_files_only=True, trust_remote_code=False
    )
