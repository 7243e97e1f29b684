"""`vlens run open` end to end on the tiny OneVision fixture: open-ended answers generated clean and
under knockouts (at every step) beside multiple choice, records equal a direct recomputation,
resume gives the same report, sampled runs reproduce, a user scoring function, clear errors."""

from __future__ import annotations

import pytest
from conftest import run_config

from vlens.cli import main
from vlens.data import Sample, load_dataset
from vlens.experiments.open_protocol import OpenEndedError, OpenProtocol, references
from vlens.experiments.runner import SampleContext
from vlens.experiments.store import load_results
from vlens.experiments.study import configs_for
from vlens.metrics import match_answer, seed_from
from vlens.run import RunConfig, dry_run, run

DATA = "synthetic:0,n=3"


pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(onevision_dir, out, **kw) -> RunConfig:
    return run_config(
        onevision_dir,
        out,
        **{
            "data": DATA,
            "protocols": "global2,open",
            "options": {"open": {"max_new_tokens": 3, "match": "contains"}},
            **kw,
        },
    )


@pytest.fixture(scope="module")
def full(onevision_dir, model, tmp_path_factory):
    out = tmp_path_factory.mktemp("open") / "full"
    argv = ["run", "global2,open", "--model", str(onevision_dir), "--data", DATA, "--out", str(out), "--frames", "8"]
    assert main([*argv, "--open", "max_new_tokens=3,match=contains", "--quiet"]) == 0
    return out


def _question_inputs(model, sample):
    return model.to_inputs(sample.video, sample.question, n_frames=8, fps=sample.fps)


def test_records_sit_beside_multiple_choice_and_equal_a_direct_generation(full, model):
    settings, records = load_results(full)
    assert settings["open"]["match"] == "contains" and settings["open"]["decoding"] == "greedy"
    names = {r["config"] for r in records}
    knockouts = {c.name for c in configs_for("global2", model.cfg.n_layers)}
    assert names == {"clean", "prior", "open/clean"} | knockouts | {f"open/{k}" for k in knockouts}
    sample = load_dataset(DATA)[1]
    assert sample.answer is not None
    rec = {r["config"]: r for r in records if r["sample"] == sample.id}
    inputs = _question_inputs(model, sample)
    for c in configs_for("global2", model.cfg.n_layers):
        tokens = model.generate(inputs, 3, fwd_hooks=c.spec.hooks(inputs, layers=c.layers))[0].tolist()
        r = rec[f"open/{c.name}"]
        assert r["tokens"] == tokens[: len(r["tokens"])] and r["method"] == "open"
        assert r["text"] == model.tokenizer.decode(r["tokens"], skip_special_tokens=True)
        assert r["references"] == [sample.options[sample.answer]]
        assert r["correct"] == match_answer(r["text"], r["references"], "contains")
        assert r["baseline"] == "open/clean" and r["layers"] == list(range(model.cfg.n_layers))
    clean = model.generate(inputs, 3)[0].tolist()
    assert rec["open/clean"]["tokens"] == clean[: len(rec["open/clean"]["tokens"])]
    assert any(rec[f"open/{k}"]["tokens"] != rec["open/clean"]["tokens"] for k in knockouts), "knockouts change text"


def test_report_and_summary_put_open_ended_beside_multiple_choice(full):
    from vlens.experiments.analysis import analyse

    a = analyse(full)
    _, records = load_results(full)
    for name in ("open/clean", "open/global2/lv"):
        vals = [r["correct"] for r in records if r["config"] == name]
        assert a.summary[name].accuracy == pytest.approx(sum(vals) / len(vals)) and a.summary[name].n == 3
    if a.summary["open/clean"].accuracy > 0:  # the ratio divides by the open-ended clean accuracy
        lv = a.summary["open/global2/lv"]
        assert lv.ratio == pytest.approx(lv.accuracy / a.summary["open/clean"].accuracy)
    report = (full / "report.md").read_text()
    section = report.split("## Open-ended answers")[1]
    assert "match `contains`" in section and "| global2/lv |" in section
    assert "| open/" not in report.split("## Open-ended answers")[0]  # open rows only in their section


def test_resume_gives_the_same_records_and_report(full, onevision_dir, model, tmp_path):
    out = tmp_path / "resumed"
    first = run(_cfg(onevision_dir, out, limit=1, report=False), model=model)
    assert first.totals.scored == 1
    second = run(_cfg(onevision_dir, out), model=model)
    assert (second.counts.scored, second.counts.already) == (2, 1)
    key = lambda rs: sorted((r["sample"], r["config"], r.get("text"), r.get("correct")) for r in rs)
    assert key(load_results(out)[1]) == key(load_results(full)[1])
    assert (out / "report.md").read_text() == (full / "report.md").read_text()
    third = run(_cfg(onevision_dir, out, report=False), model=model)
    assert (third.counts.scored, third.counts.already) == (0, 3)


