"""An append-only, resumable result store: JSONL part files in one run directory.

Why JSONL and not SQLite: every record is written once and never updated; appends of whole lines
with `fsync` are atomic enough for one writer per file, a human can `grep`/`jq` the results, and
merging parts is reading every file. A killed process can at worst leave a torn last line (no
newline / not JSON): it is moved aside (to `<file>.corrupt`) when the store is opened again, and
the records it held are recomputed.

Layout of a run directory:

    settings.json                  every setting that changes a number (the run key); a directory
                                   refuses a run with different settings
    results.jsonl                  one record per (sample, config), written by a single process, or
    results.shard-i-of-n.jsonl     one part per shard / distributed rank (same record format)
    <part>.lock                    held (flock) by the one process writing <part>
    <part>.corrupt                 lines `vlens store repair` (or a torn tail) moved out of <part>

**One writer per part.** A writer holds an exclusive `flock` on `<part>.lock` for its lifetime; a
second process opening the same part gets a `StoreLockedError` naming the holder's pid. The kernel
drops the lock when the holder dies, so a killed run never leaves a stale lock (on network file
systems without `flock` support, give each process its own part with `--shard` / torchrun).

**Readers merge parts.** `load_results` reads every part, keeps the first record of each
(sample, config) key in file-name order and returns the records sorted by that key, so whatever
consumes them (the analysis layer) sees the same list whatever the sharding, the number of
workers, the resume history or the order of lines. A writer also learns what is done from every
part, so a resume with a different number of workers recomputes nothing.

**Corruption is an error, never a silent skip.** A line that is not JSON anywhere but at the very
end of a file raises `CorruptStoreError` naming the file, the line and the fix
(`vlens store repair DIR`, which moves bad lines to `<part>.corrupt`; nothing is deleted).
"""

from __future__ import annotations

import errno
import json
import os
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from vlens.experiments.store_scan import _Scan, _scan

SETTINGS = "settings.json"
PART_GLOB = "results*.jsonl"


class StoreError(ValueError):
    """The output directory holds a run with different settings, or is unreadable."""


class StoreLockedError(StoreError):
    """Another live process is writing the same part file."""


class CorruptStoreError(StoreError):
    """A result file has an unreadable line before its end."""


def run_key(settings: dict) -> str:
    """The canonical text of a run's settings: seeds every bootstrap of the run."""
    return json.dumps(settings, sort_keys=True, separators=(",", ":"))


def part_name(shard: tuple[int, int] = (0, 1)) -> str:
    """File name of the part written by shard `i` of `n` (0-based)."""
    i, n = shard
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard {i}/{n} is out of range: use i/n with 0 <= i < n (0-based)")
    return "results.jsonl" if n == 1 else f"results.shard-{i}-of-{n}.jsonl"


def _raise_if_bad(path: Path, scan: _Scan) -> None:
    if scan.bad:
        line, text = scan.bad[0]
        more = f" (and {len(scan.bad) - 1} more bad lines)" if len(scan.bad) > 1 else ""
        raise CorruptStoreError(
            f"{path}, line {line}: not a result record ({scan.why.get(line, 'not JSON')}){more}: {text[:80]!r}. Run `vlens store repair "
            f"{path.parent}` to move the bad lines to {path.name}.corrupt (nothing is deleted; their samples are "
            "recomputed on the next run), or `vlens store check` to list them"
        )


def _move_aside(path: Path, texts: Iterable[bytes]) -> None:
    with open(path.with_name(path.name + ".corrupt"), "ab") as f:
        for t in texts:
            f.write(t if t.endswith(b"\n") else t + b"\n")
        f.flush()
        os.fsync(f.fileno())


