"""`vlens run flow` end to end on the tiny OneVision fixture: records stored and equal to a direct
recomputation, the report's table and figure, resume / shards / record order give the same report,
the dry run's bill, and clear errors for bad options."""

from __future__ import annotations

import random
import shutil

import pytest
import torch
from conftest import run_config

from vlens.cli import main
from vlens.data import load_dataset
from vlens.experiments.flow_protocol import FlowError, FlowProtocol
from vlens.experiments.runner import sample_inputs
from vlens.experiments.store import load_results
from vlens.inputs.prompts import letter_token_ids
from vlens.inputs.roles import with_roles
from vlens.interventions.flow import (
    attention_flow,
    effective_pathway_hooks,
    flow_specs,
    flow_window,
    key_groups,
)
from vlens.interventions.sweep import plan
from vlens.metrics import score
from vlens.run import RunConfig, dry_run, run

DATA = "synthetic:0,n=3"
CHOSEN = "vql-to-ql,last<-true_option,effective_pathway,attention_flow"


pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(onevision_dir, out, **kw) -> RunConfig:
    return run_config(
        onevision_dir,
        out,
        **{"data": DATA, "protocols": "flow", "options": {"flow": {"window": 3, "protocols": CHOSEN}}, **kw},
    )


@pytest.fixture(scope="module")
def full(onevision_dir, model, tmp_path_factory):
    out = tmp_path_factory.mktemp("flow") / "full"
    rc = main(
        [
            "run",
            "flow",
            "--model",
            str(onevision_dir),
            "--data",
            DATA,
            "--out",
            str(out),
            "--frames",
            "8",
            "--flow-window",
            "3",
            "--flow-protocols",
            CHOSEN,
            "--quiet",
        ]
    )
    assert rc == 0
    return out


def test_records_report_table_and_figure(full, model):
    _, records = load_results(full)
    names = {r["config"] for r in records}
    L = model.cfg.n_layers
    pathways = ["question+options<-video", "last<-video", "last<-question+options", "last<-last", "last<-true_option"]
    assert names == {"clean", "flow/effective_pathway", "flow/attention"} | {
        f"flow/{p}/{l}" for p in pathways for l in range(L)
    }
    assert len(records) == 3 * len(names)
    report = (full / "report.md").read_text()
    assert (
        "## map-the-flow's protocols" in report
        and "![flow](flow.png)" in report
        and (full / "flow.png").stat().st_size > 0
    )
    assert "| last ← video | 0 | 0–1 | 3 |" in report  # centre 0: the window clipped to layers 0–1
    assert "### Effective pathway" in report and "| configuration |" in report
    assert "flow/last" not in report.split("## map-the-flow's protocols")[0]  # flow rows only in their section


