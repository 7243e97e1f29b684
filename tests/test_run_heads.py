"""`vlens run heads` end to end on the tiny OneVision fixture (4 layers × 4 query heads): the
stored maps equal a direct attribution, the verified heads are the largest estimates and equal
exact per-head knockouts, the report draws the layer × head map, resume / shards / record order
give the same report, the analysis' means and agreement, and clear errors for bad options."""

from __future__ import annotations

import math
import random
import shutil
from pathlib import Path

import pytest
import torch
from conftest import run_config

from vlens import knockout as ko
from vlens.cli import main
from vlens.data import load_dataset
from vlens.experiments.analysis import analyse
from vlens.experiments.heads_analysis import summarise_heads
from vlens.experiments.heads_protocol import HeadsError, resolve_specs
from vlens.experiments.runner import sample_inputs
from vlens.experiments.store import load_results
from vlens.figures.report import write_report
from vlens.inputs.prompts import letter_token_ids
from vlens.interventions.attribution_validation import spearman
from vlens.interventions.head_attribution import attribute_heads
from vlens.metrics import score
from vlens.run import RunConfig, dry_run, run

DATA = "synthetic:0,n=3"


pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(onevision_dir, out, **kw) -> RunConfig:
    return run_config(
        onevision_dir,
        out,
        **{"data": DATA, "protocols": "heads", "options": {"heads": {"specs": "lv,vt", "top_k": 3}}, **kw},
    )


@pytest.fixture(scope="module")
def full(onevision_dir, model, tmp_path_factory):
    out = tmp_path_factory.mktemp("heads") / "full"
    argv = ["run", "heads", "--model", str(onevision_dir), "--data", DATA, "--out", str(out), "--frames", "8"]
    assert main([*argv, "--heads-spec", "lv,vt", "--top-k", "3", "--quiet"]) == 0
    return out


def test_records_equal_a_direct_attribution_and_exact_knockouts(full, model):
    settings, records = load_results(full)
    assert settings["heads"] == {"specs": ["lv", "vt"], "top_k": 3, "rank_by": "logit_diff", "readout": "letters"}
    assert {r["config"] for r in records} == {"clean", "heads/lv", "heads/vt"} and len(records) == 9
    sample = load_dataset(DATA)[0]
    assert sample.answer is not None
    inputs = sample_inputs(model, sample, 8)
    letters = letter_token_ids(model.tokenizer, len(sample.options))
    rec = {r["config"]: r for r in records if r["sample"] == sample.id}
    direct = attribute_heads(model, inputs, [ko.LV(), ko.VT()], letters, sample.answer)
    for key, spec in (("lv", ko.LV()), ("vt", ko.VT())):
        r = rec[f"heads/{key}"]
        assert r["method"] == "heads" and r["spec"] == repr(spec)
        assert torch.allclose(torch.tensor(r["estimate"]), direct.map(spec), atol=1e-5)
        assert torch.allclose(torch.tensor(r["estimate_p_correct"]), direct.map(spec, "p_correct"), atol=1e-5)
        # the verified heads are the 3 largest |estimates|, largest first
        assert [(v["layer"], v["head"]) for v in r["verified"]] == direct.top(spec, 3)
        with torch.no_grad():
            clean = score(model(inputs, logits_to_keep=1)[0, -1], letters, sample.answer)
        for v in r["verified"]:
            with torch.no_grad():
                logits = model.run_with_hooks(
                    inputs, fwd_hooks=spec.hooks(inputs, layers=[v["layer"]], heads=[v["head"]])
                )
                knocked = score(logits[0, -1], letters, sample.answer)
            assert v["exact"] == pytest.approx(knocked["logit_diff"] - clean["logit_diff"], abs=1e-4)
            assert v["exact_p_correct"] == pytest.approx(knocked["p_correct"] - clean["p_correct"], abs=1e-5)
            assert v["pred"] == knocked["pred"]


def test_report_draws_the_layer_by_head_map(full):
    report = (full / "report.md").read_text()
    assert "## Heads" in report and "![heads](heads.png)" in report and (full / "heads.png").stat().st_size > 0
    section = report.split("## Heads")[1]
    assert section.index("### LV-K (`heads/lv`)") < section.index("### VT-K (`heads/vt`)")  # the run's order
    assert "3 samples, top 3 heads verified per sample" in section
    assert "over the 9 verified (sample, head) pairs" in section
    assert "| configuration |" in report and "heads/lv |" not in report.split("## Heads")[0]


