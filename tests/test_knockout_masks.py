"""Mask properties of the knockout specs (hypothesis over random layouts)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import layouts

from vlens import knockout as ko
from vlens.inputs.layout import VideoLayout
from vlens.interventions.knockout import KnockoutError

SETTINGS = settings(max_examples=60, deadline=None)


def _brute(layout: VideoLayout, kind: str) -> torch.Tensor:
    """Edge-by-edge reading of the knockout table in docs/knockouts.md."""
    n = len(layout)
    seg, frame = layout.segment, layout.frame.tolist()
    vision = {"video", "separator"}
    last_vision = max([i for i, s in enumerate(seg) if s in vision], default=-1)
    out = torch.zeros(n, n, dtype=torch.bool)
    for q in range(n):
        for k in range(q):
            if kind == "lv":
                out[q, k] = seg[q] not in vision | {"pad"} and q > last_vision and seg[k] in vision
            elif kind == "vt":
                out[q, k] = seg[q] == "video" and seg[k] == "video" and frame[q] != frame[k]
            elif kind == "vs":
                out[q, k] = seg[q] == "video" and seg[k] == "video" and frame[q] == frame[k]
    return out


@SETTINGS
@given(layouts(), st.sampled_from(["lv", "vt", "vs"]))
def test_each_spec_blocks_exactly_its_edges(layout, kind):
    blocked = ko.from_name(kind).blocked(layout)
    assert torch.equal(blocked, _brute(layout, kind))


@SETTINGS
@given(layouts(), st.sets(st.sampled_from(["lv", "vt", "vs"]), min_size=1))
def test_union_is_or_and_never_touches_diagonal_or_future(layout, kinds):
    kinds = sorted(kinds)
    spec = ko.from_name(kinds[0])
    for k in kinds[1:]:
        spec = spec | ko.from_name(k)
    blocked = spec.blocked(layout)
    expected = torch.zeros_like(blocked)
    for k in kinds:
        expected |= _brute(layout, k)
    assert torch.equal(blocked, expected)
    n = len(layout)
    assert not blocked.triu().any(), "a knockout may only remove edges strictly below the diagonal"
    # no row is ever fully blocked: the diagonal always survives
    allowed = torch.ones(n, n, dtype=torch.bool).tril() & ~blocked
    assert allowed.any(-1).all()


@SETTINGS
@given(layouts())
def test_lv_spares_everything_before_the_video_and_pads(layout):
    blocked = ko.LV().blocked(layout)
    rows = blocked.any(-1)
    assert not rows[: layout.last_vision + 1].any()
    assert not rows[layout.mask("pad")].any()
    assert not blocked[:, ~layout.is_vision].any()


@SETTINGS
@given(layouts(), st.sampled_from([torch.float16, torch.bfloat16, torch.float32]))
def test_knocked_pattern_has_no_nan_in_low_precision(layout, dtype):
    layout_ = layout
    n = len(layout_)
    hook = (ko.LV() | ko.VT() | ko.VS()).hooks(layout_, on="attn_scores")[0][1]
    scores = torch.randn(1, 2, n, n).to(dtype)
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    scores = scores.masked_fill(~causal, float("-inf"))
    pattern = torch.softmax(hook.apply_to_scores(scores), -1)
    assert not pattern.isnan().any()
    hook_p = (ko.LV() | ko.VT() | ko.VS()).hooks(layout_, on="pattern")[0][1]
    pattern2 = hook_p.apply_to_pattern(torch.softmax(scores.float(), -1).to(dtype))
    assert not pattern2.isnan().any()
    torch.testing.assert_close(pattern2.float(), pattern.float(), atol=2e-2, rtol=0)


def test_union_dedupes_and_prints():
    assert repr(ko.LV() | ko.LV()) == "LV-K"
    assert repr(ko.LV() | ko.VT()) == "LV-K | VT-K"
    assert ko.from_name("all") == ko.LV() | ko.VT() | ko.VS()


def test_layer_selections_resolve_against_depth():
    assert ko.all_layers().resolve(4) == (0, 1, 2, 3)
    assert ko.from_layer(2).resolve(4) == (2, 3)
    assert ko.window(3, 2).resolve(4) == (2, 3)
    assert ko.layers([3, 1, 1]).resolve(4) == (1, 3)
    assert str(ko.window(27, 4)) == "layers 24–27"
    with pytest.raises(KnockoutError, match="4 layers"):
        ko.from_layer(4).resolve(4)
    with pytest.raises(KnockoutError, match="must all exist"):
        ko.window(2, 4).resolve(8)
    with pytest.raises(KnockoutError, match="out of range"):
        ko.layers([0, 9]).resolve(4)
    with pytest.raises(KnockoutError):
        ko.layers([])


def test_unknown_spec_name_and_bad_custom():
    with pytest.raises(KnockoutError, match="unknown knockout"):
        ko.from_name("xy")
    layout = VideoLayout.build(torch.tensor([False, True, True, False]), [ko_tok(0), ko_tok(0)])
    with pytest.raises(KnockoutError, match="diagonal"):
        ko.Custom(lambda l: torch.eye(len(l), dtype=torch.bool)).blocked(layout)
    with pytest.raises(KnockoutError, match="bool tensor"):
        ko.Custom(lambda l: torch.zeros(2, 2)).blocked(layout)


def test_spec_on_layout_without_video_is_an_error():
    layout = VideoLayout.build(torch.zeros(5, dtype=torch.bool), [])
    with pytest.raises(KnockoutError, match="no video"):
        ko.LV().hooks(layout)


def ko_tok(frame):
    from vlens.inputs.layout import VisionToken

    return VisionToken("video", frame, 0, 0)
