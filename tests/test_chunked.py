"""The query-chunked attention path (`model.attention_path_as("chunked", chunk=...)`): equal to the
dense path (fp32 ≤ 1e-5 on logits) for clean runs, knockouts, head-restricted knockouts and
renormalised scalings, single rows and padded batches, on LLaVA-OneVision and Qwen2.5-VL (M-RoPE),
hypothesis over chunk sizes and specs; structural specs never build a [pos, pos] mask; what the
path cannot compute is refused before the forward."""

from __future__ import annotations

import pytest
import torch
from conftest import frames
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vlens import HookedVideoLLM, testing
from vlens import knockout as ko
from vlens.arguments import ArgumentError
from vlens.components.per_call import InterventionError, Interventions
from vlens.interventions.efficient import EfficientConfig, efficient_forward
from vlens.interventions.sweep import SweepConfig, run_sweep
from vlens.model import mask_memory
from vlens.model.mask_memory import MaskMemoryError

EQUAL = 1e-5
BUILDERS = {"onevision": testing.make_tiny_onevision, "qwen2_5_vl": testing.make_tiny_qwen2_5_vl}
QUESTIONS = ["what color is the object", "how many objects are moving to the left in the video"]
SPECS = {
    "clean": None,
    "lv": ko.LV(),
    "vt": ko.VT(),
    "vs": ko.VS(),
    "lv+vt": ko.LV() | ko.VT(),
    "text<-video earlier": ko.Edges("text", "video"),
    "video<-video earlier frames, diagonal": ko.Edges("video", "video", frames="earlier", diagonal=True),
    "keep only lv": ko.keep_only(ko.LV()),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    loaded = {}

    def load(name):
        if name not in loaded:  # 4 query heads in 2 key/value groups
            path = BUILDERS[name](tmp_path_factory.mktemp(name) / "ckpt", n_layers=2, n_heads=4, n_kv_heads=2)
            model = HookedVideoLLM.from_pretrained(path)
            kw = {"fps": 3.0} if name == "qwen2_5_vl" else {}
            single = model.to_inputs(frames(4, seed=1), QUESTIONS[1], n_frames=4, **kw)
            padded = model.to_inputs([frames(2, seed=3), frames(2, seed=4)], QUESTIONS, n_frames=2, **kw)
            assert (padded["attention_mask"][0] == 0).any(), "the shorter row must be left-padded"
            loaded[name] = model, {"single": single, "padded": padded}
        return loaded[name]

    return load


def _hooks(spec, inputs, heads, alpha, layers):
    if spec is None:
        return []
    return spec.hooks(inputs, layers=layers, heads=heads, alpha=alpha)


def _diff(a, b, inputs):
    real = inputs["attention_mask"].bool()
    return (a - b)[real].abs().max().item()


@pytest.mark.filterwarnings("ignore::vlens.interventions.knockout.KnockoutWarning")
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    family=st.sampled_from(sorted(BUILDERS)),
    batch=st.sampled_from(["single", "padded"]),
    spec=st.sampled_from(sorted(SPECS)),
    heads=st.one_of(st.none(), st.lists(st.integers(0, 3), min_size=1, max_size=3, unique=True)),
    alpha=st.sampled_from([None, None, 0.0, 0.5]),
    layers=st.sampled_from([None, [0], [1]]),
    chunk=st.integers(2, 80),
)
def test_chunked_equals_dense(models, family, batch, spec, heads, alpha, layers, chunk):
    model, all_inputs = models(family)
    inputs = all_inputs[batch]
    hooks = _hooks(SPECS[spec], inputs, heads, alpha, layers)
    with torch.no_grad():
        dense = model.run_with_hooks(inputs, fwd_hooks=hooks)
        assert model.last_attention_path != "chunked"
        with model.attention_path_as("chunked", chunk=chunk):
            chunked = model.run_with_hooks(inputs, fwd_hooks=hooks)
        assert model.last_attention_path == "chunked"
    assert _diff(dense, chunked, inputs) <= EQUAL, (family, batch, spec, heads, alpha, layers, chunk)


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_the_knockouts_change_the_logits_so_the_equality_is_not_vacuous(models, family):
    model, all_inputs = models(family)
    inputs = all_inputs["single"]
    with torch.no_grad(), model.attention_path_as("chunked", chunk=16):
        clean = model(inputs)
        for name in ("lv", "vt", "vs"):
            knocked = model.run_with_hooks(inputs, fwd_hooks=SPECS[name].hooks(inputs))
            assert _diff(knocked, clean, inputs) > 1e-4, name