def test_records_equal_a_direct_recomputation(full, model):
    _, records = load_results(full)
    sample = load_dataset(DATA)[0]
    inputs = sample_inputs(model, sample, 8)
    inputs = with_roles(model, inputs, sample.question, list(sample.options), answer=sample.answer)
    letters = letter_token_ids(model.tokenizer, len(sample.options))
    rec = {r["config"]: r for r in records if r["sample"] == sample.id}
    L = model.cfg.n_layers
    specs = flow_specs()
    with torch.no_grad():
        for name, spec, centre in [
            ("last<-video", specs["last<-video"], 1),
            ("last<-true_option", specs["last<-true_option"], 3),
            ("question+options<-video", specs["question+options<-video"], 0),
        ]:
            logits = model.run_with_hooks(inputs, fwd_hooks=spec.hooks(inputs, layers=flow_window(centre, 3, L)))[0, -1]
            r, s = rec[f"flow/{name}/{centre}"], score(logits, letters, sample.answer)
            assert r["layers"] == list(flow_window(centre, 3, L).resolve(L))
            assert max(abs(a - b) for a, b in zip(r["letter_logits"], s["letter_logits"])) <= 1e-4, name
            assert r["p_correct_vocab"] == pytest.approx(s["p_correct_vocab"], abs=1e-5) and r["pred"] == s["pred"]
        logits = model.run_with_hooks(inputs, fwd_hooks=effective_pathway_hooks(inputs, L))[0, -1]
        s = score(logits, letters, sample.answer)
        assert (
            max(abs(a - b) for a, b in zip(rec["flow/effective_pathway"]["letter_logits"], s["letter_logits"])) <= 1e-4
        )
        assert 0 < rec["flow/effective_pathway"]["edges_kept"] < 1
        # the attention-flow record is the cached pattern reduced by hand
        _, cache = model.run_with_cache(inputs, names_filter=lambda n: n.endswith("hook_pattern"))
    r = rec["flow/attention"]
    groups, index = key_groups(inputs.layout)
    assert r["groups"] == groups and r["sources"] == ["last", "question"]
    question = torch.tensor([x == "question" for x in inputs.layout.role])
    for l in range(L):
        p = cache[f"blocks.{l}.attn.hook_pattern"][0].mean(0)
        for g in range(len(groups)):
            keys = torch.tensor([i == g for i in index])
            assert r["mass"][l][0][g] == pytest.approx(float(p[-1, keys].sum()), abs=1e-5)
            assert r["mass"][l][1][g] == pytest.approx(float(p[question][:, keys].sum(-1).mean()), abs=1e-5)
    _, direct = attention_flow(model, inputs)
    assert torch.allclose(torch.tensor(r["mass"]), direct, atol=1e-6)


def test_resume_shards_and_record_order_give_the_same_report(full, onevision_dir, model, tmp_path):
    expected = (full / "report.md").read_text()
    resumed = tmp_path / "resumed"
    run(_cfg(onevision_dir, resumed, limit=1, report=False), model=model)  # a partial store (limit is not in the key)
    run(_cfg(onevision_dir, resumed), model=model)
    assert (resumed / "report.md").read_text() == expected
    sharded = tmp_path / "sharded"
    for i in range(2):
        run(_cfg(onevision_dir, sharded, shard=(i, 2), report=i == 1), model=model)
    assert len(list(sharded.glob("results.shard-*.jsonl"))) == 2
    assert (sharded / "report.md").read_text() == expected
    shuffled = tmp_path / "shuffled"
    shutil.copytree(full, shuffled)
    lines = (shuffled / "results.jsonl").read_text().splitlines(keepends=True)
    random.Random(0).shuffle(lines)
    (shuffled / "results.jsonl").write_text("".join(lines))
    from vlens.figures.report import write_report

    assert write_report(shuffled).read_text() == expected


def test_dry_run_counts_the_flow_forwards(onevision_dir, model, tmp_path):
    cfg = _cfg(onevision_dir, tmp_path / "dry")
    bill = dry_run(cfg, model=model, measure=1)
    assert not (tmp_path / "dry").exists()
    proto = FlowProtocol(model.cfg.n_layers, window=3, protocols=CHOSEN)
    sample = load_dataset(DATA)[0]
    inputs = with_roles(
        model, sample_inputs(model, sample, 8), sample.question, list(sample.options), answer=sample.answer
    )
    groups = plan(proto.configs, inputs.layout, model.cfg.n_layers).groups
    assert (
        bill.forwards_per_sample == 1 + len(groups) + 2
    )  # clean, the sweep's batches, effective pathway, attention flow
    assert bill.records_per_sample == 1 + len(proto.names()) and bill.flops_per_sample > 0