def test_resume_shards_and_record_order_give_the_same_report(full, onevision_dir, model, tmp_path):
    expected = (full / "report.md").read_text()
    resumed = tmp_path / "resumed"
    first = run(_cfg(onevision_dir, resumed, limit=1, report=False), model=model)
    assert first.totals.scored == 1
    again = run(_cfg(onevision_dir, resumed), model=model)
    assert (again.totals.scored, again.totals.already) == (2, 1)
    assert (resumed / "report.md").read_text() == expected
    _, a = load_results(full)
    _, b = load_results(resumed)
    key = lambda r: (r["sample"], r["config"])
    strip = lambda r: {k: v for k, v in r.items() if k != "seconds"}
    assert sorted(map(strip, a), key=key) == sorted(map(strip, b), key=key)
    sharded = tmp_path / "sharded"
    for i in range(2):
        run(_cfg(onevision_dir, sharded, shard=(i, 2), report=i == 1), model=model)
    assert (sharded / "report.md").read_text() == expected
    shuffled = tmp_path / "shuffled"
    shutil.copytree(full, shuffled)
    lines = (shuffled / "results.jsonl").read_text().splitlines(keepends=True)
    random.Random(0).shuffle(lines)
    (shuffled / "results.jsonl").write_text("".join(lines))
    assert write_report(shuffled).read_text() == expected
    assert run(_cfg(onevision_dir, resumed), model=model).totals.already == 3  # nothing left to do
    with pytest.raises(Exception, match="settings"):  # another K is another run
        run(_cfg(onevision_dir, resumed, options={"heads": {"specs": "lv,vt", "top_k": 2}}), model=model)


def test_every_head_verified_gives_whole_map_agreement(onevision_dir, model, tmp_path):
    out = tmp_path / "all"
    run(_cfg(onevision_dir, out, limit=2, options={"heads": {"specs": "vs", "top_k": 16}}), model=model)
    s = analyse(out).heads["heads/vs"]
    assert int(s.n_verified.min()) == 2 and s.top_k == 16
    a = s.agreement["logit_diff"]
    assert a["n_pairs"] == 32 and a["map_top_k_overlap"] >= 0.6 and a["map_spearman"] >= 0.8
    # the whole-map agreement is the agreement of the two mean maps
    assert a["map_spearman"] == pytest.approx(
        spearman(s.estimate["logit_diff"].flatten().tolist(), s.exact["logit_diff"].flatten().tolist())
    )
    assert torch.allclose(s.estimate_verified["logit_diff"], s.estimate["logit_diff"])
    # each sample's largest exact change among its 5 largest estimates, counted by hand
    _, records = load_results(out)
    hits = 0
    for r in (r for r in records if r["config"] == "heads/vs"):
        best = max(r["verified"], key=lambda v: abs(v["exact"]))
        est = torch.tensor(r["estimate"]).abs().flatten()
        hits += best["layer"] * 4 + best["head"] in est.argsort(descending=True)[:5].tolist()
    assert a["top1_in_top_k"] == pytest.approx(hits / 2)
    assert "the largest exact change of a sample among its top-5 estimates" in (out / "report.md").read_text()


def test_summarise_heads_means_and_counts():
    gen = torch.Generator().manual_seed(0)
    records, est, ex = [], torch.randn(3, 2, 2, generator=gen), torch.randn(3, 2, 2, generator=gen)
    for i in range(3):
        cells = [(0, 1), (1, i % 2)]
        records.append(
            {
                "sample": f"s{i}",
                "config": "heads/lv",
                "spec": "LV-K",
                "clean_logit_diff": float(i),
                "clean_p_correct": 0.5,
                "estimate": est[i].tolist(),
                "estimate_p_correct": (est[i] / 10).tolist(),
                "verified": [
                    {
                        "layer": l,
                        "head": h,
                        "estimate": float(est[i, l, h]),
                        "exact": float(ex[i, l, h]),
                        "estimate_p_correct": float(est[i, l, h] / 10),
                        "exact_p_correct": float(ex[i, l, h] / 10),
                    }
                    for l, h in cells
                ],
            }
        )
    s = summarise_heads(records)["heads/lv"]
    assert s.n == 3 and s.clean_logit_diff == pytest.approx(1.0)
    assert torch.allclose(s.estimate["logit_diff"], est.mean(0), atol=1e-6)
    assert s.n_verified.tolist() == [[0, 3], [2, 1]]
    assert math.isnan(float(s.exact["logit_diff"][0, 0]))
    assert float(s.exact["logit_diff"][0, 1]) == pytest.approx(float(ex[:, 0, 1].mean()), abs=1e-6)
    assert float(s.exact["logit_diff"][1, 0]) == pytest.approx(float(ex[[0, 2], 1, 0].mean()), abs=1e-6)
    assert s.agreement["logit_diff"]["n_pairs"] == 6 and "map_spearman" not in s.agreement["logit_diff"]
    ranked = s.ranked()
    assert [abs(r.estimate) for r in ranked] == sorted((abs(r.estimate) for r in ranked), reverse=True)


