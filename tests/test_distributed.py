"""`torchrun -m vlens run …` with two CPU processes (gloo): each rank writes its own part, rank 0
writes the report, and report and records equal a single process's."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vlens.cli import main
from vlens.experiments.distributed import World, device_for, shard_for
from vlens.experiments.store import load_results


def test_shards_and_devices_of_ranks():
    assert [shard_for((0, 1), World(r, 2, r)) for r in (0, 1)] == [(0, 2), (1, 2)]
    # --shard 1/3 under 2 ranks: rank r takes shard 1 + 3r of 6, a subset of what 1/3 alone takes
    assert [shard_for((1, 3), World(r, 2, r)) for r in (0, 1)] == [(1, 6), (4, 6)]
    assert device_for("cuda", World(1, 2, 1)) == "cuda:1" and device_for("cuda:3", World(1, 2, 1)) == "cuda:3"
    assert device_for("cuda", World()) == "cuda"


def test_ranks_in_turn_write_parts_and_equal_one_process(onevision_dir, model, tmp_path, monkeypatch):
    """The rank logic of run() in one process (the launcher's environment, no sockets): rank 1
    then rank 0, each its own part; rank 0 reports. The real two-process run is the slow test below."""
    from vlens.experiments import distributed
    from vlens.run import RunConfig, run

    def cfg(out):
        return RunConfig(
            model=onevision_dir, data="synthetic:2,n=5", out=out, protocols="global2", frames=4, progress=False
        )

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run(cfg(tmp_path / "one"), model=model)
        monkeypatch.setattr(distributed, "process_group", lambda w: contextlib.nullcontext())  # no sockets
        results = {}
        for rank in (1, 0):
            monkeypatch.setattr(distributed, "world", lambda rank=rank: World(rank, 2, rank))
            results[rank] = run(cfg(tmp_path / "two"), model=model)
    finally:
        torch.set_num_threads(n)
    assert results[1].report is None and results[0].report is not None  # rank 0 writes the report
    assert (results[0].counts.scored, results[1].counts.scored) == (3, 2)  # samples 0, 2, 4 and 1, 3
    assert sorted(p.name for p in (tmp_path / "two").glob("results*.jsonl")) == [
        "results.shard-0-of-2.jsonl",
        "results.shard-1-of-2.jsonl",
    ]
    assert load_results(tmp_path / "one")[1] == load_results(tmp_path / "two")[1]
    assert (tmp_path / "one" / "report.md").read_text() == (tmp_path / "two" / "report.md").read_text()


@pytest.mark.slow  # two fresh interpreters importing torch + transformers: > 30 s on 2 shared cores
def test_torchrun_two_processes_equal_one_process(onevision_dir, tmp_path):
    args = [
        "run",
        "global2,lens",
        "--model",
        str(onevision_dir),
        "--data",
        "synthetic:2,n=5",
        "--frames",
        "4",
        "--quiet",
    ]
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*args, "--out", str(tmp_path / "one")]) == 0
    finally:
        torch.set_num_threads(n)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "vlens",
            *args,
            "--out",
            str(tmp_path / "two"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(2 processes)" in proc.stderr and proc.stderr.count("report: ") == 1  # rank 0 reports
    parts = sorted(p.name for p in (tmp_path / "two").glob("results*.jsonl"))
    assert parts == ["results.shard-0-of-2.jsonl", "results.shard-1-of-2.jsonl"]
    one, two = load_results(tmp_path / "one")[1], load_results(tmp_path / "two")[1]
    assert one == two
    assert (tmp_path / "one" / "report.md").read_text() == (tmp_path / "two" / "report.md").read_text()