def test_structural_specs_build_no_pos_by_pos_mask(models, monkeypatch):
    model, all_inputs = models("onevision")
    inputs = all_inputs["padded"]
    spec = ko.LV() | ko.VT() | ko.VS()
    hooks = spec.hooks(inputs, heads=[1]) + ko.keep_only(ko.VS()).hooks(inputs, layers=[1])
    with torch.no_grad():
        dense = model.run_with_hooks(inputs, fwd_hooks=hooks)

    def refuse(*args, **kwargs):
        raise AssertionError("a [pos, pos] mask was built on the chunked path")

    for name in ("Edges", "KeepOnly", "Union"):  # every whole-mask builder of these specs
        monkeypatch.setattr(getattr(ko, name), "blocked", refuse)
    monkeypatch.setattr(ko.KnockoutHook, "blocked_full", refuse)
    with torch.no_grad(), model.attention_path_as("chunked", chunk=8):
        chunked = model.run_with_hooks(inputs, fwd_hooks=hooks)
    assert _diff(dense, chunked, inputs) <= EQUAL
    # hooks() itself reads a structural spec in row blocks (its warning for specs that remove nothing)
    with pytest.warns(ko.KnockoutWarning):
        ko.Edges("marker", "video").hooks(inputs)


@pytest.mark.parametrize("family, batch", [("qwen2_5_vl", "single"), ("onevision", "padded")])
def test_blocked_rows_equal_the_rows_of_the_dense_mask(models, family, batch):
    _, all_inputs = models(family)
    inputs = all_inputs[batch]
    n = inputs.seq_len
    for spec in [s for s in SPECS.values() if s is not None] + [
        ko.Custom(lambda l: torch.zeros(len(l), len(l)).bool())
    ]:
        hook = (
            spec.hooks(inputs, heads=[0, 2])[0][1]
            if spec.structural
            else ko.KnockoutHook(spec, ko.all_layers(), inputs.layouts)
        )
        dense = hook.blocked_full(n + 3, "cpu")  # 3 generated tokens beyond the layout
        for rows in (slice(0, 1), slice(5, 17), slice(n - 4, n + 3)):
            assert torch.equal(hook.blocked_rows(0, rows, n + 3, "cpu"), dense[:, rows]), (spec, rows)
        touched = dense.any(dim=(0, 2)).nonzero()
        first = hook.first_touched_row(0, n + 3)  # read from the layout's vectors where the spec can
        assert first is None or first == (int(touched[0]) if len(touched) else n + 3), spec
        if spec in (ko.LV(), ko.Edges("text", "video")):  # frames="any": told without any rows
            assert first is not None


@torch.no_grad()
def test_generation_the_sweep_engine_and_efficient_inference_on_the_chunked_path(models):
    model, all_inputs = models("onevision")
    inputs = all_inputs["single"]
    configs = [SweepConfig("lv", ko.LV(), ko.from_layer(1)), SweepConfig("vt", ko.VT(), ko.all_layers())]
    cfg = EfficientConfig(exit_layer=1, temporal_prune_layers=1)
    dense = (
        model.generate(inputs, max_new_tokens=4),
        run_sweep(model, inputs, configs),
        efficient_forward(model, inputs, cfg),
    )
    with model.attention_path_as("chunked", chunk=6):
        chunked = (
            model.generate(inputs, max_new_tokens=4),
            run_sweep(model, inputs, configs),
            efficient_forward(model, inputs, cfg),
        )
    assert dense[0].tolist() == chunked[0].tolist()
    assert set(dense[1]) == set(chunked[1])
    for name in dense[1]:
        assert (dense[1][name] - chunked[1][name]).abs().max().item() <= EQUAL, name
    assert torch.equal(dense[2].positions, chunked[2].positions)
    assert (dense[2].logits - chunked[2].logits).abs().max().item() <= EQUAL


