"""An append-only, resumable result store: one JSONL file per run directory.

Why JSONL and not SQLite: every record is written once and never updated; appends of whole lines
with `fsync` are atomic enough for one writer per file, a human can `grep`/`jq` the results, and
merging shards is concatenation. A killed process can at worst leave a torn last line (no
newline / not JSON): it is detected and cut off when the store is opened again, and the records it
held are recomputed.

Layout of a run directory:

    settings.json          every setting that changes a number (the run key); a directory refuses
                           a run with different settings
    results.jsonl          (or results.shard-i-of-n.jsonl) one record per (sample, config)

Records of one sample are appended together in one write, after all its configurations ran, so a
sample is either complete in the store or recomputed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

SETTINGS = "settings.json"


class StoreError(ValueError):
    """The output directory holds a run with different settings, or is unreadable."""


def run_key(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True, separators=(",", ":"))


class ResultStore:
    def __init__(self, out_dir: str | Path, settings: dict, shard: tuple[int, int] = (0, 1)):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self._check_settings()
        i, n = shard
        name = "results.jsonl" if n == 1 else f"results.shard-{i}-of-{n}.jsonl"
        self.path = self.dir / name
        self._repair()
        self.done: set[tuple[str, str]] = {(r["sample"], r["config"]) for r in self.records(self.path)}

    def _check_settings(self) -> None:
        path = self.dir / SETTINGS
        if path.exists():
            old = json.loads(path.read_text())
            diff = sorted(k for k in set(old) | set(self.settings) if old.get(k) != self.settings.get(k))
            if diff:
                details = "; ".join(f"{k}: {old.get(k)!r} there, {self.settings.get(k)!r} now" for k in diff)
                raise StoreError(
                    f"{self.dir} holds a run with different settings ({details}); use another --out "
                    "directory, or the same settings to resume"
                )
        else:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.settings, indent=1, sort_keys=True))
            os.replace(tmp, path)  # atomic: the settings file is whole or absent

    def _repair(self) -> None:
        """Cut a torn last line (a write interrupted by a kill) so appends stay line-aligned."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if not data:
            return
        cut = len(data)
        if not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
        else:
            last = data[data.rfind(b"\n", 0, len(data) - 1) + 1 :]
            try:
                json.loads(last)
            except json.JSONDecodeError:
                cut = data.rfind(b"\n", 0, len(data) - 1) + 1
        if cut != len(data):
            with open(self.path, "r+b") as f:
                f.truncate(cut)
                f.flush()
                os.fsync(f.fileno())

    def append(self, records: Iterable[dict]) -> None:
        """Append records (one sample's) in one write; already stored keys are skipped."""
        lines = []
        for r in records:
            key = (r["sample"], r["config"])
            if key in self.done:
                continue
            self.done.add(key)
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
        if not path.exists():
            return
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.endswith("\n"):
                    yield json.loads(line)


def load_results(out_dir: str | Path) -> tuple[dict, list[dict]]:
    """(settings, records of every shard), deduplicated by (sample, config)."""
    out = Path(out_dir)
    settings_path = out / SETTINGS
    if not settings_path.exists():
        raise StoreError(f"{out} is not a vlens run directory (no {SETTINGS}); run `vlens run ... --out {out}` first")
    settings = json.loads(settings_path.read_text())
    seen, records = set(), []
    for path in sorted(out.glob("results*.jsonl")):
        for r in ResultStore.records(path):
            key = (r["sample"], r["config"])
            if key not in seen:
                seen.add(key)
                records.append(r)
    return settings, records
