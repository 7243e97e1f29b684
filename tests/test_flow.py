"""map-the-flow's protocols (vlens.interventions.flow): masks against their definitions, keep-only as the
complement, and parity of Edges knockouts with the AttentionInterface reference (tiny OneVision)."""

from __future__ import annotations

import pytest
import torch
from conftest import frames
from hf_reference import hf_knockout
from hypothesis import given, settings
from strategies import layouts_with_roles
from test_edges import _brute

from vlens import knockout as ko
from vlens.inputs.prompts import mc_question
from vlens.inputs.roles import with_roles
from vlens.interventions.flow import flow_specs

QUESTION, OPTIONS = "what color is the object", ["red", "green", "blue", "yellow"]


def _option_rows(layout, correct: bool):
    return torch.tensor(
        [r == "option" and (l == layout.correct) == correct for r, l in zip(layout.role, layout.option_letter)]
    )


@settings(max_examples=30, deadline=None)
@given(layouts_with_roles())
def test_flow_specs_block_their_definitions(layout):
    specs = flow_specs()
    assert torch.equal(specs["cross_frame"].blocked(layout), ko.VT().blocked(layout))
    qo = ["question", "option"]  # map-the-flow's "question": the question with its option lines
    for name, (q, k, diag) in {
        "question+options<-video": (qo, ["vision"], False),
        "last<-video": (["last"], ["vision"], False),
        "last<-question+options": (["last"], qo, False),
        "last<-last": (["last"], ["last"], True),
        "last<-question": (["last"], ["question"], False),
        "question<-video": (["question"], ["vision"], False),
        "last<-options": (["last"], ["option"], False),
    }.items():
        assert torch.equal(specs[name].blocked(layout), _brute(layout, q, k, "any", diag)), name
    if layout.correct is not None:
        true, false = _option_rows(layout, True), _option_rows(layout, False)
        last = _brute(layout, ["last"], ["all"], "any", False)
        assert torch.equal(
            specs["true_option<-video"].blocked(layout),
            true[:, None] & _brute(layout, ["all"], ["vision"], "any", False),
        )
        assert torch.equal(
            specs["true_option<-question"].blocked(layout),
            true[:, None] & _brute(layout, ["all"], ["question"], "any", False),
        )
        assert torch.equal(specs["last<-true_option"].blocked(layout), last & true[None, :])
        assert torch.equal(specs["last<-false_options"].blocked(layout), last & false[None, :])
    # keep-only: exactly the causal edges (diagonal included) between real positions minus the kept
    keep = _brute(layout, ["video"], ["video"], "any", True) | _brute(layout, ["last"], ["question"], "any", False)
    real = ~layout.mask("pad")
    causal = torch.ones(len(layout), len(layout), dtype=torch.bool).tril() & real[:, None] & real[None, :]
    assert torch.equal(
        ko.keep_only(ko.Edges("video", "video", diagonal=True), ko.Edges("last", "question")).blocked(layout),
        causal & ~keep,
    )


