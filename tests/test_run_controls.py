"""`vlens run --controls N --seed S`: every knockout configuration beside its random-edge controls,
stored in the same resumable store, and the report's spec − control with a paired bootstrap CI."""

from __future__ import annotations

import math
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vlens import knockout as ko
from vlens.arguments import ArgumentError
from vlens.cli import main
from vlens.data import load_dataset
from vlens.experiments.analysis import aggregate_controls, analyse
from vlens.experiments.runner import sample_inputs
from vlens.experiments.store import StoreError, load_results, run_key
from vlens.experiments.study import configs_for, control_name, parse_control, with_controls
from vlens.interventions.controls import RandomEdges
from vlens.metrics import bootstrap_mean_ci, score
from vlens.run import RunConfig, run

DATA = "synthetic:0,n=4"


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models on a shared 2-core machine: one thread each is several times faster than two."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _cfg(onevision_dir, out, **kw) -> RunConfig:
    base = dict(model=onevision_dir, data=DATA, out=out, protocols="global1,global2", frames=8, controls=2, seed=3)
    return RunConfig(**{**base, "progress": False, **kw})


@pytest.fixture(scope="module")
def controlled(onevision_dir, model, tmp_path_factory):
    """One run with two controls (seeds 3, 4) of every global1 and global2 configuration."""
    out = tmp_path_factory.mktemp("controls") / "run"
    return run(_cfg(onevision_dir, out), model=model)


def _direct(model, names_specs, sample_index: int = 0) -> dict[str, dict]:
    """Score one sample's configurations by running each spec's hooks directly (no sweep engine)."""
    sample = list(load_dataset(DATA))[sample_index]
    inputs = sample_inputs(model, sample, 8)
    letters = model.answer_letter_ids(len(sample.options))
    out = {}
    with torch.no_grad():
        for name, spec, layers in names_specs:
            hooks = [] if spec is None else spec.hooks(inputs, layers=layers)
            out[name] = score(model.run_with_hooks(inputs, fwd_hooks=hooks)[0, -1], letters, sample.answer)
    return out


def test_control_rows_equal_random_edges_run_directly(controlled, model):
    _, records = load_results(controlled.out)
    L = model.cfg.n_layers
    configs = configs_for("global1", L) + configs_for("global2", L)
    names = {r["config"] for r in records}
    assert names == {"clean", "prior", *(c.name for c in configs)} | {
        control_name(c.name, s) for c in configs for s in (3, 4)
    }
    assert controlled.analysis.settings["controls"] == {"n": 2, "seeds": [3, 4]}
    sample = next(iter(load_dataset(DATA))).id
    stored = {r["config"]: r for r in records if r["sample"] == sample}
    cases = [
        ("control/global1/from2/seed3", RandomEdges(ko.LV(), seed=3), ko.from_layer(2)),
        ("control/global2/vt/seed4", RandomEdges(ko.VT(), seed=4), ko.all_layers()),
        ("control/global2/all/seed3", RandomEdges(ko.LV() | ko.VT() | ko.VS(), seed=3), ko.all_layers()),
    ]
    direct = _direct(model, cases)
    for name, spec, layers in cases:
        r = stored[name]
        assert r["spec"] == repr(spec) and r["layers"] == list(layers.resolve(L))
        assert r["pred"] == direct[name]["pred"]
        assert r["letter_logits"] == pytest.approx(direct[name]["letter_logits"], abs=1e-4)
        assert r["logit_diff"] == pytest.approx(direct[name]["logit_diff"], abs=1e-4)
    # a control is not its spec: the random edges give other logits than LV-K's own
    assert stored["control/global2/lv/seed3"]["letter_logits"] != stored["global2/lv"]["letter_logits"]