def test_dry_run_counts_the_heads_forwards(onevision_dir, model, tmp_path):
    bill = dry_run(_cfg(onevision_dir, tmp_path / "dry"), model=model, measure=1)
    assert not (tmp_path / "dry").exists()
    assert bill.records_per_sample == 3 and bill.forwards_per_sample == 1 + 3 + 2 * (1 + 3)


def test_bad_heads_options_are_clear_errors(onevision_dir, model, tmp_path, capsys):
    with pytest.raises(HeadsError, match=r"--top-k must be an integer ≥ 1.*got 0"):
        _cfg(onevision_dir, tmp_path, options={"heads": {"top_k": 0}})
    with pytest.raises(HeadsError, match="--top-k must be an integer"):
        _cfg(onevision_dir, tmp_path, options={"heads": {"top_k": 2.5}})
    with pytest.raises(HeadsError, match=r"--heads-spec: unknown knockout 'lx'; known: lv, vt, vs"):
        _cfg(onevision_dir, tmp_path, options={"heads": {"specs": "lv,lx"}})
    with pytest.raises(HeadsError, match="twice"):
        resolve_specs("lv,LV-K")
    with pytest.raises(HeadsError, match="selects nothing"):
        resolve_specs(",")
    with pytest.raises(HeadsError, match="unknown heads option"):
        _cfg(onevision_dir, tmp_path, options={"heads": {"topk": 3}})
    # the head count is known once the model is: 4 layers × 4 query heads = 16
    with pytest.raises(HeadsError, match=r"--top-k=17 is out of range: the model has 4 layers × 4 query heads = 16"):
        run(_cfg(onevision_dir, tmp_path / "k", options={"heads": {"top_k": 17}}), model=model)
    argv = ["run", "heads", "--model", str(onevision_dir), "--data", DATA, "--out", str(tmp_path / "c"), "--quiet"]
    assert main([*argv, "--top-k", "17"]) == 2
    assert "--top-k=17 is out of range" in capsys.readouterr().err
    assert main([*argv, "--top-k", "-1"]) == 2
    assert "--top-k must be an integer ≥ 1" in capsys.readouterr().err
    assert main([*argv, "--heads-spec", "lv,nope"]) == 2
    assert "unknown knockout 'nope'" in capsys.readouterr().err
    argv[1] = "global2"
    assert main([*argv, "--top-k", "3"]) == 2
    assert "add `heads` to the protocols" in capsys.readouterr().err


def test_a_sample_without_an_answer_is_skipped_with_the_reason(model):
    import dataclasses

    from vlens.experiments.heads_protocol import HeadsProtocol
    from vlens.experiments.runner import SampleContext

    sample = dataclasses.replace(load_dataset(DATA)[0], answer=None)
    inputs = sample_inputs(model, sample, 8)
    ctx = SampleContext(model, sample, 0, [sample], 8, False, inputs, model.answer_letter_ids(len(sample.options)))
    proto = HeadsProtocol(model.cfg.n_layers, model.cfg.n_heads, specs="lv,vs", top_k=2)
    records = proto(ctx, proto.names())
    assert [r["config"] for r in records] == ["heads/lv", "heads/vs"]
    assert all("no answer key" in r["skipped"] for r in records)


@pytest.mark.parametrize("name", ["patching", "attribution"])
def test_patching_and_attribution_skip_a_sample_without_an_answer_with_the_reason(model, name):
    import dataclasses

    from vlens.experiments.registry import build_protocols
    from vlens.experiments.runner import SampleContext

    samples = load_dataset(DATA)
    sample = dataclasses.replace(samples[0], answer=None)
    inputs = sample_inputs(model, sample, 8)
    ctx = SampleContext(model, sample, 0, samples, 8, False, inputs, model.answer_letter_ids(len(sample.options)))
    (proto,) = build_protocols(
        RunConfig(model=Path("unused"), data=DATA, out=Path("unused"), protocols=(name,)), model, samples
    )
    records = proto(ctx, proto.names())
    assert [r["config"] for r in records] == proto.names()
    assert all("no answer key" in r["skipped"] for r in records)
