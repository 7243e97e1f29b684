"""The store cannot be double-written or silently broken: one writer per part (a second process gets
a clear error), a corrupt line mid-file is an error naming file, line and fix, `vlens store
check|repair` find and move bad lines aside without losing anything, and a writer sees every part."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vlens.cli import main
from vlens.experiments.store import (
    CorruptStoreError,
    ResultStore,
    StoreLockedError,
    check,
    load_results,
    repair,
)

SETTINGS = {"model": "m", "frames": 8}


def _rec(sample: str, config: str = "clean", **kw) -> dict:
    return {"sample": sample, "config": config, "correct": True, **kw}


def test_a_second_writer_process_gets_a_clear_error(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import importlib.util, sys
            # vlens/experiments/store.py alone (no torch import: the holder starts in a blink)
            spec = importlib.util.spec_from_file_location("store", {str(Path(__file__).parents[1] / "vlens" / "experiments" / "store.py")!r})
            store_mod = sys.modules["store"] = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(store_mod)
            store = store_mod.ResultStore({str(tmp_path)!r}, {SETTINGS!r})
            store.append([{{"sample": "s0", "config": "clean"}}])
            print("ready", flush=True)
            sys.stdin.read()
        """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLockedError, match=rf"another process \(pid {holder.pid} .*--shard i/n or torchrun"):
            ResultStore(tmp_path, SETTINGS)
        other = ResultStore(tmp_path, SETTINGS, shard=(1, 2))  # another part: fine, in parallel
        other.close()
        assert check(tmp_path)[0].locked
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    with ResultStore(tmp_path, SETTINGS) as store:  # the holder exited: the lock went with it
        store.append([_rec("s1")])
    with (
        ResultStore(tmp_path, SETTINGS),
        pytest.raises(StoreLockedError, match="already open for writing in this process"),
    ):
        ResultStore(tmp_path, SETTINGS)


def test_corrupt_line_is_named_and_repair_moves_it_aside(tmp_path, capsys):
    with ResultStore(tmp_path, SETTINGS) as store:
        store.append([_rec("s1"), _rec("s2")])
    with ResultStore(tmp_path, SETTINGS, shard=(0, 2)) as store:
        store.append([_rec("s3")])
    path = tmp_path / "results.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], '{"sample": "s9", "conf', lines[1]]) + "\n")  # line 2 is garbage
    for call in (lambda: load_results(tmp_path), lambda: ResultStore(tmp_path, SETTINGS)):
        with pytest.raises(CorruptStoreError, match=r"results\.jsonl, line 2: .*vlens store repair"):
            call()
    assert main(["store", "check", str(tmp_path)]) == 1
    out = capsys.readouterr()
    assert "results.jsonl: 2 records; 1 bad line(s) at 2" in out.out and "vlens store repair" in out.err
    assert main(["store", "repair", str(tmp_path)]) == 0
    assert (tmp_path / "results.jsonl.corrupt").read_text() == '{"sample": "s9", "conf\n'  # kept, not deleted
    _, records = load_results(tmp_path)
    assert [(r["sample"], r["config"]) for r in records] == [("s1", "clean"), ("s2", "clean"), ("s3", "clean")]
    assert main(["store", "check", str(tmp_path)]) == 0
    assert all(not (r.bad_lines or r.torn_tail) for r in repair(tmp_path))


def test_torn_tail_is_moved_aside_and_a_writer_sees_every_part(tmp_path):
    with ResultStore(tmp_path, SETTINGS, shard=(0, 2)) as a:
        a.append([_rec("s0"), _rec("s0", "x")])
    with ResultStore(tmp_path, SETTINGS, shard=(1, 2)) as b:
        b.append([_rec("s1")])
    with open(tmp_path / "results.shard-1-of-2.jsonl", "a") as f:
        f.write('{"sample": "s2", "config": "clean", "corr')  # a write torn by a kill
    assert check(tmp_path)[1].torn_tail
    with ResultStore(tmp_path, SETTINGS) as single:  # resumed by one process: nothing is recomputed
        assert single.done == {("s0", "clean"), ("s0", "x"), ("s1", "clean")}
        single.append([_rec("s0"), _rec("s3")])  # s0 is done in a part already: not written twice
    assert [json.loads(l)["sample"] for l in (tmp_path / "results.jsonl").read_text().splitlines()] == ["s3"]
    with ResultStore(tmp_path, SETTINGS, shard=(1, 2)):
        pass  # the part's own writer cuts its torn tail, keeping the bytes aside
    assert "corr" in (tmp_path / "results.shard-1-of-2.jsonl.corrupt").read_text()
    assert not check(tmp_path)[2].torn_tail