def test_sampled_runs_reproduce_with_one_seed_per_sample(onevision_dir, model, tmp_path):
    opts = {"max_new_tokens": 3, "temperature": 1.5, "top_p": 0.9, "seed": 4, "protocols": ["global2"]}
    texts = []
    for d in ("a", "b"):
        run(_cfg(onevision_dir, tmp_path / d, protocols="open", options={"open": opts}, report=False), model=model)
        texts.append(sorted((r["sample"], r["config"], r.get("text")) for r in load_results(tmp_path / d)[1]))
    assert texts[0] == texts[1]
    settings, records = load_results(tmp_path / "a")
    assert settings["open"]["decoding"] == {"temperature": 1.5, "top_k": 0, "top_p": 0.9, "seed": 4}
    sample = load_dataset(DATA)[0]
    r = next(r for r in records if r["sample"] == sample.id and r["config"] == "open/clean")
    seed = seed_from(f"4|{sample.id}") >> 1
    tokens = model.generate(_question_inputs(model, sample), 3, do_sample=True, temperature=1.5, top_p=0.9, seed=seed)
    assert r["tokens"] == tokens[0].tolist()[: len(r["tokens"])]


def starts_with_same_letter(prediction, refs):
    """A user's scoring function: the first letters agree."""
    return prediction[:1].lower() == refs[0][:1].lower()


def test_a_user_scoring_function_and_the_mc_prompt(onevision_dir, model, tmp_path):
    opts = {"max_new_tokens": 2, "prompt": "mc", "match": starts_with_same_letter}
    result = run(_cfg(onevision_dir, tmp_path / "u", options={"open": opts}, report=False), model=model)
    settings, records = load_results(tmp_path / "u")
    assert settings["open"]["match"] == f"{__name__}.starts_with_same_letter"
    rows = [r for r in records if r["method"] == "open"]
    assert all(r["correct"] == starts_with_same_letter(r["text"], r["references"]) for r in rows)
    sample = load_dataset(DATA)[0]
    assert sample.answer is not None
    letter = "ABCD"[sample.answer]
    assert rows[0]["references"] == [
        letter,
        sample.options[sample.answer],
        f"{letter}. {sample.options[sample.answer]}",
    ]
    assert "open/global2/vt" in result.summary
    est = dry_run(_cfg(onevision_dir, tmp_path / "d", options={"open": opts}), model=model, measure=1)
    assert est.records_per_sample == 1 + 1 + 4 + 1 + 4  # clean, prior, global2 × 4, open/clean, open × 4


def test_a_sample_without_an_answer_key_keeps_the_text_unscored(model):
    s = load_dataset(DATA)[0]
    blank = Sample("blank", s.video, s.question, s.options, None, fps=s.fps)
    assert references(blank, "question") is None
    p = OpenProtocol(model.cfg.n_layers, max_new_tokens=2)
    ctx = SampleContext(model, blank, 0, [blank], 8, False, _question_inputs(model, blank), [0, 1, 2, 3])
    recs = p(ctx, ["open/clean", "open/global2/lv"])
    assert [r["config"] for r in recs] == ["open/clean", "open/global2/lv"]
    assert all("correct" not in r and r["answer"] is None and isinstance(r["text"], str) for r in recs)


@pytest.mark.parametrize(
    "opts, match",
    [
        ({"essay": 1}, r"unknown open option\(s\) \['essay'\]"),
        ({"prompt": "essay"}, "open prompt must be one of question, mc, got 'essay'"),
        ({"match": "fuzzy"}, "match must be one of exact, contains, starts"),
        ({"max_new_tokens": 0}, "max_new_tokens must be an integer ≥ 1, got 0"),
        ({"temperature": -1.0}, "temperature must be a finite number ≥ 0"),
        ({"temperature": 1.0, "top_p": 2.0}, r"top_p must lie in \(0, 1\]"),
        ({"temperature": 1.0, "top_k": -2}, "top_k must be an integer ≥ 0"),
        ({"top_p": 0.5}, "temperature > 0 samples"),
        ({"seed": -1}, "seed must be an integer ≥ 0"),
        ({"protocols": "global9"}, "choose one or more of global1, global2, windows"),
    ],
)
def test_bad_open_options_are_refused_before_anything_loads(onevision_dir, tmp_path, opts, match):
    with pytest.raises(OpenEndedError, match=match):
        _cfg(onevision_dir, tmp_path, options={"open": opts})


def test_bad_open_flags_exit_2_with_the_reason(onevision_dir, tmp_path, capsys):
    argv = ["run", "global2,open", "--model", str(onevision_dir), "--data", DATA, "--out", str(tmp_path / "x")]
    assert main([*argv, "--open", "max_new_tokens"]) == 2
    assert "--open takes key=value pairs" in capsys.readouterr().err
    assert main([*argv, "--open", "top_p=lots"]) == 2
    assert "--open top_p must be a number, got 'lots'" in capsys.readouterr().err
    assert main([*argv[:1], "global2", *argv[2:], "--open", "match=exact"]) == 2
    assert "add `open` to the protocols" in capsys.readouterr().err
