"""Knockout attribution and attribution patching: the estimate is the derivative it claims to be,
tiny knockouts approach the exact change, empty ones give 0, and nothing goes NaN in low precision."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import frames
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vlens import HookedVideoLLM
from vlens import knockout as ko
from vlens.arguments import ArgumentError
from vlens.inputs.prompts import mc_question
from vlens.interventions.attribution import (
    AttributionError,
    attribute_knockouts,
    attribute_sample,
)
from vlens.interventions.attribution_patching import attribution_patch
from vlens.interventions.attribution_validation import (
    spearman,
    top_k_overlap,
    verify_top,
)
from vlens.interventions.patching import corrupt, patch_sweep
from vlens.interventions.sweep import SweepConfig, run_sweep
from vlens.metrics import score

LETTERS = [10, 11, 12, 13]  # four token ids of the tiny vocabulary standing in for option letters
ANSWER = 2
SPECS = [ko.LV(), ko.VT(), ko.VS(), ko.LV() | ko.VT() | ko.VS()]
HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@pytest.fixture(scope="module")
def sample(model):
    return model.to_inputs(frames(3, seed=11), mc_question("what moves", ["a", "b", "c", "d"]), n_frames=3)


@pytest.fixture(scope="module")
def attr(model, sample):
    return attribute_knockouts(model, sample, SPECS, LETTERS, ANSWER)


def _letters_with_z_shift(model, inputs, layer: int, shift: torch.Tensor) -> torch.Tensor:
    def hook(z, hook):
        return z + shift

    with torch.no_grad():
        logits = model.run_with_hooks(inputs, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)], logits_to_keep=1)
    return logits[0, -1, LETTERS].double()


def _z(model, inputs, layer: int, hooks=()) -> torch.Tensor:
    name = f"blocks.{layer}.attn.hook_z"
    with torch.no_grad(), model.hooks(list(hooks)):
        _, cache = model.run_with_cache(inputs, names_filter=lambda n: n == name, return_cache_object=False)
    return cache[name]


@settings(max_examples=4, deadline=None, suppress_health_check=HEALTH)
@given(spec=st.sampled_from(SPECS), layer=st.integers(0, 3))
def test_per_layer_estimate_is_the_directional_derivative(model, sample, attr, spec, layer):
    """⟨∂y/∂z_l, z_l^ko − z_l⟩ equals the central difference of y along z_l^ko − z_l."""
    dz = _z(model, sample, layer, spec.hooks(sample, layers=ko.layers([layer]))) - _z(model, sample, layer)
    eps = 1e-2
    up = _letters_with_z_shift(model, sample, layer, eps * dz)
    down = _letters_with_z_shift(model, sample, layer, -eps * dz)
    derivative = (attr.directions.double() @ (up - down)) / (2 * eps)
    est = attr.per_layer[SPECS.index(spec), layer].double()
    assert torch.allclose(est, derivative, rtol=2e-2, atol=2e-4), (est, derivative)


@pytest.mark.parametrize("layer", [0, 3])
def test_tiny_knockout_estimate_approaches_the_exact_change(model, sample, layer):
    """Removing the answer position's least-attended vision key is a small perturbation (|Δz| ≈ 3%
    of |z| here): the estimate must be close to the exact change of every letter logit. (Not equal:
    the random tiny model is curved; the exact limit is test_per_layer_estimate_is_the_directional_derivative.)"""
    name = f"blocks.{layer}.attn.hook_pattern"
    with torch.no_grad():
        _, cache = model.run_with_cache(sample, names_filter=lambda n: n == name, return_cache_object=False)
    vision = sample.layout.positions("video")
    k = int(vision[cache[name][0, :, -1, vision].sum(0).argmin()])

    def one_edge(layout):
        m = torch.zeros(len(layout), len(layout), dtype=torch.bool)
        m[len(layout) - 1, k] = True
        return m

    spec = ko.Custom(one_edge, f"edge{k}")
    a = attribute_knockouts(model, sample, [spec], LETTERS, ANSWER)
    exact = run_sweep(model, sample, [SweepConfig("edge", spec, ko.layers([layer]))])
    rel_exact = (exact["edge"] - exact["clean"])[LETTERS].double()
    rel_exact = rel_exact - rel_exact[ANSWER]
    est = a.letter_delta(spec, ko.layers([layer])).double()
    assert rel_exact.abs().max() > 0  # the edge mattered at all
    assert (est - rel_exact).abs().max() <= 0.15 * rel_exact.abs().max(), (est, rel_exact)


def test_empty_knockout_estimates_exactly_zero(model, sample):
    empty = ko.Custom(lambda layout: torch.zeros(len(layout), len(layout), dtype=torch.bool), "none")
    configs = [SweepConfig("none", empty, ko.all_layers())]
    a = attribute_knockouts(model, sample, [empty], LETTERS, ANSWER)
    assert torch.equal(a.per_layer, torch.zeros_like(a.per_layer))
    rec = attribute_sample(model, sample, configs, LETTERS, ANSWER)
    for field in ("logit_diff", "p_correct", "logit_diff_linear", "p_correct_linear"):
        base = rec["clean"][field.replace("_linear", "")]
        assert rec["none"][field] == pytest.approx(base, abs=1e-6)
    assert rec["none"]["kl"] == pytest.approx(0.0, abs=1e-9)


def test_selections_are_sums_of_layers(attr):
    per = attr.per_layer[1]
    assert torch.allclose(attr.delta(ko.VT(), ko.layers([0, 2])), per[0] + per[2])
    assert torch.allclose(attr.delta(ko.VT(), ko.from_layer(1)), per[1:].sum(0))
    assert torch.allclose(attr.delta(ko.VT(), ko.window(3, 2)), per[2:4].sum(0))
    with pytest.raises(ko.KnockoutError, match="4 layers"):
        attr.delta(ko.VT(), ko.from_layer(4))


@pytest.mark.parametrize("readout", ["metrics", "logit_diff"])
def test_cheaper_readouts_equal_the_letters_linear_estimate(model, sample, attr, readout):
    """By linearity, backpropagating a metric's direction equals combining the letter directions."""
    fast = attribute_knockouts(model, sample, SPECS, LETTERS, ANSWER, readout=readout)
    assert fast.per_layer.shape[-1] == (2 if readout == "metrics" else 1)
    for spec in SPECS:
        for sel in (ko.all_layers(), ko.from_layer(2), ko.layers([1])):
            a, b = attr.change(spec, sel), fast.change(spec, sel)
            for m in b:
                assert a[m] == pytest.approx(b[m], rel=1e-4, abs=1e-6), (spec, sel, m)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_no_nan_in_low_precision(onevision_dir, dtype):
    model = HookedVideoLLM.from_pretrained(onevision_dir, dtype=dtype)
    inputs = model.to_inputs(frames(3, seed=11), mc_question("what moves", ["a", "b", "c", "d"]), n_frames=3)
    configs = [SweepConfig(f"{s!r}/{i}", s, ko.from_layer(i)) for s in SPECS for i in range(4)]
    rec = attribute_sample(model, inputs, configs, LETTERS, ANSWER)
    values = [v for r in rec.values() for k, v in r.items() if isinstance(v, float)]
    assert values and all(math.isfinite(v) for v in values)


