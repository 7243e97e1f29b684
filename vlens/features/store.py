"""The activation store: chosen hooks at chosen positions over a dataset, in sharded safetensors.

What an SAE trainer or a probe reads. Every stored row keeps where it came from — the sample, the
position, its segment and text role, and for video positions the (frame, row, column) — so a
feature found on the store can be drawn back over the frames it came from.

Layout of a store directory:

    manifest.json                       model, revision, hooks (and their widths), positions,
                                        dtype, number of shards: a directory refuses a writer
                                        with different settings, a reader another model
    samples.shard-i-of-n.jsonl          one line per finished sample: its id, its chunk, its
                                        rows there, its layout (segment counts, frames, times),
                                        its labels (answer, question kind, ...)
    chunk.shard-i-of-n.NNNNN.safetensors  the rows of a few samples: one [rows, width] tensor
                                        per hook plus the rows' metadata (`sample`, `position`,
                                        `frame`, `row`, `col`, `segment`, `role`)
    shard-i-of-n.done                   written when shard i finished its samples
    samples.shard-i-of-n.jsonl.lock     held (flock) by the one process writing shard i

**Bounded memory.** Rows are buffered until `chunk_rows` and written as one chunk (to a temporary
name, then renamed: a chunk is whole or absent); only then are its samples' index lines appended
(and fsynced). **Resumable.** A sample is done when its index line is: a process killed between
the chunk and its lines loses that chunk's samples, which the next run recomputes into a fresh
chunk. **One writer per shard**, as the result store (vlens/experiments/store.py): an exclusive
`flock`, a second writer gets `StoreLockedError` naming the holder.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int
from safetensors.torch import load_file, save_file
from torch import Tensor

from vlens.inputs.layout import ROLES, SEGMENTS, VideoLayout
from vlens.inputs.positions import Positions, as_positions

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
ROLE_CODES = ("", *ROLES)  # `role` metadata: an index into this tuple
META_KEYS = ("sample", "position", "frame", "row", "col", "segment", "role")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class ActivationStoreError(ValueError):
    """A store directory that does not fit what is asked of it (settings, model, shards)."""


class StoreLockedError(ActivationStoreError):
    """Another live process writes the same shard."""


def parse_positions(spec: str | Positions | Sequence[str]) -> tuple[Positions, str]:
    """A position group from `"video"`, `"video,last"`, `("vision", "question")`, or a `Positions`.

    Returns:
        The selector and its canonical name (what the manifest records).

    Raises:
        LayoutError: an unknown name (the message lists segments, roles and special names).
    """
    if isinstance(spec, str):
        parts = [p.strip() for p in spec.replace("|", ",").split(",") if p.strip()]
        if not parts:
            raise ActivationStoreError(
                f"positions={spec!r} names no position group; pass e.g. 'video', 'video,last' or 'all'"
            )
        sel = as_positions(tuple(parts))
    else:
        sel = as_positions(spec)
    return sel, sel.name


def model_revision(model: Any) -> str:
    """The checkpoint's revision: HF's commit hash when it has one, else a hash of the config and of
    a slice of every LM weight (it changes when the weights do; cheap, no file access)."""
    commit = getattr(model.hf_model.config, "_commit_hash", None)
    if commit:
        return str(commit)
    h = hashlib.sha256(json.dumps(model.cfg.to_dict() if hasattr(model.cfg, "to_dict") else repr(model.cfg)).encode())
    for name, p in sorted(model.named_parameters()):
        if name.startswith(("embed", "blocks", "unembed", "ln_final")):
            h.update(name.encode())
            h.update(p.detach().flatten()[:64].float().cpu().numpy().tobytes())
    return "sha256:" + h.hexdigest()[:16]


def shard_name(shard: tuple[int, int]) -> str:
    """The file-name tag of shard `(i, n)`: "shard-i-of-n" (raises unless 0 <= i < n)."""
    i, n = shard
    if n < 1 or not 0 <= i < n:
        raise ActivationStoreError(f"shard {i}/{n} is out of range: use i/n with 0 <= i < n (0-based)")
    return f"shard-{i}-of-{n}"


def _layout_summary(layout: VideoLayout) -> dict:
    """What the index keeps of a sample's layout (the rows keep each position's own labels)."""
    return {
        "seq_len": len(layout),
        "n_frames": layout.n_frames,
        "frames_per_group": layout.frames_per_group,
        "frame_times": list(layout.frame_times) if layout.frame_times is not None else None,
        "counts": layout.counts(),
        "grid": _grid(layout),
    }


def _grid(layout: VideoLayout) -> list[int] | None:
    """(rows, cols) of a frame's patch grid, or None without video patches."""
    v = layout.is_video & (layout.row >= 0)
    if not bool(v.any()):
        return None
    return [int(layout.row[v].max()) + 1, int(layout.col[v].max()) + 1]