def test_hooks_that_need_the_pattern_and_bad_chunks_are_refused_before_the_forward(models):
    model, all_inputs = models("onevision")
    inputs = all_inputs["single"]
    seen = []
    with model.attention_path_as("chunked", chunk=8):
        with pytest.raises(InterventionError, match=r"blocks\.1\.attn\.hook_pattern is hooked.*'explicit'"):
            model.run_with_hooks(inputs, fwd_hooks=[("blocks.1.attn.hook_pattern", lambda t, hook: seen.append(t))])
        with pytest.raises(InterventionError, match="hook_attn_scores"):
            model.run_with_cache(inputs, names_filter=lambda n: n.endswith("hook_attn_scores"))
        with pytest.raises(InterventionError, match="renormalise=False"):
            model.run_with_hooks(inputs, fwd_hooks=ko.LV().hooks(inputs, alpha=0.5, renormalise=False))
        assert seen == []  # nothing ran
        # a cache without the N×N tensors runs, and equals the dense path's
        _, chunked = model.run_with_cache(inputs, names_filter=lambda n: n.endswith("hook_z"))
    _, dense = model.run_with_cache(inputs, names_filter=lambda n: n.endswith("hook_z"))
    assert max((chunked[k] - dense[k]).abs().max().item() for k in dense) <= EQUAL
    for bad in (0, -3, 2.5, True, "64"):
        with pytest.raises(ArgumentError, match="chunk"), model.attention_path_as("chunked", chunk=bad):
            pass
    with pytest.raises(ArgumentError, match="chunk=8"), model.attention_path_as("fast", chunk=8):
        pass
    with pytest.raises(ArgumentError, match="'chunked'"), model.attention_path_as("blockwise"):
        pass
    assert model.attention_path == "auto"


# the memory refusal ---------------------------------------------------------------------------
def test_a_forward_whose_dense_masks_do_not_fit_is_refused_before_it_runs(models):
    model, all_inputs = models("onevision")
    inputs = all_inputs["single"]
    hooks = ko.LV().hooks(inputs)
    N, seen = inputs.seq_len, []
    est = mask_memory.estimate(model, 1, N, N, _resolved(model, hooks), padded=False)
    assert est.masks == 2 * N * N + N * N  # causal, allowed, the hook's removed edges (one mask: LV-K everywhere)
    assert est.n_masks == 1
    old, model.mask_memory_budget = model.mask_memory_budget, est.total - 1
    try:
        probe = [("blocks.0.hook_resid_pre", lambda t, hook: seen.append(t))]
        with pytest.raises(MaskMemoryError, match=r"(?s)attention masks.*chunked.*fewer frames.*GPU"):
            model.run_with_hooks(inputs, fwd_hooks=hooks + probe)
        assert seen == []  # refused before the first block
        with torch.no_grad():
            clean = model(inputs)  # a clean unpadded forward builds no mask: not refused
            with model.attention_path_as("chunked", chunk=16):  # builds none: runs under the same budget
                chunked = model.run_with_hooks(inputs, fwd_hooks=hooks)
        model.mask_memory_budget = None
        dense = model.run_with_hooks(inputs, fwd_hooks=hooks)
        assert _diff(dense, chunked, inputs) <= EQUAL and _diff(dense, clean, inputs) > 1e-4
    finally:
        model.mask_memory_budget = old


def test_the_estimate_counts_heads_patterns_padding_and_grows_with_the_square(models):
    model, all_inputs = models("onevision")
    inputs = all_inputs["padded"]
    H = model.cfg.n_heads
    none = mask_memory.estimate(model, 2, 100, 100, Interventions(), padded=False)
    padded = mask_memory.estimate(model, 2, 100, 100, Interventions(), padded=True)
    assert none.total == 0 and padded.masks == 2 * 100 * 100
    whole = mask_memory.estimate(model, 2, 100, 100, _resolved(model, ko.LV().hooks(inputs)), padded=True)
    some = mask_memory.estimate(model, 2, 100, 100, _resolved(model, ko.LV().hooks(inputs, heads=[0])), padded=True)
    assert some.masks - whole.masks == (2 * H - 1) * 2 * 100 * 100  # allowed and removed edges on H heads
    long = mask_memory.estimate(model, 2, 1000, 1000, _resolved(model, ko.LV().hooks(inputs)), padded=True)
    assert long.total == 100 * whole.total
    explicit = mask_memory.estimate(model, 2, 100, 100, Interventions(), False, "explicit")
    assert explicit.patterns == 2 * H * 100 * 100 * (2 * 4 + 4)
    assert mask_memory.estimate(model, 2, 100, 100, _resolved(model, ko.LV().hooks(inputs)), True, "chunked").total == 0
    # the long-video arithmetic of the docs: 256 frames × 196 tokens, one row, one [pos, pos] bool mask
    assert 2.4e9 < (256 * 196 + 100) ** 2 < 2.6e9


def _resolved(model, hooks):
    return Interventions.resolve([h for _, h in hooks], model.cfg.n_layers, n_heads=model.cfg.n_heads)