def test_difference_and_ci_equal_a_direct_computation(controlled, model):
    """Every sample rerun directly (clean, LV-K, its two controls): the report's numbers follow."""
    n = len(list(load_dataset(DATA)))
    cases = [
        ("clean", None, None),
        ("global2/lv", ko.LV(), ko.all_layers()),
        *((f"s{s}", RandomEdges(ko.LV(), seed=s), ko.all_layers()) for s in (3, 4)),
    ]
    per_sample = [_direct(model, cases, i) for i in range(n)]
    ids = [s.id for s in load_dataset(DATA)]
    order = sorted(range(n), key=lambda i: ids[i])  # the analysis orders samples by id
    c = controlled.analysis.controls["global2/lv"]
    assert (c.n, c.seeds, c.layers) == (n, [3, 4], list(range(model.cfg.n_layers)))
    key = f"{run_key(controlled.analysis.settings)}|global2/lv|control"
    for field, diff, ci, effect, control in [
        ("correct", c.difference, c.difference_ci, c.effect, c.control_effect),
        ("logit_diff", c.logit_difference, c.logit_difference_ci, c.logit_effect, c.logit_control_effect),
    ]:
        d = [
            float(per_sample[i]["global2/lv"][field])
            - (float(per_sample[i]["s3"][field]) + float(per_sample[i]["s4"][field])) / 2
            for i in order
        ]
        assert diff == pytest.approx(sum(d) / n, abs=1e-4)
        assert diff == pytest.approx(effect - control, abs=1e-9)
        if field == "correct":  # exact: the letters agree, so the per-sample values are the same numbers
            assert ci == bootstrap_mean_ci(d, key)
        else:
            assert ci == pytest.approx(bootstrap_mean_ci(d, key), abs=1e-4)
    acc = [float(per_sample[i]["global2/lv"]["correct"]) for i in range(n)]
    assert c.accuracy == pytest.approx(sum(acc) / n)
    report = controlled.report.read_text()
    assert "## Random-edge controls" in report and "| global2/lv | 0–3 | 4 |" in report
    assert "| control/" not in report  # control rows are in the controls section, not the main table


def test_resume_after_a_partial_run_and_settings_mismatch(onevision_dir, model, tmp_path):
    out = tmp_path / "resumed"
    first = run(_cfg(onevision_dir, out, protocols="global2", limit=2, report=False), model=model)
    assert first.counts.scored == 2 and set(first.analysis.controls) == {
        "global2/all",
        "global2/lv",
        "global2/vs",
        "global2/vt",
    }
    again = run(_cfg(onevision_dir, out, protocols="global2", report=False), model=model)
    assert (again.counts.scored, again.counts.already) == (2, 2)
    fresh = run(_cfg(onevision_dir, tmp_path / "fresh", protocols="global2", report=False), model=model)
    a = {(r["sample"], r["config"]): r for r in load_results(out)[1]}
    b = {(r["sample"], r["config"]): r for r in load_results(tmp_path / "fresh")[1]}
    assert a.keys() == b.keys() and len(a) == 4 * (2 + 4 + 8)
    for k in a:
        assert a[k]["pred"] == b[k]["pred"]
    assert again.analysis.controls == fresh.analysis.controls  # same settings: the same bootstrap too
    for kw, match in [
        ({"controls": 3}, r"controls\.n: 2 there, 3 now"),
        ({"seed": 0}, r"controls\.seeds: \[3, 4\] there, \[0, 1\] now"),
        ({"controls": 0, "seed": 0}, "controls: .* there, None now"),
    ]:
        with pytest.raises(StoreError, match=match):
            run(_cfg(onevision_dir, out, protocols="global2", report=False, **kw), model=model)