def position_metadata(layout: VideoLayout, index: Int[Tensor, " n"]) -> dict[str, Tensor]:
    """The stored labels of positions `index` of one layout: position, frame, row, col, segment
    (an index into `SEGMENTS`), role (an index into `ROLE_CODES`)."""
    seg = torch.tensor([SEGMENTS.index(layout.segment[i]) for i in index.tolist()], dtype=torch.int16)
    assert layout.role is not None  # set by VideoLayout.__post_init__
    role = torch.tensor([ROLE_CODES.index(layout.role[i]) for i in index.tolist()], dtype=torch.int16)
    return {
        "position": index.to(torch.int32),
        "frame": layout.frame[index].to(torch.int32),
        "row": layout.row[index].to(torch.int32),
        "col": layout.col[index].to(torch.int32),
        "segment": seg,
        "role": role,
    }


class _ShardLock:
    """An exclusive flock on `<path>.lock` for a writer's lifetime (the kernel drops it on death)."""

    def __init__(self, path: Path):
        import fcntl

        self.fd: int | None = None
        lock = path.with_name(path.name + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise StoreLockedError(
                f"{path} is being written by another writer ({holder}); one writer per shard: wait for it, "
                "close() the other ActivationWriter, or split the work with --shard i/n"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _read_index(path: Path) -> list[dict]:
    """The finished samples of one shard; a torn last line (a killed write) is left out."""
    if not path.exists():
        return []
    out = []
    lines = path.read_bytes().split(b"\n")
    for i, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            out.append(json.loads(raw))
        except ValueError:
            if i >= len(lines) - 1:  # the last line: a torn write, recomputed
                break
            raise ActivationStoreError(f"{path}, line {i}: not a JSON index line: {raw[:80]!r}") from None
    return out


class ActivationWriter:
    """The writer of one shard of an activation store (see the module docstring).

    Args:
        out_dir: the store directory (created if absent).
        model: the `HookedVideoLLM` whose activations are written.
        hooks: hook names (`blocks.3.hook_resid_post`, `hook_video_features`, ...).
        positions: the position group (`"video"`, `"video,last"`, `"all"`, ...; `parse_positions`).
        dtype: the stored dtype ("float32", "float16", "bfloat16").
        shard: (i, n): this writer's shard.
        chunk_rows: rows buffered before a chunk is written (the memory bound).
        extra_settings: anything else that changes the rows (frames per clip, ...): part of the manifest.

    Raises:
        ActivationStoreError: an unknown hook or dtype, or a directory written with other settings
            or another model. StoreLockedError: another writer holds this shard.
    """

    def __init__(
        self,
        out_dir: str | Path,
        model: Any,
        hooks: Sequence[str],
        *,
        positions: str | Sequence[str] = "all",
        dtype: str = "float32",
        shard: tuple[int, int] = (0, 1),
        chunk_rows: int = 65536,
        extra_settings: dict | None = None,
    ):
        self._lock: _ShardLock | None = None
        if isinstance(hooks, str):
            hooks = [hooks]
        unknown = [h for h in hooks if h not in model.hook_dict]
        if not hooks or unknown:
            raise ActivationStoreError(
                f"hooks={list(hooks)!r}: {unknown or 'none given'} not hook points of this model; "
                f"pick from model.hook_dict, e.g. 'blocks.0.hook_resid_post' or 'hook_video_features'"
            )
        square = [h for h in hooks if h.endswith(("attn.hook_pattern", "attn.hook_attn_scores"))]
        if square:
            raise ActivationStoreError(
                f"hooks={list(hooks)!r}: {square} are [batch, head, query, key] (a row per pair of positions, not per "
                "position), which the store does not keep; store 'blocks.L.attn.hook_z' (each head's output per "
                "position) or summarise the pattern with vlens.interventions.lens.attention_to_frames"
            )
        if dtype not in DTYPES:
            raise ActivationStoreError(f"dtype={dtype!r} is not a stored dtype; use one of {tuple(DTYPES)}")
        if chunk_rows < 1:
            raise ActivationStoreError(f"chunk_rows={chunk_rows} must be >= 1")
        self.model, self.hooks, self.dtype = model, tuple(hooks), dtype
        self.selector, positions_name = parse_positions(positions)
        self.shard, self.chunk_rows = shard, chunk_rows
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = shard_name(shard)
        self.settings = {
            "format": FORMAT_VERSION,
            "model": str(model.cfg.model_name),
            "revision": model_revision(model),
            "family": model.family.name,
            "hooks": list(self.hooks),
            "positions": positions_name,
            "dtype": dtype,
            "n_shards": shard[1],
            **(extra_settings or {}),
        }
        self._check_manifest()
        self.index_path = self.dir / f"samples.{self.name}.jsonl"
        self._lock = _ShardLock(self.index_path)
        self.done = {r["sample"] for r in _read_index(self.index_path)}
        self._next_chunk = 1 + max((r["chunk"] for r in _read_index(self.index_path)), default=-1)
        self._rows: dict[str, list[Tensor]] = {k: [] for k in (*self.hooks, *META_KEYS)}
        self._pending: list[dict] = []
        self._n_buffered = 0
        self.widths: dict[str, int] = dict(self._manifest().get("widths", {}))

    # settings --------------------------------------------------------------------------------------
    def _manifest(self) -> dict:
        path = self.dir / MANIFEST
        return json.loads(path.read_text()) if path.exists() else {}

    def _check_manifest(self) -> None:
        old = self._manifest()
        if old:
            diff = [(k, old.get(k), v) for k, v in self.settings.items() if old.get(k) != v and k not in ("widths",)]
            if diff:
                details = "; ".join(f"{k}: {a!r} there, {b!r} now" for k, a, b in diff)
                raise ActivationStoreError(
                    f"{self.dir} holds activations written with other settings ({details}); use another "
                    "output directory, or the same model, hooks, positions, dtype and --shard n to resume"
                )
        else:
            self._write_manifest(self.settings)

    def _write_manifest(self, manifest: dict) -> None:
        path = self.dir / MANIFEST
        tmp = path.with_name(f"{MANIFEST}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(tmp, path)  # atomic: whole or absent

    # writing ---------------------------------------------------------------------------------------
    def add(self, sample_id: str, inputs: Any, labels: dict | None = None) -> bool:
        """Run one sample (one-row `VideoInputs`) and buffer its rows; False if it is already stored.

        Only the blocks up to the deepest hook run (`stop_at_layer`): the store costs no more than a
        forward to that depth.

        Raises:
            ActivationStoreError: inputs of more than one row, or a hook's width changed.
        """
        if sample_id in self.done:
            return False
        if self._lock is None:
            raise ActivationStoreError(f"the writer of {self.index_path} was closed; open a new ActivationWriter")
        if inputs.batch_size != 1:
            raise ActivationStoreError(f"add() takes one sample's inputs (one row), got {inputs.batch_size} rows")
        layout = inputs.layout
        index = self.selector(layout).nonzero().flatten()
        vision_index = layout.is_vision.nonzero().flatten()
        captured: dict[str, Tensor] = {}

        def grab(act: Tensor, hook) -> None:
            if hook.name == "hook_video_features":  # [batch, n_vision, d]: the k-th vision position
                where = torch.searchsorted(vision_index, index)
                keep = (where < len(vision_index)) & (vision_index[where.clamp(max=len(vision_index) - 1)] == index)
                rows = act[0, where[keep].to(act.device)]
            else:
                rows = act[0, index.to(act.device)]
            captured[hook.name] = rows.flatten(1).detach().to("cpu", DTYPES[self.dtype])

        if "hook_video_features" in self.hooks:
            index = index[torch.isin(index, vision_index)]  # its rows exist at vision positions only
        stop = _stop_layer(self.hooks, self.model.cfg.n_layers)
        with torch.no_grad():
            self.model.run_with_hooks(
                inputs, fwd_hooks=[(h, grab) for h in self.hooks], stop_at_layer=stop, return_type=None
            )
        for h in self.hooks:
            width = int(captured[h].shape[1])
            if self.widths.setdefault(h, width) != width:
                raise ActivationStoreError(f"hook {h} has width {width} here but {self.widths[h]} in the store")
            self._rows[h].append(captured[h])
        meta = position_metadata(layout, index)
        meta["sample"] = torch.full((len(index),), len(self._pending), dtype=torch.int32)  # within the chunk
        for k in META_KEYS:
            self._rows[k].append(meta[k])
        self._pending.append(
            {"sample": sample_id, "rows": len(index), "layout": _layout_summary(layout), "labels": labels or {}}
        )
        self._n_buffered += len(index)
        self.done.add(sample_id)
        if self._n_buffered >= self.chunk_rows:
            self.flush()
        return True

    def flush(self) -> None:
        """Write the buffered rows as one chunk, then their samples' index lines."""
        if not self._pending:
            return
        chunk = self._next_chunk
        path = self.dir / f"chunk.{self.name}.{chunk:05d}.safetensors"
        tensors = {k: torch.cat(v) for k, v in self._rows.items()}
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata={"format": str(FORMAT_VERSION)})
        os.replace(tmp, path)
        start, lines = 0, []
        for rec in self._pending:
            lines.append(json.dumps({**rec, "chunk": chunk, "start": start}, sort_keys=True) + "\n")
            start += rec["rows"]
        with open(self.index_path, "a", encoding="utf-8") as f:
            f.write("".join(lines))
            f.flush()
            os.fsync(f.fileno())
        manifest = self._manifest()
        if manifest.get("widths") != self.widths:
            self._write_manifest({**manifest, "widths": self.widths})
        self._next_chunk += 1
        self._rows = {k: [] for k in self._rows}
        self._pending, self._n_buffered = [], 0

    def finish(self) -> None:
        """Flush, mark this shard complete (readers require every shard's mark) and release the lock."""
        self.flush()
        (self.dir / f"{self.name}.done").write_text(json.dumps({"samples": len(self.done)}))
        self.close()

    def close(self) -> None:
        """Release the lock without marking the shard complete (buffered rows are dropped)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> ActivationWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.flush()  # what finished is kept; the shard stays unfinished
            self.close()

    def __del__(self) -> None:
        self.close()


def _stop_layer(hooks: Iterable[str], n_layers: int) -> int | None:
    """The first block no hook needs (None: the whole model, e.g. for `ln_final`)."""
    deepest = -1
    for h in hooks:
        if h.startswith("blocks."):
            deepest = max(deepest, int(h.split(".")[1]))
        elif h not in ("hook_embed", "hook_video_features"):
            return None
    return deepest + 1 if deepest + 1 < n_layers else None


@dataclass(frozen=True)
class ActivationBatch:
    """Rows of one hook with where they came from.

    Attributes:
        acts: `[n, d]` the activations.
        sample: `[n]` index into `ActivationStore.samples`.
        position, frame, row, col: `[n]` the position and its video coordinates (−1 outside video).
        segment: `[n]` index into `vlens.inputs.layout.SEGMENTS`.
        role: `[n]` index into `ROLE_CODES` (0: no role).
    """

    acts: Float[Tensor, "n d"]
    sample: Int[Tensor, " n"]
    position: Int[Tensor, " n"]
    frame: Int[Tensor, " n"]
    row: Int[Tensor, " n"]
    col: Int[Tensor, " n"]
    segment: Int[Tensor, " n"]
    role: Int[Tensor, " n"]

    def __len__(self) -> int:
        return int(self.acts.shape[0])

    def where(self, mask: Tensor) -> ActivationBatch:
        """The rows where `mask` [n] is true."""
        return ActivationBatch(*(getattr(self, k)[mask] for k in ("acts", *META_KEYS)))  # type: ignore[arg-type]

    def segment_mask(self, *names: str) -> Tensor:
        """`[n]` rows whose segment is one of `names`."""
        codes = torch.tensor([SEGMENTS.index(n) for n in names], dtype=self.segment.dtype)
        return torch.isin(self.segment, codes)

    def role_mask(self, *names: str) -> Tensor:
        """`[n]` rows whose text role is one of `names`."""
        codes = torch.tensor([ROLE_CODES.index(n) for n in names], dtype=self.role.dtype)
        return torch.isin(self.role, codes)


class ActivationStore:
    """A finished activation store, read back (every shard must be complete).

    Args:
        path: the store directory.
        model: if given, the store must have been written by this model at this revision.

    Raises:
        ActivationStoreError: not a store, a missing or unfinished shard, a missing chunk, or a
            store written by another model or revision.
    """

    def __init__(self, path: str | Path, *, model: Any = None):
        self.dir = Path(path)
        if not (self.dir / MANIFEST).exists():
            raise ActivationStoreError(
                f"{self.dir} is not an activation store (no {MANIFEST}); write one with `vlens cache-activations`"
            )
        self.manifest = json.loads((self.dir / MANIFEST).read_text())
        n = int(self.manifest["n_shards"])
        missing = [i for i in range(n) if not (self.dir / f"{shard_name((i, n))}.done").exists()]
        if missing:
            flags = " ".join(f"--shard {i}/{n}" for i in missing)
            raise ActivationStoreError(
                f"{self.dir} is missing shard(s) {missing} of {n} (no shard-i-of-{n}.done: never run, still "
                f"running or killed); run `vlens cache-activations` with {flags} (the same settings resume them)"
            )
        self.samples: list[dict] = []
        self._chunks: list[tuple[Path, int]] = []  # (file, index of its first sample in self.samples)
        for i in range(n):
            index = _read_index(self.dir / f"samples.{shard_name((i, n))}.jsonl")
            by_chunk: dict[int, list[dict]] = {}
            for r in index:
                by_chunk.setdefault(r["chunk"], []).append(r)
            for chunk, recs in sorted(by_chunk.items()):
                file = self.dir / f"chunk.{shard_name((i, n))}.{chunk:05d}.safetensors"
                if not file.exists():
                    raise ActivationStoreError(
                        f"{file} is missing but {len(recs)} samples of {self.dir} point at it; delete "
                        f"samples.{shard_name((i, n))}.jsonl and {shard_name((i, n))}.done and run that shard again"
                    )
                self._chunks.append((file, len(self.samples)))
                self.samples.extend(recs)
        if model is not None:
            self.check_model(model)

    @property
    def hooks(self) -> list[str]:
        """The hook names the store holds, in the order they were written."""
        return list(self.manifest["hooks"])

    @property
    def widths(self) -> dict[str, int]:
        """Each hook's stored width (the activation flattened to one vector per position)."""
        return dict(self.manifest.get("widths", {}))

    @property
    def n_rows(self) -> int:
        """The number of stored positions (rows) over every sample and shard."""
        return sum(int(s["rows"]) for s in self.samples)

    def check_model(self, model: Any) -> None:
        """Raise unless the store was written by `model` (same name and revision)."""
        rev = model_revision(model)
        name = str(model.cfg.model_name)
        if (self.manifest["model"], self.manifest["revision"]) != (name, rev):
            raise ActivationStoreError(
                f"{self.dir} was written by {self.manifest['model']} at revision {self.manifest['revision']}, "
                f"not by this model ({name} at {rev}); its activations belong to another checkpoint: "
                "write a new store with this model"
            )

    def _hook(self, hook: str) -> str:
        if hook not in self.hooks:
            raise ActivationStoreError(f"hook={hook!r} is not in this store; it holds {self.hooks}")
        return hook

    def batches(
        self, hook: str, batch_size: int = 4096, *, shuffle: bool = False, seed: int = 0, dtype=torch.float32
    ) -> Iterator[ActivationBatch]:
        """Batches of `batch_size` rows of one hook (the last may be smaller), one chunk in memory at
        a time. `shuffle` permutes chunks and rows within each chunk (seeded)."""
        hook = self._hook(hook)
        gen = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(self._chunks), generator=gen).tolist() if shuffle else range(len(self._chunks))
        for c in order:
            file, first = self._chunks[c]
            t = load_file(str(file))
            n = int(t[hook].shape[0])
            rows = torch.randperm(n, generator=gen) if shuffle else torch.arange(n)
            for s in range(0, n, batch_size):
                r = rows[s : s + batch_size]
                yield ActivationBatch(
                    t[hook][r].to(dtype),
                    t["sample"][r].long() + first,
                    *(t[k][r].long() for k in META_KEYS[1:]),
                )

    def all(self, hook: str, dtype=torch.float32) -> ActivationBatch:
        """Every row of one hook as one batch (small stores: probes, figures)."""
        parts = list(self.batches(hook, batch_size=1 << 62, dtype=dtype))
        if not parts:
            raise ActivationStoreError(f"{self.dir} holds no rows")
        return ActivationBatch(*(torch.cat([getattr(p, k) for p in parts]) for k in ("acts", *META_KEYS)))
