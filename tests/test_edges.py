"""ko.Edges: every spec against an edge-by-edge reading of its definition, LV/VT/VS as Edges,
the explicit diagonal, and emptied rows (attention output 0, no NaN) on every path and dtype."""

from __future__ import annotations

import pytest
import torch
from conftest import frames
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import layouts, layouts_with_roles

from vlens import HookedVideoLLM
from vlens import knockout as ko
from vlens.inputs.layout import LayoutError
from vlens.interventions.knockout import KnockoutError

SETTINGS = settings(max_examples=40, deadline=None)
NAMES = [
    "video",
    "separator",
    "marker",
    "system",
    "text",
    "vision",
    "after_vision",
    "all",
    "template",
    "question",
    "option",
    "answer_prompt",
    "last",
]


def _member(layout, name: str, i: int) -> bool:
    """Is position i in the selector `name`? Read from the layout's fields one position at a time."""
    seg, role = layout.segment[i], layout.role[i]
    vision = ("video", "separator")
    if name == "vision":
        return seg in vision
    if name == "after_vision":
        last = max([j for j, s in enumerate(layout.segment) if s in vision], default=-1)
        return last >= 0 and i > last and seg not in (*vision, "pad", "image")
    if name == "all":
        return True
    if name in ("video", "separator", "marker", "system", "text", "pad", "image"):
        return seg == name
    return role == name


def _brute(layout, queries, keys, frames_rel, diagonal):
    n = len(layout)
    f = layout.frame.tolist()
    out = torch.zeros(n, n, dtype=torch.bool)
    for q in range(n):
        for k in range(q + 1):
            if k == q and not diagonal:
                continue
            if not (any(_member(layout, s, q) for s in queries) and any(_member(layout, s, k) for s in keys)):
                continue
            if frames_rel != "any":
                if layout.segment[q] != "video" or layout.segment[k] != "video":
                    continue
                ok = {"same": f[k] == f[q], "other": f[k] != f[q], "earlier": f[k] < f[q], "later": f[k] > f[q]}
                if not ok[frames_rel]:
                    continue
            out[q, k] = True
    return out


selectors = st.lists(st.sampled_from(NAMES), min_size=1, max_size=2, unique=True)


@SETTINGS
@given(
    layouts_with_roles(),
    selectors,
    selectors,
    st.sampled_from(["any", "same", "other", "earlier", "later"]),
    st.booleans(),
)
def test_every_edges_spec_blocks_exactly_its_definition(layout, queries, keys, frames_rel, diagonal):
    spec = ko.Edges(tuple(queries), tuple(keys), frames=frames_rel, diagonal=diagonal)
    assert torch.equal(spec.blocked(layout), _brute(layout, queries, keys, frames_rel, diagonal))


@SETTINGS
@given(layouts_with_roles(), selectors, selectors, selectors, selectors)
def test_edges_compose_with_or(layout, q1, k1, q2, k2):
    a, b = ko.Edges(tuple(q1), tuple(k1)), ko.Edges(tuple(q2), tuple(k2))
    assert torch.equal((a | b).blocked(layout), a.blocked(layout) | b.blocked(layout))


@SETTINGS
@given(layouts())
def test_lv_vt_vs_are_named_edges_with_unchanged_masks(layout):
    assert torch.equal(ko.LV().blocked(layout), _brute(layout, ["after_vision"], ["vision"], "any", False))
    assert torch.equal(ko.VT().blocked(layout), _brute(layout, ["video"], ["video"], "other", False))
    assert torch.equal(ko.VS().blocked(layout), _brute(layout, ["video"], ["video"], "same", False))
    assert torch.equal(ko.VT().blocked(layout), ko.Edges("video", "video", frames="other").blocked(layout))
    assert all(isinstance(s, ko.Edges) for s in (ko.LV(), ko.VT(), ko.VS()))
    assert [s.label for s in (ko.LV(), ko.VT(), ko.VS())] == ["LV-K", "VT-K", "VS-K"]


@SETTINGS
@given(layouts_with_roles())
def test_option_selectors(layout):
    letters = layout.option_letter
    b = ko.option("B")(layout)
    assert b.tolist() == [layout.role[i] == "option" and letters[i] == "B" for i in range(len(layout))]
    if layout.correct is None:
        with pytest.raises(LayoutError, match="correct option"):
            ko.option(correct=True)(layout)
    else:
        t = ko.option(correct=True)(layout)
        assert t.tolist() == [layout.role[i] == "option" and letters[i] == layout.correct for i in range(len(layout))]
        assert torch.equal(t | ko.option(correct=False)(layout), ko.option()(layout))


def test_labels_name_the_spec_and_differ_by_definition():
    assert ko.Edges("question", "video").label == "Edges(question←video)"
    assert (
        ko.Edges("video", "video", frames="earlier", diagonal=True).label
        == "Edges(video←video (earlier frames), with diagonal)"
    )
    assert ko.Edges("last", "video") != ko.Edges("last", "vision")
    assert ko.Edges("last", ("question", "option")).label == "Edges(last←question+option)"