class ResultStore:
    """The writer of one part of a run directory (see the module docstring).

    Args:
        out_dir: the run directory (created if absent).
        settings: every setting that changes a number; refused if the directory holds others.
        shard: (i, n): this writer's part, `results.shard-i-of-n.jsonl` (`results.jsonl` for n = 1).

    Raises:
        StoreError: different settings in `out_dir`. StoreLockedError: another process writes
        this part. CorruptStoreError: a part has a bad line before its end.
    """

    def __init__(self, out_dir: str | Path, settings: dict, shard: tuple[int, int] = (0, 1)):
        self._lock_fd: int | None = None  # first: __del__ runs even when __init__ raises
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self._check_settings()
        self.path = self.dir / part_name(shard)
        self._lock()
        try:
            self._cut_torn_tail()
            self.done: set[tuple[str, str]] = set()
            self.skipped: dict[str, str] = {}  # sample → reason, for samples with a skipped record
            self.scored: set[str] = set()  # samples with at least one record that is not a skip
            for path in sorted(self.dir.glob(PART_GLOB)):
                scan = _scan(path)
                _raise_if_bad(path, scan)
                for _, r in scan.records:
                    self._note(r)
        except BaseException:
            self.close()
            raise

    def _note(self, r: dict) -> None:
        self.done.add((r["sample"], r["config"]))
        if "skipped" in r:
            self.skipped.setdefault(r["sample"], r["skipped"])
        else:
            self.scored.add(r["sample"])

    def _check_settings(self) -> None:
        path = self.dir / SETTINGS
        if path.exists():
            old = read_settings(path)
            diff = _differences(old, self.settings)
            if diff:
                details = "; ".join(f"{k}: {a!r} there, {b!r} now" for k, a, b in diff)
                raise StoreError(
                    f"{self.dir} holds a run with different settings ({details}); use another --out "
                    "directory, or the same settings to resume"
                )
        else:
            tmp = path.with_name(f"{SETTINGS}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.settings, indent=1, sort_keys=True))
            os.replace(tmp, path)  # atomic: the settings file is whole or absent

    def _lock(self) -> None:
        import fcntl

        lock = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            if holder.startswith(f"pid {os.getpid()} on {socket.gethostname()}"):
                raise StoreLockedError(
                    f"{self.path} is already open for writing in this process; close() that "
                    "ResultStore (or use it as a context manager) before opening another"
                ) from None
            raise StoreLockedError(
                f"{self.path} is being written by another process ({holder}); one writer per file: wait for it "
                "to finish, or split the work with --shard i/n or torchrun (each process writes its own part)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        self._lock_fd = fd

    def close(self) -> None:
        """Release the writer's lock (also released when the process exits)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    def __del__(self) -> None:
        self.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _cut_torn_tail(self) -> None:
        """Move a torn last line (a write interrupted by a kill) aside so appends stay line-aligned."""
        scan = _scan(self.path)
        if scan.torn:
            _move_aside(self.path, [scan.torn])
            with open(self.path, "r+b") as f:
                f.truncate(self.path.stat().st_size - len(scan.torn))
                f.flush()
                os.fsync(f.fileno())

    def append(self, records: Iterable[dict]) -> None:
        """Append records (one sample's) in one write; keys already stored in any part are skipped."""
        if self._lock_fd is None:
            raise StoreError(f"the store writing {self.path} was closed; open a new ResultStore to write")
        lines = []
        for r in records:
            key = (r["sample"], r["config"])
            if key in self.done:
                continue
            self._note(r)
            lines.append(json.dumps(r, sort_keys=True) + "\n")
        if not lines:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(lines))
            f.flush()
            os.fsync(f.fileno())

    def has(self, sample: str, config: str) -> bool:
        return (sample, config) in self.done

    @staticmethod
    def records(path: Path) -> Iterator[dict]:
        """The records of one part file, in file order (a torn last line is left out).

        Raises:
            CorruptStoreError: a bad line before the end, naming the file and line.
        """
        scan = _scan(Path(path))
        _raise_if_bad(Path(path), scan)
        for _, r in scan.records:
            yield r


def load_results(out_dir: str | Path) -> tuple[dict, list[dict]]:
    """(settings, the records of every part), one per (sample, config) key, sorted by that key.

    The first record of a key in file-name order wins; the sort makes everything computed from the
    list independent of how the records were written (shards, workers, resumes, line order).

    Raises:
        StoreError: not a run directory. CorruptStoreError: a bad line, naming file and line.
    """
    out = Path(out_dir)
    settings_path = out / SETTINGS
    if not settings_path.exists():
        raise StoreError(f"{out} is not a vlens run directory (no {SETTINGS}); run `vlens run ... --out {out}` first")
    settings = read_settings(settings_path)
    merged: dict[tuple[str, str], dict] = {}
    for path in sorted(out.glob(PART_GLOB)):
        for r in ResultStore.records(path):
            merged.setdefault((r["sample"], r["config"]), r)
    return settings, [merged[k] for k in sorted(merged)]


def read_settings(path: Path) -> dict:
    """The settings of a run directory, read from its `settings.json`.

    Raises:
        StoreError: the file is missing, unreadable, not JSON or not a JSON object; the message
            names the file and the fix."""
    fix = f"delete {path} only if the directory holds no results, or run with another --out directory"
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise StoreError(f"{path} is missing: {path.parent} is not a vlens run directory") from None
    except OSError as e:
        raise StoreError(f"cannot read {path}: {e}") from e
    try:
        settings = json.loads(text)
    except json.JSONDecodeError as e:
        raise StoreError(f"{path} is corrupt (not JSON: {e.msg} at line {e.lineno}); {fix}") from None
    if not isinstance(settings, dict):
        raise StoreError(f"{path} is corrupt (a JSON {type(settings).__name__}, not an object of settings); {fix}")
    return settings


@dataclass(frozen=True)
class PartReport:
    """What `check` found in one part file."""

    path: Path
    records: int
    duplicates: int  # records whose key an earlier line or part already holds (harmless: first wins)
    bad_lines: tuple[int, ...]  # 1-based lines that are not result records, before the end
    torn_tail: bool  # an incomplete last line (a killed write; cut when a writer reopens the part)
    locked: bool  # a live process holds the part's writer lock


def _is_locked(path: Path) -> bool:
    import fcntl

    lock = path.with_name(path.name + ".lock")
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # releases the probe's lock if it got one
    return False


def check(out_dir: str | Path) -> list[PartReport]:
    """Inspect every part of a run directory without changing anything (`vlens store check`).

    Raises:
        StoreError: `out_dir` is not a run directory.
    """
    out = Path(out_dir)
    if not (out / SETTINGS).exists():
        raise StoreError(f"{out} is not a vlens run directory (no {SETTINGS})")
    seen: set[tuple[str, str]] = set()
    reports = []
    for path in sorted(out.glob(PART_GLOB)):
        scan = _scan(path)
        dup = 0
        for _, r in scan.records:
            key = (r["sample"], r["config"])
            dup += key in seen
            seen.add(key)
        reports.append(
            PartReport(path, len(scan.records), dup, tuple(i for i, _ in scan.bad), bool(scan.torn), _is_locked(path))
        )
    return reports


def repair(out_dir: str | Path) -> list[PartReport]:
    """Move every bad line and torn tail of every part to `<part>.corrupt` (`vlens store repair`).

    Good records stay in place, in order; nothing is deleted. The samples whose records moved are
    recomputed by the next `vlens run` with the same settings.

    Returns:
        The `check` reports from before the repair.

    Raises:
        StoreLockedError: a part is being written by a live process (repair it after that ends).
    """
    reports = check(out_dir)
    for rep in reports:
        if not (rep.bad_lines or rep.torn_tail):
            continue
        if rep.locked:
            raise StoreLockedError(f"{rep.path} is being written by a live process; repair it after that run ends")
        scan = _scan(rep.path)
        bad = [text.encode() for _, text in scan.bad] + ([scan.torn] if scan.torn else [])
        _move_aside(rep.path, bad)
        tmp = rep.path.with_name(rep.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("".join(json.dumps(r, sort_keys=True) + "\n" for _, r in scan.records))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, rep.path)
    return reports


def _differences(old: dict, new: dict, prefix: str = "") -> list[tuple[str, object, object]]:
    """(dotted key, old value, new value) of every setting that differs, down into nested dicts
    (`flow.window: 3 there, 5 now` rather than both `flow` dicts)."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append((f"{prefix}{k}", a, b))
    return out
