"""Knockouts restricted to chosen query heads (`spec.hooks(..., heads=[...])`): equal to HF run
with the same per-head mask through AttentionInterface, on the fused, explicit and flex paths and
as a plain pattern hook; GQA heads are query heads; clear errors before any forward."""

from __future__ import annotations

import pytest
import torch
from conftest import frames
from hf_reference import hf_knockout
from hypothesis import given, settings
from hypothesis import strategies as st

from vlens import HookedVideoLLM, testing
from vlens import knockout as ko
from vlens.components.per_call import KnockoutError

ATOL = 1e-4


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    # 4 query heads in 2 key/value groups: heads 0,1 share a key/value head, as do 2,3
    path = testing.make_tiny_onevision(tmp_path_factory.mktemp("heads") / "ckpt", n_layers=2, n_heads=4, n_kv_heads=2)
    model = HookedVideoLLM.from_pretrained(path)
    return model, model.to_inputs(frames(3), "what color is the object?", n_frames=3)


def per_head_mask(spec, inputs, heads, n_heads):
    blocked = spec.blocked(inputs.layout)[None]
    out = torch.zeros(1, n_heads, *blocked.shape[1:], dtype=torch.bool)
    out[:, heads] = blocked[:, None]
    return out


@settings(max_examples=12, deadline=None)
@given(
    heads=st.lists(st.integers(0, 3), min_size=1, max_size=4, unique=True),
    name=st.sampled_from(["lv", "vt", "vs"]),
    layer=st.integers(0, 1),
)
def test_heads_knockout_equals_hf_with_the_same_per_head_mask(tiny, heads, name, layer):
    model, inputs = tiny
    spec = ko.from_name(name)
    ours = model.run_with_hooks(inputs, fwd_hooks=spec.hooks(inputs, layers=[layer], heads=heads))
    with torch.no_grad(), hf_knockout(model.hf_model, {layer: per_head_mask(spec, inputs, heads, 4)}):
        ref = model.hf_model(**inputs).logits
    assert (ours - ref).abs().max().item() <= ATOL


@pytest.mark.parametrize("path", ["explicit", "flex"])
@torch.no_grad()  # FlexAttention has no backward on the CPU
def test_every_path_and_the_plain_pattern_hook_agree(tiny, path):
    model, inputs = tiny
    hooks = ko.LV().hooks(inputs, heads=[1, 2])
    fast = model.run_with_hooks(inputs, fwd_hooks=hooks)
    with model.attention_path_as(path):
        other = model.run_with_hooks(inputs, fwd_hooks=hooks)
    assert (fast - other).abs().max().item() <= 1e-5
    # the same hook object used as a plain TransformerLens hook on the explicit path's pattern
    hook = hooks[0][1]
    plain = model.run_with_hooks(inputs, fwd_hooks=[(lambda n: n.endswith("attn.hook_pattern"), hook.__call__)])
    assert (fast - plain).abs().max().item() <= 1e-5


def test_all_heads_equal_the_whole_knockout_and_one_head_differs(tiny):
    model, inputs = tiny
    whole = model.run_with_hooks(inputs, fwd_hooks=ko.LV().hooks(inputs))
    every = model.run_with_hooks(inputs, fwd_hooks=ko.LV().hooks(inputs, heads=[0, 1, 2, 3]))
    one = model.run_with_hooks(inputs, fwd_hooks=ko.LV().hooks(inputs, heads=[0]))
    with torch.no_grad():
        clean = model(inputs)
    assert (whole - every).abs().max().item() <= 1e-5
    assert (one - whole).abs().max().item() > 1e-5 and (one - clean).abs().max().item() > 1e-6
    # heads in different layers compose by adding the hooks of several calls
    mixed = ko.LV().hooks(inputs, layers=[0], heads=[0]) + ko.LV().hooks(inputs, layers=[1], heads=[3])
    ours = model.run_with_hooks(inputs, fwd_hooks=mixed)
    by_layer = {0: per_head_mask(ko.LV(), inputs, [0], 4), 1: per_head_mask(ko.LV(), inputs, [3], 4)}
    with torch.no_grad(), hf_knockout(model.hf_model, by_layer):
        ref = model.hf_model(**inputs).logits
    assert (ours - ref).abs().max().item() <= ATOL
    assert "heads [0]" in str(mixed[0][1])


def test_bad_heads_are_clear_before_any_forward(tiny):
    model, inputs = tiny
    with pytest.raises(KnockoutError, match=r"query heads 0\.\.3; this model has 4 query heads sharing 2 key/value"):
        model.run_with_hooks(inputs, fwd_hooks=ko.LV().hooks(inputs, heads=[4]))
    for bad, match in [
        ([], "non-empty"),
        ([-1], "non-negative"),
        ([0.5], "0.5"),
        ("0", "list of query-head"),
        ([1, 1], "twice"),
        ([True], "True"),
    ]:
        with pytest.raises(KnockoutError, match=match):
            ko.LV().hooks(inputs, heads=bad)
