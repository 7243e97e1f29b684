"""Knockouts: pattern hook ≡ attn_scores hook ≡ fast path (SDPA and FlexAttention) ≡ HF with the
mask added in the same layers through a custom attention function (tests/hf_reference.py)."""

from __future__ import annotations

import pytest
import torch
from conftest import frames
from hf_reference import hf_knockout
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vlens import knockout as ko
from vlens.interventions.knockout import KnockoutError

ATOL = 1e-4
QUESTIONS = [
    "what color is the object",
    "how many objects are moving to the left in the video",
    "which object appears first",
]

specs = st.sets(st.sampled_from(["lv", "vt", "vs"]), min_size=1).map(lambda s: ko.from_name("+".join(sorted(s))))


@st.composite
def selections(draw, n_layers=4):
    kind = draw(st.sampled_from(["all", "from", "window", "list"]))
    if kind == "all":
        return ko.all_layers()
    if kind == "from":
        return ko.from_layer(draw(st.integers(0, n_layers - 1)))
    if kind == "window":
        k = draw(st.integers(1, n_layers))
        return ko.window(draw(st.integers(k - 1, n_layers - 1)), k)
    return ko.layers(draw(st.sets(st.integers(0, n_layers - 1), min_size=1)))


def _run_all_ways(model, hf, inputs, spec, sel):
    real = inputs["attention_mask"].bool()
    out = {}
    with torch.no_grad():
        for on in ("pattern", "attn_scores"):
            hooks = spec.hooks(inputs, layers=sel, on=on)
            out[f"fast/{on}"] = model.run_with_hooks(inputs, fwd_hooks=hooks)
            assert model.last_attention_path == "fast"
            with model.attention_path_as("explicit"):
                out[f"explicit/{on}"] = model.run_with_hooks(inputs, fwd_hooks=hooks)
            assert model.last_attention_path == "explicit"
        with model.attention_path_as("flex"):  # the GPU path's block mask, run by torch's reference
            out["flex"] = model.run_with_hooks(inputs, fwd_hooks=hooks)
        assert model.last_attention_path == "flex"
        blocked = hooks[0][1].blocked_full(inputs.seq_len, "cpu")
        with hf_knockout(hf, dict.fromkeys(sel.resolve(model.cfg.n_layers), blocked)):
            ref = hf(**inputs).logits
    return {k: (v - ref)[real].abs().max().item() for k, v in out.items()}, ref


@pytest.mark.filterwarnings("ignore::vlens.interventions.knockout.KnockoutWarning")  # VT-K on one frame removes nothing
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=specs, sel=selections(), n_frames=st.integers(1, 3), q=st.sampled_from(QUESTIONS))
def test_knockout_paths_equal_hf_reference(model, hf_models, spec, sel, n_frames, q):
    inputs = model.to_inputs(frames(n_frames, seed=n_frames), q, n_frames=n_frames)
    diffs, _ = _run_all_ways(model, hf_models["sdpa"], inputs, spec, sel)
    assert max(diffs.values()) <= ATOL, diffs


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=specs, sel=selections())
def test_knockout_on_padded_batch_equals_hf(model, hf_models, spec, sel):
    inputs = model.to_inputs([frames(2, seed=3), frames(2, seed=4)], QUESTIONS[:2], n_frames=2)
    diffs, _ref = _run_all_ways(model, hf_models["sdpa"], inputs, spec, sel)
    assert max(diffs.values()) <= ATOL, diffs


def test_knockout_changes_the_answer_and_multiple_specs_compose(model, hf_models):
    inputs = model.to_inputs(frames(3), QUESTIONS[0], n_frames=3)
    with torch.no_grad():
        clean = model(inputs)
        hooks = ko.LV().hooks(inputs, layers=ko.from_layer(2)) + ko.VT().hooks(inputs, layers=ko.layers([0, 1]))
        both = model.run_with_hooks(inputs, fwd_hooks=hooks)
        blocked_lv = hooks[0][1].blocked_full(inputs.seq_len, "cpu")
        blocked_vt = hooks[1][1].blocked_full(inputs.seq_len, "cpu")
        with hf_knockout(hf_models["sdpa"], {0: blocked_vt, 1: blocked_vt, 2: blocked_lv, 3: blocked_lv}):
            ref = hf_models["sdpa"](**inputs).logits
    assert (both - ref).abs().max() <= ATOL
    assert (both - clean).abs().max() > 1e-3, "a knockout must change something"