def test_records_are_shaped_like_the_exact_study(model, sample):
    from vlens.experiments.study import configs_for

    configs = configs_for("global1", 4) + configs_for("global2", 4) + configs_for("windows", 4, window=2)
    rec = attribute_sample(model, sample, configs, LETTERS, ANSWER)
    assert set(rec) == {"clean"} | {c.name for c in configs}
    exact_clean = score(run_sweep(model, sample, [])["clean"], LETTERS, ANSWER)
    assert rec["clean"]["logit_diff"] == pytest.approx(exact_clean["logit_diff"], abs=1e-5)
    for c in configs:
        r = rec[c.name]
        assert r["method"] == "attribution" and r["spec"] == repr(c.spec) and r["layers"] == list(c.layers.resolve(4))
        assert {"pred", "answer", "correct", "p_correct", "logit_diff", "kl", "letter_logits"} <= set(r)
        assert 0.0 <= r["p_correct"] <= 1.0 and r["correct"] == (r["pred"] == r["answer"])


def test_verify_top_reruns_the_largest_estimates_exactly(model, sample):
    configs = [SweepConfig(f"{s!r}/{i}", s, ko.from_layer(i)) for s in SPECS for i in range(4)]
    rec = attribute_sample(model, sample, configs, LETTERS, ANSWER)
    verified = verify_top(model, sample, rec, configs, 3, LETTERS, ANSWER)
    clean = rec["clean"]["logit_diff"]
    sizes = sorted((abs(rec[c.name]["logit_diff"] - clean) for c in configs), reverse=True)
    assert [abs(v["estimate"] - clean) for v in verified.values()] == pytest.approx(sizes[:3])
    exact = run_sweep(model, sample, [c for c in configs if c.name in verified])
    for name, v in verified.items():
        assert v["method"] == "exact"
        assert v["logit_diff"] == pytest.approx(score(exact[name], LETTERS, ANSWER)["logit_diff"], abs=1e-5)
    assert verify_top(model, sample, rec, configs, 0, LETTERS, ANSWER) == {}


