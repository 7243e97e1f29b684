"""A Hugging Face hub cache written on disk, so tests load checkpoints by hub id with the hub
offline. The layout is huggingface_hub's own (docs: "Understand caching"):

    <cache>/models--<org>--<name>/
        blobs/<sha256>                 the files' contents
        refs/<branch>                  the commit a branch points at
        snapshots/<commit>/<file>      symlinks into blobs/ (copies where symlinks are refused)

`huggingface_hub.snapshot_download` / `hf_hub_download` with `local_files_only=True` (or
`HF_HUB_OFFLINE=1`) resolve a repo id and revision through exactly these files.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path


def repo_folder(cache_dir: str | Path, repo_id: str) -> Path:
    """`<cache>/models--org--name`, huggingface_hub's folder name for a model repo."""
    return Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))


def write_hub_cache(
    checkpoint: str | Path,
    cache_dir: str | Path,
    repo_id: str,
    *,
    branch: str | None = "main",
    commit: str | None = None,
) -> str:
    """Put the files of a local checkpoint directory into a hub cache as `repo_id` at one commit.

    Args:
        checkpoint: a directory `save_pretrained` (e.g. a `vlens.testing` builder) wrote.
        cache_dir: the hub cache (what `HF_HUB_CACHE` / `cache_dir=` point at).
        repo_id: "org/name".
        branch: the ref that points at this commit (None: reachable by commit hash only).
        commit: the 40-hex commit name (default: a hash of the files, so it is deterministic).

    Returns:
        The commit hash (pass it as `revision=` to load this snapshot by commit).
    """
    src = Path(checkpoint)
    files = sorted(p for p in src.rglob("*") if p.is_file())
    if not files:
        raise ValueError(f"checkpoint={str(src)!r} holds no files; pass a directory save_pretrained wrote")
    if commit is None:
        h = hashlib.sha1()
        for p in files:
            h.update(str(p.relative_to(src)).encode())
            h.update(hashlib.sha256(p.read_bytes()).digest())
        commit = h.hexdigest()
    if len(commit) != 40 or any(c not in "0123456789abcdef" for c in commit):
        raise ValueError(f"commit must be 40 lowercase hex digits (a git commit), got {commit!r}")
    repo = repo_folder(cache_dir, repo_id)
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot = repo / "snapshots" / commit
    for p in files:
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        blob = repo / "blobs" / digest
        if not blob.exists():
            shutil.copyfile(p, blob)
        target = snapshot / p.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() or target.is_symlink():
            target.unlink()
        try:  # the hub's layout: a relative link into blobs/
            target.symlink_to(os.path.relpath(blob, target.parent))
        except OSError:  # no symlinks (some Windows setups): huggingface_hub copies too
            shutil.copyfile(blob, target)
    if branch is not None:
        ref = repo / "refs" / branch
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)
    return commit