def test_bad_controls_are_refused_by_name(onevision_dir, tmp_path, capsys):
    for kw, match in [
        ({"controls": -1}, r"controls \(--controls\)=-1 is negative"),
        ({"controls": 1.5}, r"controls \(--controls\) must be an integer count.*got 1.5"),
        ({"controls": "2"}, r"controls \(--controls\) must be an integer"),
        ({"controls": True}, r"controls \(--controls\) must be an integer.*bool"),
        ({"seed": -2}, r"seed \(--seed\)=-2 is negative"),
        ({"controls": 0, "seed": 5}, r"seed \(--seed 5\) is the random-edge controls' seed: add controls"),
        ({"protocols": "lens"}, r"--controls 2.*lens has none: add one"),
    ]:
        with pytest.raises(ArgumentError, match=match):
            _cfg(onevision_dir, tmp_path, **kw)
    base = ["run", "global2", "--model", str(onevision_dir), "--data", DATA, "--out", str(tmp_path / "x"), "--quiet"]
    for bad in ("-1", "x", "1.5"):
        with pytest.raises(SystemExit):
            main([*base, "--controls", bad])
        assert f"--controls takes a whole number ≥ 0 (0, 1, 2, …); got '{bad}'" in capsys.readouterr().err
    assert main([*base, "--seed", "1"]) == 2
    assert "add controls (--controls N)" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # refused before anything was written


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    protocol=st.sampled_from(["global1", "global2", "windows"]),
    n=st.integers(0, 3),
)
def test_control_names_pair_with_their_configuration(seed, protocol, n):
    configs = configs_for(protocol, 6, window=2)
    both = with_controls(configs, n, seed)
    assert both[: len(configs)] == configs and len(both) == len(configs) * (1 + n)
    for c in both[len(configs) :]:
        base, s = parse_control(c.name)
        spec = next(x for x in configs if x.name == base)
        assert c.spec == RandomEdges(spec.spec, seed=s) and c.layers == spec.layers and seed <= s < seed + n
    assert all(parse_control(c.name) is None for c in configs)
    assert parse_control("control/x/seedy") is None and parse_control("control//seed1") is None


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_aggregate_controls_is_the_mean_of_per_sample_differences(data):
    """On fabricated records (any correctness, logit diffs, missing controls, any record order): the
    difference is the mean over the samples that have every record of knocked − mean control."""
    n = data.draw(st.integers(1, 8))
    seeds = data.draw(st.lists(st.integers(0, 9), min_size=1, max_size=3, unique=True))
    records = [
        {"sample": f"s{s}", "config": c, "correct": data.draw(st.booleans()), "logit_diff": data.draw(st.floats(-5, 5))}
        for s in range(n)
        for c in ("clean", "g/lv", *(control_name("g/lv", k) for k in seeds))
    ]
    drop = data.draw(st.sets(st.integers(0, len(records) - 1), max_size=2))
    records = [r for i, r in enumerate(records) if i not in drop]
    random.Random(data.draw(st.integers(0, 99))).shuffle(records)
    by = {(r["sample"], r["config"]): r for r in records}
    found_seeds = sorted({pair[1] for r in records if (pair := parse_control(r["config"])) is not None})
    names = ["clean", "g/lv", *(control_name("g/lv", k) for k in found_seeds)]
    present = sorted({r["sample"] for r in records if all((r["sample"], c) in by for c in names)})
    out = aggregate_controls(records, "key")
    if not present or not found_seeds:
        assert out == {}
        return
    c = out["g/lv"]
    assert c.n == len(present) and c.seeds == found_seeds
    for field, diff in (("correct", c.difference), ("logit_diff", c.logit_difference)):
        ctrl = [sum(by[(s, control_name("g/lv", k))][field] for k in found_seeds) / len(found_seeds) for s in present]
        d = [by[(s, "g/lv")][field] - m for s, m in zip(present, ctrl)]
        assert math.isclose(diff, sum(d) / len(d), abs_tol=1e-9)
    assert aggregate_controls(list(reversed(records)), "key") == out  # the order of records does not matter


def test_analyse_reads_the_controls_of_a_run_directory(controlled):
    a = analyse(controlled.out)
    assert a.controls == controlled.analysis.controls
    assert set(a.controls) == {c for c in controlled.summary if c.startswith("global")}
    df = a.controls_to_pandas()
    c = a.controls["global1/from1"]
    assert list(df.index) == list(a.controls) and df.loc["global1/from1", "seeds"] == [3, 4]
    assert (df.loc["global1/from1", "difference"], df.loc["global1/from1", "difference_lo"]) == (
        c.difference,
        c.difference_ci[0],
    )
    assert df.loc["global1/from1", "logit_control_effect_hi"] == c.logit_control_effect_ci[1]
