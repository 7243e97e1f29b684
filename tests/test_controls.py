"""Random-edge controls (vlens.interventions.controls): matched per row, disjoint from the spec,
causal, seeded; equal to HF with the same mask; clear errors."""

from __future__ import annotations

import pytest
import torch
from conftest import frames
from hf_reference import hf_knockout
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import layouts

from vlens import HookedVideoLLM, testing
from vlens import knockout as ko
from vlens.components.per_call import KnockoutError
from vlens.interventions.controls import RandomEdges


@settings(max_examples=60, deadline=None)
@given(
    layout=layouts(),
    name=st.sampled_from(["lv", "vt", "vs"]),
    seed=st.integers(0, 2**31 - 1),
    disjoint=st.booleans(),
)
def test_control_matches_the_spec_row_by_row(layout, name, seed, disjoint):
    spec = ko.from_name(name)
    target = spec.blocked(layout)
    control = RandomEdges(spec, seed=seed, disjoint=disjoint)
    try:
        got = control.blocked(layout)
    except KnockoutError as e:  # only a disjoint draw, and only when some row truly lacks candidates
        n = len(layout)
        real = ~layout.mask("pad")
        cand = (torch.ones(n, n, dtype=torch.bool).tril(-1) & real[:, None] & real[None, :] & ~target).sum(-1)
        assert disjoint and (cand < target.sum(-1)).any(), e
        assert "query row" in str(e)
        return
    assert torch.equal(got.sum(-1), target.sum(-1))  # matched in count, in every row
    if disjoint:
        assert not (got & target).any()  # never the spec's own edges
    assert not got.triu().any()  # strictly causal: no future key, no diagonal
    pad = layout.mask("pad")
    assert not got[pad].any() and not got[:, pad].any()
    assert torch.equal(got, RandomEdges(spec, seed=seed, disjoint=disjoint).blocked(layout))  # seeded


def test_seeds_differ_and_among_narrows_the_draw():
    model_layout = _fixed_layout()
    a = RandomEdges(ko.LV(), seed=0).blocked(model_layout)
    b = RandomEdges(ko.LV(), seed=1).blocked(model_layout)
    assert not torch.equal(a, b)
    text = ko.Edges("text", "text")
    c = RandomEdges(ko.VS(), seed=0, among=ko.Edges("video", "video")).blocked(model_layout)
    assert not (c & ~ko.Edges("video", "video").blocked(model_layout)).any()
    with pytest.raises(KnockoutError, match=r"query row \d+ loses \d+ edges"):
        RandomEdges(ko.LV(), among=text).blocked(model_layout)
    with pytest.raises(KnockoutError, match="drop disjoint=True"):
        RandomEdges(ko.LV(), disjoint=True).blocked(model_layout)


def _fixed_layout():
    _, inputs = _model_and_inputs()
    return inputs.layout


_CACHE: dict = {}


def _model_and_inputs():
    if "m" not in _CACHE:
        import tempfile
        from pathlib import Path

        path = testing.make_tiny_onevision(Path(tempfile.mkdtemp()) / "ckpt", n_layers=2)
        model = HookedVideoLLM.from_pretrained(path)
        _CACHE["m"] = (model, model.to_inputs(frames(3), "what color is the object?", n_frames=3))
    return _CACHE["m"]


def test_control_equals_hf_with_the_same_mask():
    model, inputs = _model_and_inputs()
    control = RandomEdges(ko.LV(), seed=3)
    ours = model.run_with_hooks(inputs, fwd_hooks=control.hooks(inputs, layers=ko.from_layer(1)))
    blocked = control.blocked(inputs.layout)[None]
    with torch.no_grad(), hf_knockout(model.hf_model, {1: blocked}):
        ref = model.hf_model(**inputs).logits
    assert (ours - ref).abs().max().item() <= 1e-4
    with torch.no_grad():
        clean = model(inputs)
    assert (ours - clean).abs().max().item() > 1e-6  # it removed something


def test_bad_arguments_are_clear():
    with pytest.raises(TypeError, match="controls a knockout spec"):
        RandomEdges("lv")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="seed must be an int"):
        RandomEdges(ko.LV(), seed=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="among= takes a knockout spec"):
        RandomEdges(ko.LV(), among="text")  # type: ignore[arg-type]
    assert repr(RandomEdges(ko.LV(), seed=2)) == "RandomEdges(LV-K, seed=2)"
