"""The run API: RunConfig validation, run() → RunResult, nothing scored, --dry-run, the progress
bar, and a plugged-in protocol running in the same loop."""

from __future__ import annotations

import dataclasses
import math

import fabricate
import pytest
import torch

from vlens.cli import main
from vlens.data import load_dataset
from vlens.experiments import protocols as P
from vlens.experiments import registry
from vlens.experiments.runner import sample_inputs
from vlens.experiments.store import load_results
from vlens.experiments.study import configs_for
from vlens.interventions import sweep as engine
from vlens.run import NothingScoredError, RunConfig, RunError, dry_run, run


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models on a shared 2-core machine: one thread each is several times faster than two."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _cfg(onevision_dir, out, **kw) -> RunConfig:
    base = dict(model=onevision_dir, data="synthetic:0,n=4", out=out, protocols="global2", frames=8, progress=False)
    return RunConfig(**{**base, **kw})


def test_run_config_is_frozen_and_validated(onevision_dir, tmp_path):
    cfg = _cfg(onevision_dir, tmp_path, protocols="global2, lens")
    assert cfg.protocols == ("global2", "lens") and cfg.shard == (0, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.frames = 4
    for kw, match in [
        ({"protocols": "global3"}, "unknown protocol"),
        ({"protocols": "efficient,global1"}, "on its own"),
        ({"frames": 0}, "frames must be an integer ≥ 1"),
        ({"shard": (2, 2)}, "0 <= i < n"),
        ({"dtype": "fp8"}, "dtype must be one of"),
        ({"engine": "turbo"}, "engine must be one of"),
        ({"limit": 0}, "limit must be"),
        ({"max_memory_gib": -1.0}, "max_memory_gib"),
    ]:
        with pytest.raises(ValueError, match=match):
            _cfg(onevision_dir, tmp_path, **kw)


def test_run_returns_a_typed_result(onevision_dir, model, tmp_path):
    result = run(_cfg(onevision_dir, tmp_path / "r"), model=model)
    assert (result.totals.scored, result.totals.skipped, result.totals.already) == (4, 0, 0)
    assert result.report is not None and result.report.exists()
    df = result.to_pandas()
    assert list(df.index[:2]) == ["clean", "prior"]
    assert set(df.index[2:]) == {"global2/lv", "global2/vt", "global2/vs", "global2/all"}
    _, records = load_results(tmp_path / "r")
    knocked = [r["correct"] for r in records if r["config"] == "global2/vt"]
    assert df.loc["global2/vt", "accuracy"] == pytest.approx(sum(knocked) / len(knocked))
    assert df.loc["global2/vt", "n"] == 4 == result.summary["global2/vt"].n
    assert {r["method"] for r in records} == {"clean", "prior", "knockout"}
    again = run(_cfg(onevision_dir, tmp_path / "r", report=False), model=model)  # resumed: nothing new
    assert (again.counts.scored, again.counts.already, again.report) == (0, 4, None)


def test_nothing_scored_is_an_error_naming_reason_and_flag(onevision_dir, model, tmp_path, capsys, monkeypatch):
    cfg = _cfg(onevision_dir, tmp_path / "n", data="synthetic:0,n=3,frames=6", frames=32)
    with pytest.raises(NothingScoredError, match=r"all 3 samples were skipped.*--frames 6.*--allow-repeat"):
        run(cfg, model=model)
    assert "## Skipped samples" in (tmp_path / "n" / "report.md").read_text()  # the store and report are kept
    with pytest.raises(NothingScoredError):  # a rerun finds only skips in the store: still nothing scored
        run(cfg, model=model)
    with pytest.raises(RunError, match=r"no usable sample.*--frames 6"):
        dry_run(cfg, model=model)
    argv = [
        "run",
        "global2",
        "--model",
        str(onevision_dir),
        "--data",
        "synthetic:0,n=3,frames=6",
        "--out",
        str(tmp_path / "cli"),
        "--quiet",
    ]
    assert main(argv) == 1
    assert "--frames 6" in capsys.readouterr().err
    monkeypatch.setattr("vlens.data.load_dataset", lambda spec, **kw: [])  # e.g. an annotation file with no rows
    with pytest.raises(RunError, match=r"selects no sample.*--duration"):
        run(_cfg(onevision_dir, tmp_path / "e"), model=model)


def test_progress_counter_agrees_with_the_bar(onevision_dir, model, tmp_path, capsys):
    root = fabricate.videomme(tmp_path / "vm", n=3, missing=1)
    cfg = _cfg(onevision_dir, tmp_path / "p", data=f"videomme:{root}", frames=4, progress=True, report=False)
    result = run(cfg, model=model)
    assert (result.counts.scored, result.counts.skipped) == (2, 1)
    last = capsys.readouterr().err.strip().split("\r")[-1]
    assert "3/3" in last and "scored=2" in last and "skipped=1" in last and "already=0" in last, last
    run(cfg, model=model)
    last = capsys.readouterr().err.strip().split("\r")[-1]
    assert "3/3" in last and "scored=0" in last and "already=3" in last, last


def test_dry_run_counts_forwards_flops_and_time_and_writes_nothing(onevision_dir, model, tmp_path, capsys):
    cfg = _cfg(onevision_dir, tmp_path / "d", protocols="global1,global2", data="synthetic:0,n=5")
    est = dry_run(cfg, model=model)
    assert not (tmp_path / "d").exists()
    configs = [c for p in ("global1", "global2") for c in configs_for(p, model.cfg.n_layers)]
    # the layout of the first sample fixes the plan; the engine's plan gives forwards and FLOPs
    inputs = sample_inputs(model, load_dataset("synthetic:0,n=1")[0], 8)
    sweep = engine.plan(configs, inputs.layout, model.cfg.n_layers)
    eng, naive = sweep.flops(model.cfg)
    assert est.forwards_per_sample == 1 + len(sweep.groups)
    clean = P.clean_cost(model, inputs.layout).flops
    assert est.flops_per_sample == pytest.approx(clean + eng - naive / (len(configs) + 1))
    assert est.flops_per_sample < naive  # the engine's saving is in the bill
    assert est.remaining == est.n_samples == 5 and est.measured == 1 and est.seconds_per_sample > 0
    assert est.seconds == pytest.approx(5 * est.seconds_per_sample)
    assert (
        main(
            [
                "run",
                "global2",
                "--model",
                str(onevision_dir),
                "--data",
                "synthetic:0,n=3",
                "--frames",
                "8",
                "--out",
                str(tmp_path / "d2"),
                "--dry-run",
                "--measure",
                "1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "forwards" in out and "FLOPs" in out and "estimated" in out and not (tmp_path / "d2").exists()


class _LetterMargin(P.Protocol):
    """A toy plugged-in protocol: the clean top-two letter margin, one record per sample."""

    method = "margin"

    def names(self):
        return ["margin"]

    def settings(self):
        return {"margin": {"scale": 1.0}}

    def __call__(self, ctx, todo):
        logits = sorted(ctx.clean_score()["letter_logits"], reverse=True)
        return [{"config": "margin", "margin": logits[0] - logits[1]}]


def test_a_plugged_in_protocol_runs_in_the_same_loop(onevision_dir, model, tmp_path):
    registry.register_protocol("margin", lambda config, model, dataset: _LetterMargin())
    try:
        with pytest.raises(ValueError, match="taken"):
            registry.register_protocol("margin", lambda *a: _LetterMargin())
        result = run(_cfg(onevision_dir, tmp_path / "m", protocols="margin,global2", report=False), model=model)
        _, records = load_results(tmp_path / "m")
        margins = {r["sample"]: r for r in records if r["config"] == "margin"}
        cleans = {r["sample"]: r for r in records if r["config"] == "clean"}
        assert len(margins) == 4 and all(r["method"] == "margin" for r in margins.values())
        for s, r in margins.items():
            top = sorted(cleans[s]["letter_logits"], reverse=True)
            assert math.isclose(r["margin"], top[0] - top[1], abs_tol=1e-9)
        assert result.analysis.settings["margin"] == {"scale": 1.0}  # the protocol's settings are in the run key
    finally:
        registry._REGISTRY.pop("margin", None)