def test_bad_inputs_are_clear_errors(model, sample):
    batch = model.to_inputs([frames(3, seed=1), frames(3, seed=2)], ["a b", "c d"], n_frames=3)
    with pytest.raises(AttributionError, match="one sample"):
        attribute_knockouts(model, batch, [ko.LV()], LETTERS, ANSWER)
    with pytest.raises(ArgumentError, match="answer=4 is out of range"):  # the shared vocabulary
        attribute_knockouts(model, sample, [ko.LV()], LETTERS, 4)
    with pytest.raises(TypeError, match="knockout specs"):
        attribute_knockouts(model, sample, ["lv"], LETTERS, ANSWER)
    with pytest.raises(AttributionError, match="metric"):
        verify_top(model, sample, {}, [], 1, LETTERS, ANSWER, metric="accuracy")
    with pytest.raises(AttributionError, match="readout"):
        attribute_knockouts(model, sample, [ko.LV()], LETTERS, ANSWER, readout="vocab")


def test_rank_agreement_helpers():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 2], [5, 5, 9]) == pytest.approx(1.0)  # ties share ranks
    assert math.isnan(spearman([1, 1], [1, 2]))
    assert top_k_overlap([0.1, -5, 3, 0], [0, 4, -2, 0.5], 2) == 1.0
    assert top_k_overlap([5, 4, 0, 0], [0, 0, 4, 5], 2) == 0.0


# ------------------------------------------------------------------------------------------------
# attribution patching
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corrupted(model, sample):
    return corrupt(model, sample, "reverse")


@pytest.mark.parametrize("site", ["resid_pre", "attn_out", "mlp_out", "z"])
def test_attribution_patching_has_patch_sweeps_shape(model, sample, corrupted, site):
    layers = [3] if site == "z" else [1, 3]  # z is per head: one layer keeps the exact sweep short
    exact = patch_sweep(model, sample, corrupted, LETTERS, ANSWER, site=site, layers=layers)
    est = attribution_patch(model, sample, corrupted, LETTERS, ANSWER, site=site, layers=layers)
    assert est.raw.shape == exact.raw.shape and est.groups == exact.groups
    assert est.clean_diff == pytest.approx(exact.clean_diff, abs=1e-5)
    assert est.corrupted_diff == pytest.approx(exact.corrupted_diff, abs=1e-5)
    assert torch.isfinite(est.raw).all()