def test_flow_windows_are_map_the_flows_centred_clipped_windows():
    from vlens.interventions.flow import flow_window

    L = 32  # information_flow_analysis.py: range(max(0, l - w // 2), min(L, l - (-w // 2)))
    for k in (1, 3, 4, 9):
        for l in range(L):
            theirs = list(range(max(0, l - k // 2), min(L, l - (-k // 2))))
            assert list(flow_window(l, k, L).resolve(L)) == theirs, (k, l)
    with pytest.raises(ko.KnockoutError, match="between 1 and"):
        flow_window(0, 9, 8)


def test_effective_pathway_is_map_the_flows_block_mappings():
    from vlens.interventions.flow import effective_pathway, effective_ranges

    # effective_pathway_analysis.py, effective-pathway-7b: kept 5..14 (inter-frame), 5..19 (video→question), 15..24
    assert effective_ranges(32) == {
        "cross_frame": (5, 15),
        "question+options<-video": (5, 20),
        "last<-question+options": (15, 25),
    }
    parts = {n: list(sel.resolve(32)) for n, _, sel in effective_pathway(32)}
    every = list(range(32))
    assert parts["cross_frame"] == [l for l in every if not 5 <= l < 15]
    assert parts["question+options<-video"] == [l for l in every if not 5 <= l < 20]
    assert parts["last<-question+options"] == [l for l in every if not 15 <= l < 25]
    assert parts["last<-last"] == parts["last<-video"] == every
    assert parts["video<-video"] == list(range(20, 32)) and parts["question+options<-question+options"] == list(
        range(25, 32)
    )
    assert effective_ranges(8) == {
        "cross_frame": (1, 4),
        "question+options<-video": (1, 5),
        "last<-question+options": (4, 6),
    }
    with pytest.raises(ValueError, match="start < end"):
        effective_ranges(
            8, {"cross_frame": (3, 2), "question+options<-video": (1, 5), "last<-question+options": (4, 6)}
        )


def test_keep_only_errors():
    with pytest.raises(TypeError, match="knockout spec"):
        ko.KeepOnly("video")
    with pytest.raises(TypeError, match="at least one"):
        ko.keep_only()


@pytest.fixture(scope="module")
def flow_inputs(model):
    inputs = model.to_inputs(frames(3, seed=3), mc_question(QUESTION, OPTIONS), n_frames=3)
    return with_roles(model, inputs, QUESTION, OPTIONS, answer="C")


def test_lv_is_a_superset_of_question_and_last_from_video(flow_inputs):
    layout, specs = flow_inputs.layout, flow_specs()
    lv = ko.LV().blocked(layout)
    qv = (specs["question+options<-video"] | specs["last<-video"]).blocked(layout)
    assert not (qv & ~lv).any()
    extra = lv & ~qv  # the answer prompt and template tokens after the video
    rows = extra.any(-1)
    assert {layout.role[i] for i in rows.nonzero().flatten().tolist()} <= {"answer_prompt", "template"}


@pytest.fixture(scope="module")
def clean_logits(model, flow_inputs):
    with torch.no_grad():
        return model(flow_inputs)


@pytest.mark.parametrize("name", list(flow_specs()))
def test_flow_knockouts_match_the_hf_reference(model, hf_models, flow_inputs, clean_logits, name):
    spec, sel = flow_specs()[name], ko.window(2, 3, align="center")  # layers 1-3
    assert spec.blocked(flow_inputs.layout).any(), f"{name} removes nothing on this layout"
    with torch.no_grad():
        hooks = spec.hooks(flow_inputs, layers=sel)
        ours = model.run_with_hooks(flow_inputs, fwd_hooks=hooks)
        blocked = hooks[0][1].blocked_full(flow_inputs.seq_len, "cpu")
        with hf_knockout(hf_models["sdpa"], dict.fromkeys(sel.resolve(model.cfg.n_layers), blocked)):
            ref = hf_models["sdpa"](**flow_inputs).logits
        if name in ("cross_frame", "last<-last"):  # the explicit path (−∞ on the scores) too
            with model.attention_path_as("explicit"):
                explicit = model.run_with_hooks(
                    flow_inputs, fwd_hooks=spec.hooks(flow_inputs, layers=sel, on="attn_scores")
                )
            assert (explicit - ref).abs().max().item() <= 1e-4
    assert (ours - ref).abs().max().item() <= 1e-4
    assert (ours - clean_logits).abs().max().item() > 1e-6, "the knockout changed nothing"


def test_effective_pathway_matches_the_hf_reference_and_agrees_across_paths(
    model, hf_models, flow_inputs, clean_logits
):
    from vlens.interventions.flow import effective_pathway, effective_pathway_hooks

    L = model.cfg.n_layers
    parts = effective_pathway(L)
    per_layer = {}
    for l in range(L):
        masks = [
            spec.hooks(flow_inputs, layers=sel)[0][1].blocked_full(flow_inputs.seq_len, "cpu")
            for _, spec, sel in parts
            if l in sel.resolve(L)
        ]
        if masks:
            per_layer[l] = torch.stack(masks).any(0)
    out = {}
    with torch.no_grad():
        with hf_knockout(hf_models["sdpa"], per_layer):
            ref = hf_models["sdpa"](**flow_inputs).logits
        for path in ("fast", "explicit", "flex"):
            with model.attention_path_as(path):
                out[path] = model.run_with_hooks(flow_inputs, fwd_hooks=effective_pathway_hooks(flow_inputs, L))
    assert all(torch.isfinite(v).all() for v in out.values())
    for path, v in out.items():
        assert (v - ref).abs().max() <= 1e-4, path
    assert (out["fast"] - clean_logits).abs().max() > 1e-6


def test_attention_flow_equals_the_cached_pattern_reduced(model, flow_inputs):
    from vlens.interventions.flow import attention_flow, key_groups

    names, mass = attention_flow(model, flow_inputs)
    assert mass.shape == (model.cfg.n_layers, 2, len(names))
    assert {"frame 0", "frame 2", "question", "option", "last"} <= set(names)
    assert torch.allclose(mass.sum(-1), torch.ones(model.cfg.n_layers, 2), atol=1e-5)
    with torch.no_grad():
        _, cache = model.run_with_cache(flow_inputs, names_filter=lambda n: n.endswith("hook_pattern"))
    layout = flow_inputs.layout
    _, index = key_groups(layout)
    q = torch.tensor([r == "question" for r in layout.role])
    for l in range(model.cfg.n_layers):
        p = cache[f"blocks.{l}.attn.hook_pattern"][0].mean(0)
        for g, name in enumerate(names):
            keys = torch.tensor([i == g for i in index])
            assert torch.allclose(mass[l, 0, g], p[-1, keys].sum(), atol=1e-5), (l, name)
            assert torch.allclose(mass[l, 1, g], p[q][:, keys].sum(-1).mean(), atol=1e-5), (l, name)
    # under last<-video in every layer, last reads nothing from the frames
    _, knocked = attention_flow(model, flow_inputs, fwd_hooks=flow_specs()["last<-video"].hooks(flow_inputs))
    frames_ = [g for g, n in enumerate(names) if n.startswith("frame") or n == "separator"]
    assert knocked[:, 0, frames_].abs().max() < 1e-6 and mass[:, 0, frames_].sum() > 0
