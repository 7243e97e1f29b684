"""Results are independent of how they were computed: sharding, number of workers, resume history,
record order. Properties over the store + analysis (any split of the records into part files, any
line order, replayed resume duplicates), and over real runs with the model (shard counts and the
order shards run in, a resumed --limit run)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vlens.experiments.analysis import analyse
from vlens.experiments.store import SETTINGS, load_results
from vlens.run import RunConfig, run


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models on a shared 2-core machine: one thread each is several times faster than two."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


SETTINGS_DICT = {"model": "m", "data": "synthetic:0", "frames": 8, "n_layers": 4}


def _records(n_samples: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n_samples):
        sample = f"s{i:03d}"
        for config in ("clean", "prior", "global2/lv", "global2/vt", "windows/vs/3"):
            r = {
                "sample": sample,
                "config": config,
                "meta": {"kind": rng.choice(["color", "count"])},
                "correct": rng.random() < 0.6,
                "p_correct": rng.random(),
                "logit_diff": rng.gauss(0, 3),
            }
            if config not in ("clean", "prior"):
                r["kl"] = rng.random() / 3
            out.append(r)
        out.append(
            {
                "sample": sample,
                "config": "lens",
                "labels": ["0_pre", "1_pre", "final"],
                "p_correct": [rng.random() for _ in range(3)],
                "rank": [rng.randrange(3) for _ in range(3)],
                "frame_mass": [[rng.random() for _ in range(4)] for _ in range(2)],
            }
        )
        out.append(
            {
                "sample": sample,
                "config": "patching/resid_pre/video",
                "groups": ["video", "final"],
                "layers": [0, 1],
                "raw": [[rng.gauss(0, 1) for _ in range(2)] for _ in range(2)],
                "clean_diff": rng.gauss(2, 1),
                "corrupted_diff": rng.gauss(0, 1),
            }
        )
    return out


def _write(out: Path, parts: list[list[dict]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / SETTINGS).write_text(json.dumps(SETTINGS_DICT))
    for k, part in enumerate(parts):
        name = "results.jsonl" if k == 0 else f"results.shard-{k - 1}-of-{len(parts) - 1}.jsonl"
        (out / name).write_text("".join(json.dumps(r) + "\n" for r in part))


def _same(a, b) -> bool:
    """Equal analyses, NaN == NaN, tensors compared exactly."""
    import torch

    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return torch.equal(a.nan_to_num(7.0), b.nan_to_num(7.0))
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if hasattr(a, "__dataclass_fields__"):
        return type(a) is type(b) and all(_same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return a == b


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), n_parts=st.integers(1, 5), replay=st.integers(0, 6), data=st.data())
def test_analysis_is_independent_of_parts_order_and_resume_duplicates(tmp_path_factory, seed, n_parts, replay, data):
    records = _records(9, seed)
    ref = tmp_path_factory.mktemp("ref")
    _write(ref, [records])
    expected = analyse(ref)
    shuffled = data.draw(st.permutations(records))
    parts = [[] for _ in range(n_parts)]
    for r in shuffled:
        parts[data.draw(st.integers(0, n_parts - 1))].append(r)
    for r in shuffled[:replay]:  # a resume that re-wrote some keys (same values) into another part
        parts[data.draw(st.integers(0, n_parts - 1))].append(dict(r))
    other = tmp_path_factory.mktemp("split")
    _write(other, parts)
    got = analyse(other)
    assert _same(got.summary, expected.summary)
    assert _same(got.patching, expected.patching) and _same(got.lens, expected.lens)
    assert got.records == expected.records


def _cfg(onevision_dir, out, **kw) -> RunConfig:
    return RunConfig(
        model=onevision_dir,
        data="synthetic:3,n=6",
        out=out,
        protocols="global2,lens,patching",
        frames=4,
        progress=False,
        report=False,
        **kw,
    )


@pytest.fixture(scope="module")
def single(onevision_dir, model, tmp_path_factory) -> Path:
    """The reference: all samples in one process."""
    out = tmp_path_factory.mktemp("single")
    run(_cfg(onevision_dir, out), model=model)
    return out


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n_shards=st.integers(2, 4), order=st.randoms(use_true_random=False))
def test_sharded_runs_in_any_order_equal_the_single_run(
    onevision_dir, model, single, tmp_path_factory, n_shards, order
):
    """Every stored record (the language prior and the patching partner included) and every reported
    number is the same whether the samples ran in one process or in n shards, in any order."""
    sharded = tmp_path_factory.mktemp("sharded")
    shards = list(range(n_shards))
    order.shuffle(shards)
    for i in shards:
        run(_cfg(onevision_dir, sharded, shard=(i, n_shards)), model=model)
    a, b = load_results(single)[1], load_results(sharded)[1]
    assert [(r["sample"], r["config"]) for r in a] == [(r["sample"], r["config"]) for r in b]
    for x, y in zip(a, b):
        assert x == y, (x["sample"], x["config"])
    assert _same(analyse(single).summary, analyse(sharded).summary)


def test_report_is_the_same_for_sharded_resumed_and_single_runs(onevision_dir, model, single, tmp_path):
    from vlens.figures.report import write_report

    sharded, resumed = tmp_path / "sharded", tmp_path / "resumed"
    for i in (1, 0):
        run(_cfg(onevision_dir, sharded, shard=(i, 2)), model=model)
    run(_cfg(onevision_dir, resumed, limit=3), model=model)  # --limit 3, then the whole set
    run(_cfg(onevision_dir, resumed), model=model)
    texts = [write_report(d).read_text() for d in (single, sharded, resumed)]
    assert texts[0] == texts[1] == texts[2]
    assert "language prior" in texts[0] and "### Logit lens" in texts[0]