def test_empty_knockout_on_explicit_path_is_bit_identical(model):
    inputs = model.to_inputs(frames(2), QUESTIONS[0], n_frames=2)
    empty = ko.Custom(lambda l: torch.zeros(len(l), len(l), dtype=torch.bool), "none")
    with torch.no_grad(), model.attention_path_as("explicit"):
        clean = model(inputs)
        for on in ("pattern", "attn_scores"):
            with pytest.warns(ko.KnockoutWarning, match="removes no attention edge"):  # it says so
                hooks = empty.hooks(inputs, on=on)
            assert torch.equal(model.run_with_hooks(inputs, fwd_hooks=hooks), clean)


def test_other_pattern_hook_forces_explicit_path_with_same_result(model):
    inputs = model.to_inputs(frames(2), QUESTIONS[0], n_frames=2)
    hooks = ko.LV().hooks(inputs)
    seen = []
    with torch.no_grad():
        fast = model.run_with_hooks(inputs, fwd_hooks=hooks)
        assert model.last_attention_path == "fast"
        explicit = model.run_with_hooks(
            inputs, fwd_hooks=[*hooks, ("blocks.1.attn.hook_pattern", lambda p, hook: seen.append(p.clone()))]
        )
    assert model.last_attention_path == "explicit+fast"  # layer 1 explicit, the others fast
    assert (fast - explicit).abs().max() <= ATOL
    # the user's hook sees the knocked pattern: question rows put no weight on video
    lay = inputs.layout
    q_rows = lay.positions("text")
    assert seen[0][0][:, q_rows][:, :, lay.is_vision].abs().max() == 0


def test_knockout_hooks_print_and_apply_in_generation(model):
    inputs = model.to_inputs(frames(2), QUESTIONS[0], n_frames=2)
    hooks = ko.LV().hooks(inputs, layers=ko.window(3, 2))
    assert repr(hooks[0][1]) == "LV-K @ layers 2–3"
    late = ko.LV().hooks(inputs, layers=ko.from_layer(1))
    assert repr(late[0][1]) == "LV-K @ layers 1–end"
    model.run_with_hooks(inputs, fwd_hooks=late)
    assert repr(late[0][1]) == "LV-K @ layers 1–3"  # resolved against the model's depth
    out_ko = model.generate(inputs, max_new_tokens=4, fwd_hooks=hooks)
    with model.attention_path_as("explicit"):
        out_ko_x = model.generate(inputs, max_new_tokens=4, fwd_hooks=hooks)
    with model.attention_path_as("flex"):  # decoding: one query row against the KV cache
        out_ko_f = model.generate(inputs, max_new_tokens=4, fwd_hooks=hooks)
    assert out_ko.tolist() == out_ko_x.tolist() == out_ko_f.tolist()


def test_bad_knockout_inputs(model):
    a = model.to_inputs(frames(2), QUESTIONS[0], n_frames=2)
    b = model.to_inputs(frames(3), QUESTIONS[0], n_frames=3)
    with pytest.raises(KnockoutError, match="4 layers"):
        model.run_with_hooks(a, fwd_hooks=ko.LV().hooks(a, layers=ko.from_layer(7)))
    with pytest.raises(KnockoutError, match="same inputs"):
        model.run_with_hooks(b, fwd_hooks=ko.LV().hooks(a))
    with pytest.raises(KnockoutError, match="pattern"):
        ko.LV().hooks(a, on="z")
    with pytest.raises(KnockoutError, match="VideoInputs"):
        ko.LV().hooks(a["input_ids"])


@pytest.mark.slow
def test_compiled_flex_attention_equals_hf_reference(model, hf_models, monkeypatch):
    """The kernel the GPU runs: FlexAttention compiled (here through inductor's CPU backend)."""
    from vlens.components import attention as components

    monkeypatch.setattr(components, "FLEX_COMPILE", "always")
    monkeypatch.setattr(components, "_compiled_flex", None)
    inputs = model.to_inputs([frames(2, seed=3), frames(2, seed=4)], QUESTIONS[:2], n_frames=2)
    for spec, sel in ((ko.LV(), ko.from_layer(1)), (ko.VT() | ko.VS(), ko.all_layers())):
        hooks = spec.hooks(inputs, layers=sel)
        with torch.no_grad(), model.attention_path_as("flex"):
            out = model.run_with_hooks(inputs, fwd_hooks=hooks)
        blocked = hooks[0][1].blocked_full(inputs.seq_len, "cpu")
        with torch.no_grad(), hf_knockout(hf_models["sdpa"], dict.fromkeys(sel.resolve(model.cfg.n_layers), blocked)):
            ref = hf_models["sdpa"](**inputs).logits
        real = inputs["attention_mask"].bool()
        assert (out - ref)[real].abs().max() <= ATOL
