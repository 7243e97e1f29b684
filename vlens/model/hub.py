"""Where a checkpoint's files are: a local directory as given, or a Hugging Face hub id resolved
by `huggingface_hub` into its cache (the `models--org--name/snapshots/<commit>` layout), with
`revision=`, `cache_dir=`, `local_files_only=` and `HF_HUB_OFFLINE` honoured the way transformers
honours them. vlens resolves nothing itself: `hf_hub_download` fetches config.json first (the
family is checked before a byte of weights moves), `snapshot_download` then the files a load reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# What a load reads: config, safetensors (+ index), tokenizer and processor files, chat templates.
# Not *.bin / *.pt / *.gguf / *.onnx duplicates that many repos also hold (vlens loads safetensors).
CHECKPOINT_FILES = ("*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "*.tiktoken")


class CheckpointNotFoundError(FileNotFoundError):
    """A hub id that is not in the local cache while the hub may not be reached (offline), or a
    path that is neither a directory nor a hub id. The message says how to get it."""


@dataclass(frozen=True)
class HubCheckpoint:
    """A hub id and where to look for it (passed on to `huggingface_hub` unchanged).

    Attributes:
        repo_id: "org/name" on the hub.
        revision: branch, tag or commit (None: the repo's default branch, "main").
        cache_dir: the hub cache (None: `HF_HUB_CACHE`, ~/.cache/huggingface/hub by default).
        local_files_only: never reach the hub (also on when `HF_HUB_OFFLINE=1`).
    """

    repo_id: str
    revision: str | None = None
    cache_dir: str | Path | None = None
    local_files_only: bool = False

    @property
    def offline(self) -> bool:
        from huggingface_hub import constants

        return self.local_files_only or constants.is_offline_mode()

    def config_file(self) -> Path:
        """config.json of the checkpoint (downloaded alone when online: the family is known first)."""
        from huggingface_hub import hf_hub_download

        return Path(self._fetch(lambda **kw: hf_hub_download(filename="config.json", **kw)))

    def snapshot(self, *, weights: bool = True) -> Path:
        """The snapshot directory holding everything a load reads (`CHECKPOINT_FILES`); without
        `weights`, everything but the safetensors (what `vlens check` reads)."""
        from huggingface_hub import snapshot_download

        patterns = [p for p in CHECKPOINT_FILES if weights or p != "*.safetensors"]
        return Path(self._fetch(lambda **kw: snapshot_download(allow_patterns=patterns, **kw)))

    def _fetch(self, call):
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            return call(
                repo_id=self.repo_id,
                revision=self.revision,
                cache_dir=self.cache_dir,
                local_files_only=self.offline,
            )
        except LocalEntryNotFoundError as e:
            raise CheckpointNotFoundError(self._missing_message()) from e

    def _missing_message(self) -> str:
        from huggingface_hub import constants

        rev = f" at revision {self.revision!r}" if self.revision else ""
        flag = f" --revision {self.revision}" if self.revision else ""
        cache = self.cache_dir if self.cache_dir is not None else constants.HF_HUB_CACHE
        why = (
            "the hub may not be reached (HF_HUB_OFFLINE=1 or local_files_only=True)"
            if self.offline
            else "the hub could not be reached"
        )
        return (
            f"hub checkpoint {self.repo_id!r}{rev} is not in the local cache {cache} and {why}. "
            f"Download it once with `hf download {self.repo_id}{flag}` (older huggingface_hub: "
            f"`huggingface-cli download {self.repo_id}{flag}`), or pass cache_dir= where it is, "
            "or a local checkpoint directory"
        )


def looks_like_hub_id(name: str) -> bool:
    """Whether `name` is a valid hub repo id ("org/name" or "name"), by huggingface_hub's own rule."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if name.startswith((".", "/", "~")) or "\\" in name:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def checkpoint_source(
    name_or_path: str | Path,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> Path | HubCheckpoint:
    """A local directory (returned as a Path) or a hub id (a `HubCheckpoint`, nothing fetched yet).

    An existing path always wins over a hub id of the same spelling (transformers' rule too).

    Raises:
        CheckpointNotFoundError: neither an existing path nor a valid hub id.
        ValueError: revision= given with a local directory (it means nothing there).
    """
    path = Path(name_or_path).expanduser()
    if path.exists():
        if revision is not None:
            raise ValueError(
                f"revision={revision!r} selects a version of a hub id, but {str(name_or_path)!r} is a local "
                "directory; drop revision= (or pass the hub id)"
            )
        return path
    if isinstance(name_or_path, str) and looks_like_hub_id(name_or_path):
        return HubCheckpoint(name_or_path, revision, cache_dir, local_files_only)
    raise CheckpointNotFoundError(
        f"checkpoint {str(name_or_path)!r} does not exist as a directory and is not a hub id ('org/name'); "
        "pass a local HF checkpoint directory or a hub id such as 'llava-hf/llava-onevision-qwen2-0.5b-ov-hf'"
    )


def checkpoint_dir(
    name_or_path: str | Path,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> Path:
    """The local directory holding a checkpoint's files: `name_or_path` itself, or the hub
    snapshot of that id (downloaded when online and missing). See `checkpoint_source`."""
    source = checkpoint_source(name_or_path, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
    return source if isinstance(source, Path) else source.snapshot()
