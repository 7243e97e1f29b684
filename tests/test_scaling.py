"""Attention scaling on chosen heads (`spec.hooks(..., alpha=, renormalise=)`): equal to HF with
the same per-head scaling (log α in HF's SDPA mask; α times HF's eager softmax), on two families;
α = 0 renormalised is the knockout exactly, α = 1 is clean; every path agrees; bad α is refused;
the dose-response sweep reads one metric per α."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import frames
from hf_reference import hf_scaling
from hypothesis import given, settings
from hypothesis import strategies as st

from vlens import HookedVideoLLM, testing
from vlens import knockout as ko
from vlens.components.per_call import InterventionError, KnockoutError
from vlens.interventions.dose_response import dose_response
from vlens.interventions.patching import logit_diff

ATOL = 1e-4
BUILDERS = {"onevision": testing.make_tiny_onevision, "qwen3_vl": testing.make_tiny_qwen3_vl}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    loaded = {}

    def load(name):
        if name not in loaded:  # 4 query heads in 2 key/value groups (heads 0,1 share one, as do 2,3)
            path = BUILDERS[name](tmp_path_factory.mktemp(name) / "ckpt", n_layers=2, n_heads=4, n_kv_heads=2)
            model = HookedVideoLLM.from_pretrained(path)
            loaded[name] = model, model.to_inputs(frames(4), "what color is the object?", n_frames=4, fps=2.0)
        return loaded[name]

    return load


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def tiny(request, models):
    """Each family: for the tests against HF."""
    return models(request.param)


@pytest.fixture(scope="module")
def ov(models):
    """One family: for what the paths, hooks and sweep do alike on every family."""
    return models("onevision")


def chosen(spec, inputs, heads, n_heads=4):
    """The spec's edges on `heads` only: bool [batch, head, q, k]."""
    edges = spec.blocked(inputs.layout)[None]
    out = torch.zeros(1, n_heads, *edges.shape[1:], dtype=torch.bool)
    out[:, heads] = edges[:, None]
    return out


@settings(max_examples=10, deadline=None)
@given(
    alpha=st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 3.0)),
    renormalise=st.booleans(),
    heads=st.lists(st.integers(0, 3), min_size=1, max_size=4, unique=True),
    name=st.sampled_from(["lv", "vt", "vs"]),
    layer=st.integers(0, 1),
)
def test_scaling_equals_hf_with_the_same_per_head_scaling(tiny, alpha, renormalise, heads, name, layer):
    model, inputs = tiny
    spec = ko.from_name(name)
    hooks = spec.hooks(inputs, layers=[layer], heads=heads, alpha=alpha, renormalise=renormalise)
    ours = model.run_with_hooks(inputs, fwd_hooks=hooks)
    with torch.no_grad(), hf_scaling(model.hf_model, {layer: chosen(spec, inputs, heads)}, alpha, renormalise):
        ref = model.hf_model(**inputs).logits
    assert (ours - ref).abs().max().item() <= ATOL


@torch.no_grad()
def test_alpha_0_is_the_knockout_and_alpha_1_is_clean(tiny):
    model, inputs = tiny
    knocked = model.run_with_hooks(inputs, fwd_hooks=ko.LV().hooks(inputs, heads=[1, 2]))
    zero = model.run_with_hooks(inputs, fwd_hooks=ko.LV().hooks(inputs, heads=[1, 2], alpha=0.0))
    assert torch.equal(zero, knocked)  # the same bool mask, not a float −∞
    tiny_alpha = model.run_with_hooks(inputs, fwd_hooks=ko.LV().hooks(inputs, heads=[1, 2], alpha=1e-30))
    assert (tiny_alpha - knocked).abs().max().item() <= 1e-5
    clean = model(inputs)
    for renormalise in (True, False):
        one = model.run_with_hooks(
            inputs, fwd_hooks=ko.LV().hooks(inputs, heads=[1, 2], alpha=1, renormalise=renormalise)
        )
        assert (one - clean).abs().max().item() <= 1e-5
    # not renormalising, α = 0 zeroes the weights and keeps the rest: not the knockout
    zeroed = model.run_with_hooks(inputs, fwd_hooks=ko.LV().hooks(inputs, heads=[1, 2], alpha=0, renormalise=False))
    assert (zeroed - knocked).abs().max().item() > 1e-3