def test_bad_edges_arguments_are_clear():
    with pytest.raises(LayoutError, match="unknown position selector 'questions'"):
        ko.Edges("questions", "video")
    with pytest.raises(KnockoutError, match="frame relation"):
        ko.Edges("video", "video", frames="previous")
    with pytest.raises(KnockoutError, match="True or False"):
        ko.Edges("video", "video", diagonal=1)
    with pytest.raises(TypeError, match="position selector"):
        ko.Edges(3, "video")
    with pytest.raises(LayoutError, match="unknown role"):
        ko.role("answer")


def test_custom_diagonal_only_when_asked(model):
    inputs = model.to_inputs(frames(2), "what", n_frames=2)
    eye = ko.Custom(lambda l: torch.eye(len(l), dtype=torch.bool), "eye")
    with pytest.raises(KnockoutError, match="diagonal=True"):
        eye.blocked(inputs.layout)
    both = ko.Custom(lambda l: torch.eye(len(l), dtype=torch.bool), "eye", diagonal=True)
    assert torch.equal(both.blocked(inputs.layout), torch.eye(len(inputs.layout), dtype=torch.bool))


# emptied rows: output 0 on every path and dtype --------------------------------------------------
@pytest.fixture(scope="module")
def tiny_by_dtype(onevision_dir):
    return {dt: HookedVideoLLM.from_pretrained(onevision_dir, dtype=dt) for dt in ("float32", "bfloat16", "float16")}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("path", ["fast", "flex", "explicit"])
def test_a_row_that_loses_every_edge_has_attention_output_zero(tiny_by_dtype, dtype, path):
    model = tiny_by_dtype[dtype]
    inputs = model.to_inputs(frames(2, seed=4), "what color is the object", n_frames=2)
    spec = ko.Edges("last", "all", diagonal=True)  # the last row sees nothing in layer 1
    assert spec.blocked(inputs.layout)[-1].sum() == len(inputs.layout)
    names = lambda n: n.endswith("attn.hook_z")
    with torch.no_grad():
        _, clean = model.run_with_cache(inputs, names_filter=names)
        with model.attention_path_as(path), model.hooks(fwd_hooks=spec.hooks(inputs, layers=ko.layers([1]))):
            logits, cache = model.run_with_cache(inputs, names_filter=names)
        assert model.last_attention_path == path
    assert torch.isfinite(logits).all()
    z = cache["blocks.1.attn.hook_z"]
    assert torch.isfinite(z).all()
    assert (z[0, -1] == 0).all(), "a row with no allowed key has attention output 0"
    tol = 1e-5 if dtype == "float32" else 2e-2
    assert torch.allclose(z[0, :-1].float(), clean["blocks.1.attn.hook_z"][0, :-1].float(), atol=tol), (
        "other rows untouched"
    )
    # layer 0 has no edit (the forced path may still use another kernel there: close, not equal)
    assert torch.allclose(cache["blocks.0.attn.hook_z"].float(), clean["blocks.0.attn.hook_z"].float(), atol=tol)


@pytest.mark.parametrize("site", ["pattern", "attn_scores"])
def test_an_emptied_row_on_hook_sites_is_zero_not_nan(model, site):
    inputs = model.to_inputs(frames(2, seed=4), "what", n_frames=2)
    spec = ko.Edges("all", "all", diagonal=True)  # every row empty in layer 2
    with torch.no_grad(), model.hooks(fwd_hooks=spec.hooks(inputs, layers=[2], on=site)):
        logits, cache = model.run_with_cache(inputs, names_filter=lambda n: n.endswith(("hook_pattern", "hook_z")))
    assert torch.isfinite(logits).all()
    assert (cache["blocks.2.attn.hook_z"] == 0).all()
    assert torch.isfinite(cache["blocks.2.attn.hook_pattern"]).all()


def test_a_spec_that_removes_nothing_warns_with_the_likely_cause(model):
    """A knockout that removes no edge equals the clean run: the common mistakes (no text roles,
    frame relations on text, the diagonal without diagonal=True, a missing option) warn."""
    import warnings

    from vlens.inputs.prompts import mc_question
    from vlens.inputs.roles import with_roles

    q, opts = "what color is the object", ["red", "blue", "green", "white"]
    raw = model.to_inputs(frames(3), mc_question(q, opts), n_frames=3)
    with pytest.warns(
        ko.KnockoutWarning, match="names text roles \\(question\\) and these inputs have none.*with_roles"
    ):
        ko.Edges("last", "question").hooks(raw)
    roled = with_roles(model, raw, q, opts, answer=1)
    for spec in (ko.Edges("last", "video", frames="same"), ko.Edges("last", "last"), ko.Edges("last", ko.option("E"))):
        with pytest.warns(ko.KnockoutWarning, match="removes no attention edge"):
            spec.hooks(roled)
    with pytest.warns(ko.KnockoutWarning, match="one frame .*no edges across frames"):
        ko.VT().hooks(model.to_inputs(frames(1), mc_question(q, opts), n_frames=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # specs that remove edges are silent
        ko.Edges("last", "question").hooks(roled)
        ko.Edges("last", "last", diagonal=True).hooks(roled)
        (ko.LV() | ko.VT()).hooks(raw)