def test_bad_flow_options_are_clear_errors(onevision_dir, model, tmp_path, capsys):
    with pytest.raises(FlowError, match=r"unknown flow protocol.*last<-vidoe"):
        _cfg(onevision_dir, tmp_path, options={"flow": {"protocols": "last<-vidoe"}})
    with pytest.raises(FlowError, match="--flow-window must be an integer ≥ 1"):
        _cfg(onevision_dir, tmp_path, options={"flow": {"window": 0}})
    with pytest.raises(FlowError, match="unknown flow option"):
        _cfg(onevision_dir, tmp_path, options={"flow": {"windw": 3}})
    with pytest.raises(FlowError, match="between 1 and the model's 4 layers"):  # the depth is known once the model is
        run(_cfg(onevision_dir, tmp_path / "w", options={"flow": {"window": 9}}), model=model)
    assert (
        main(
            [
                "run",
                "flow",
                "--model",
                str(onevision_dir),
                "--data",
                DATA,
                "--out",
                str(tmp_path / "c"),
                "--flow-protocols",
                "nope",
            ]
        )
        == 2
    )
    assert "unknown flow protocol" in capsys.readouterr().err
    assert (
        main(
            [
                "run",
                "global2",
                "--model",
                str(onevision_dir),
                "--data",
                DATA,
                "--out",
                str(tmp_path / "c"),
                "--flow-window",
                "3",
            ]
        )
        == 2
    )
    assert "add `flow` to the protocols" in capsys.readouterr().err
    # map-the-flow's own default given explicitly is still a flow option
    assert (
        main(
            [
                "run",
                "global2",
                "--model",
                str(onevision_dir),
                "--data",
                DATA,
                "--out",
                str(tmp_path / "c"),
                "--flow-window",
                "9",
            ]
        )
        == 2
    )
    assert "add `flow` to the protocols" in capsys.readouterr().err


def test_scaled_effective_ranges_that_are_empty_are_refused():
    from vlens.interventions.flow import effective_ranges

    assert effective_ranges(32) == {
        "cross_frame": (5, 15),
        "question+options<-video": (5, 20),
        "last<-question+options": (15, 25),
    }
    with pytest.raises(ValueError, match=r"scaled to 1 is \[0, 0\].*effective_ranges"):
        effective_ranges(1)  # cross-frame's 5-15 of 32 rounds to an empty range
    assert effective_ranges(
        1, {"cross_frame": [0, 1], "question+options<-video": [0, 1], "last<-question+options": [0, 1]}
    )


def test_attention_flow_of_samples_with_other_groups_is_left_out_with_a_warning():
    from vlens.experiments.analysis import aggregate_attention_flow

    rec = lambda s, groups, m: {
        "config": "flow/attention",
        "sample": s,
        "groups": groups,
        "sources": ["last"],
        "mass": [[[m] * len(groups)]],
    }
    rows = [rec("a", ["frame 0", "frame 1"], 0.25), rec("b", ["frame 0", "frame 1"], 0.75), rec("c", ["frame 0"], 1.0)]
    with pytest.warns(UserWarning, match="1 of 3 samples"):
        out = aggregate_attention_flow(rows)
    assert out.n == 2 and out.mass.shape == (1, 1, 2) and torch.allclose(out.mass, torch.full((1, 1, 2), 0.5))


def test_a_sample_without_an_answer_key_skips_only_the_option_pathways(model):
    import dataclasses

    from vlens.experiments.runner import SampleContext

    sample = dataclasses.replace(load_dataset(DATA)[0], answer=None)
    inputs = sample_inputs(model, sample, 8)
    ctx = SampleContext(
        model, sample, 0, [sample], 8, False, inputs, letter_token_ids(model.tokenizer, len(sample.options))
    )
    proto = FlowProtocol(model.cfg.n_layers, window=3, protocols="last<-video,last<-true_option")
    records = {r["config"]: r for r in proto(ctx, proto.names())}
    assert set(records) == set(proto.names())
    assert all("answer key" in records[f"flow/last<-true_option/{l}"]["skipped"] for l in range(model.cfg.n_layers))
    assert all(
        "pred" in records[f"flow/last<-video/{l}"] and "correct" not in records[f"flow/last<-video/{l}"]
        for l in range(model.cfg.n_layers)
    )


def test_pathway_names_as_the_report_writes_them_are_accepted():
    from vlens.experiments.flow_protocol import resolve_names

    assert resolve_names("last ← video, question+options ← video") == ["question+options<-video", "last<-video"]
    assert resolve_names(["last<-video"]) == ["last<-video"]