@pytest.mark.parametrize("renormalise", [True, False])
@torch.no_grad()  # FlexAttention has no backward on the CPU
def test_every_path_and_the_plain_hooks_agree(ov, renormalise):
    model, inputs = ov
    hooks = ko.VT().hooks(inputs, layers=[1], heads=[0, 3], alpha=0.4, renormalise=renormalise)
    auto = model.run_with_hooks(inputs, fwd_hooks=hooks)
    paths = ["explicit", "fast", "flex"] if renormalise else ["explicit"]
    for path in paths:
        with model.attention_path_as(path):
            assert (model.run_with_hooks(inputs, fwd_hooks=hooks) - auto).abs().max().item() <= 1e-5
    hook = hooks[0][1]
    plain = model.run_with_hooks(inputs, fwd_hooks=[(lambda n: n.endswith("attn.hook_pattern"), hook.__call__)])
    assert (plain - auto).abs().max().item() <= 1e-5
    if renormalise:  # log α written on the scores: the same logits
        on_scores = ko.VT().hooks(inputs, layers=[1], heads=[0, 3], alpha=0.4, on="attn_scores")[0][1]
        plain = model.run_with_hooks(inputs, fwd_hooks=[(on_scores.name_filter, on_scores.__call__)])
        assert (plain - auto).abs().max().item() <= 1e-5
        assert (model.run_with_hooks(inputs, fwd_hooks=[(on_scores.name_filter, on_scores)]) - auto).abs().max() <= 1e-5
    else:  # only the explicit path has the pattern to multiply
        for path in ("fast", "flex"):
            with model.attention_path_as(path), pytest.raises(InterventionError, match=f"the '{path}' path never"):
                model.run_with_hooks(inputs, fwd_hooks=hooks)


def test_bad_alpha_is_clear_before_any_forward(ov):
    _model, inputs = ov
    for bad in (-0.5, math.nan, math.inf, True, "0.5"):
        with pytest.raises(KnockoutError, match=r"finite number α ≥ 0"):
            ko.LV().hooks(inputs, alpha=bad)
    with pytest.raises(KnockoutError, match="renormalise must be True or False"):
        ko.LV().hooks(inputs, alpha=0.5, renormalise="yes")
    with pytest.raises(KnockoutError, match="acts on hook_pattern: use on='pattern'"):
        ko.LV().hooks(inputs, alpha=0.5, renormalise=False, on="attn_scores")
    with pytest.raises(KnockoutError, match="pass alpha= too"):
        ko.LV().hooks(inputs, renormalise=False)
    with pytest.raises(KnockoutError, match="at least one α"):
        dose_response(_model, inputs, ko.LV(), [], lambda logits: logits.sum())


def test_dose_response_reads_the_metric_at_each_alpha(ov):
    model, inputs = ov
    letters = [model.tokenizer.convert_tokens_to_ids(c) for c in "AB"]

    def metric(logits):
        return logit_diff(logits, letters, 0)

    curve = dose_response(model, inputs, ko.LV(), [0, 0.5, 1, 2], metric, layers=[1], heads=[2])
    assert curve.alphas == (0.0, 0.5, 1.0, 2.0) and len(curve.values) == 4
    with torch.no_grad():
        clean = float(metric(model(inputs)[:, -1]))
        knocked = float(
            metric(model.run_with_hooks(inputs, fwd_hooks=ko.LV().hooks(inputs, layers=[1], heads=[2]))[:, -1])
        )
    assert curve.values[0] == pytest.approx(knocked, abs=1e-5)
    assert curve.values[2] == pytest.approx(clean, abs=1e-5)
    assert "LV-K" in curve.table() and "| 0.5 |" in curve.table()