@settings(max_examples=3, deadline=None, suppress_health_check=HEALTH)
@given(
    site=st.sampled_from(["resid_pre", "attn_out", "mlp_out"]),
    layer=st.integers(0, 3),
    group=st.sampled_from(["frame 0", "video", "question", "final"]),
)
def test_attribution_patching_is_the_directional_derivative(model, sample, corrupted, site, layer, group):
    """The estimate is ⟨a_clean − a_corr, ∂m/∂a⟩: the derivative of the patched metric along the
    patch, checked by a central difference of a partial patch a_corr + ε(a_clean − a_corr)."""
    from vlens.interventions.patching import logit_diff, position_groups

    name = f"blocks.{layer}.hook_{site}"
    pos = position_groups(sample.layout)[group]
    with torch.no_grad():
        _, cache = model.run_with_cache(sample, names_filter=lambda n: n == name, return_cache_object=False)

    def patched(eps):
        def hook(act, hook):
            act = act.clone()
            act[:, pos] = act[:, pos] + eps * (cache[name][:, pos] - act[:, pos])
            return act

        with torch.no_grad():
            logits = model.run_with_hooks(corrupted, fwd_hooks=[(name, hook)], logits_to_keep=1)
        return float(logit_diff(logits[:, -1].double(), LETTERS, ANSWER)[0])

    eps = 1e-2
    derivative = (patched(eps) - patched(-eps)) / (2 * eps)
    est = attribution_patch(model, sample, corrupted, LETTERS, ANSWER, site=site, layers=[layer], groups={group: pos})
    assert float(est.raw[0, 0] - est.corrupted_diff) == pytest.approx(derivative, rel=2e-2, abs=2e-4)


def test_attribution_patching_of_identical_inputs_is_zero(model, sample):
    est = attribution_patch(model, sample, sample, LETTERS, ANSWER, site="resid_pre")
    assert torch.equal(est.raw - est.corrupted_diff, torch.zeros_like(est.raw))
    assert torch.isnan(est.effect).all()


def test_parameters_keep_requires_grad_after_attribution_even_on_error(model, sample):
    before = [p.requires_grad for p in model.parameters()]
    attribute_knockouts(model, sample, [ko.LV()], LETTERS, ANSWER)
    assert [p.requires_grad for p in model.parameters()] == before

    def boom(t, hook):
        raise RuntimeError("boom")

    model.blocks[1].attn.hook_z.add_hook(boom)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            attribute_knockouts(model, sample, [ko.LV()], LETTERS, ANSWER)
    finally:
        model.reset_hooks()
    assert [p.requires_grad for p in model.parameters()] == before
    assert not model.blocks[1].attn.hook_z._forward_hooks


def test_vlens_run_attribution_stores_estimates_and_verified_exact_runs(tmp_path):
    """`vlens run attribution --verify-top K`: every study configuration estimated (method
    "attribution"), the K largest re-run exactly as `verified/<name>` (method "exact")."""
    from vlens.cli import main
    from vlens.experiments.store import load_results
    from vlens.organism import checkpoint_dir

    out = tmp_path / "attr"
    assert (
        main(
            [
                "run",
                "attribution",
                "--model",
                str(checkpoint_dir()),
                "--data",
                "synthetic:1,n=2",
                "--frames",
                "8",
                "--verify-top",
                "2",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    settings, records = load_results(out)
    methods = {r["config"]: r["method"] for r in records}
    study = [n for n in methods if n.startswith(("global1/", "global2/", "windows/"))]
    assert len(study) == 8 + 4 + 3 * 5  # 8 layers: 8 from-layer, 4 all-layer, 3 × 5 windows
    assert {methods[n] for n in study} == {"attribution"}
    verified = [r for r in records if r["config"].startswith("verified/")]
    assert len(verified) == 2 * 2 and all(r["method"] == "exact" for r in verified)
    assert all(r["config"].removeprefix("verified/") in methods for r in verified)
    assert settings["attribution"] == {"readout": "letters", "verify_top": 2}  # part of the run key
    assert (
        main(
            [
                "run",
                "attribution,global1",
                "--model",
                str(checkpoint_dir()),
                "--data",
                "synthetic:1,n=2",
                "--out",
                str(tmp_path / "x"),
                "--quiet",
            ]
        )
        == 2
    )  # attribution runs on its own
