"""The core's guarantees: interventions live for one call, belong to one batch, never give NaN.

Regression tests for what testing from outside found: a failed knockout call left knockouts
installed; hooks built for one row ran silently on a batch; fp16 pattern knockouts gave NaN.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import frames
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vlens import HookedVideoLLM
from vlens import knockout as ko
from vlens.components.kv_cache import KVCache
from vlens.components.per_call import InterventionError

QUESTION = "what color is the object"


@pytest.fixture(scope="module")
def inputs(model):
    return model.to_inputs(frames(2, seed=5), QUESTION, n_frames=2)


@pytest.fixture(scope="module")
def clean(model, inputs):
    with torch.no_grad():
        return model(inputs)


def _holds_nothing(model) -> bool:
    hooks = any(hp._forward_hooks or hp._backward_hooks for hp in model.hook_dict.values())
    return not hooks and not model._interventions


class BoomError(Exception):
    pass


def _raise(exc):
    def hook(tensor, hook):
        raise exc

    return hook


FAILING_CALLS = {
    "layer out of range": lambda m, x: m.run_with_hooks(
        x, fwd_hooks=ko.LV().hooks(x, layers=ko.all_layers()) + ko.VT().hooks(x, layers=ko.layers([99]))
    ),
    "a hook raises mid-forward": lambda m, x: m.run_with_hooks(
        x, fwd_hooks=[*ko.LV().hooks(x), ("blocks.2.hook_resid_pre", _raise(BoomError("hook failed")))]
    ),
    "KeyboardInterrupt in a hook": lambda m, x: m.run_with_hooks(
        x, fwd_hooks=[*ko.VT().hooks(x), ("blocks.1.attn.hook_z", _raise(KeyboardInterrupt()))]
    ),
    "fails after a cached run in a context": lambda m, x: _cache_then_fail(m, x),
    "generate fails at a later step": lambda m, x: m.generate(
        x, max_new_tokens=4, fwd_hooks=[*ko.LV().hooks(x), ("blocks.0.hook_resid_pre", _fail_on_call(2))]
    ),
    "batch the hooks were not built for": lambda m, x: m.run_with_hooks(_two_rows(m), fwd_hooks=ko.LV().hooks(x)),
    "hooks() context body raises": lambda m, x: _context_then_fail(m, x),
}


def _cache_then_fail(model, inputs):
    with model.hooks(fwd_hooks=ko.LV().hooks(inputs)):
        model.run_with_cache(inputs, names_filter=lambda n: n.endswith("hook_pattern"))
        raise BoomError("after a cached run")


def _context_then_fail(model, inputs):
    with model.hooks(fwd_hooks=(ko.LV() | ko.VS()).hooks(inputs, layers=ko.from_layer(1))):
        model(inputs)
        raise BoomError("user code failed inside the context")


def _fail_on_call(n: int):
    calls = {"n": 0}

    def hook(tensor, hook):
        calls["n"] += 1
        if calls["n"] >= n:
            raise BoomError(f"call {calls['n']}")
        return tensor

    return hook


def _two_rows(model):
    return model.to_inputs([frames(2, seed=5), frames(2, seed=6)], [QUESTION, QUESTION], n_frames=2)


@pytest.mark.parametrize("case", list(FAILING_CALLS))
def test_a_failing_call_leaves_nothing_behind(model, inputs, clean, case):
    with pytest.raises((BoomError, KeyboardInterrupt, InterventionError)), torch.no_grad():
        FAILING_CALLS[case](model, inputs)
    assert _holds_nothing(model), "a hook or an intervention outlived the call"
    with torch.no_grad():
        after = model(inputs)
    assert torch.equal(after, clean), "the next clean forward must be bit-identical"


@pytest.mark.parametrize("path", ["auto", "explicit", "flex"])
def test_hooks_for_one_row_refuse_a_batch(model, inputs, path):
    batch = _two_rows(model)
    with model.attention_path_as(path), pytest.raises(ko.KnockoutError, match="built for 1 row"), torch.no_grad():
        model.run_with_hooks(batch, fwd_hooks=ko.LV().hooks(inputs))
    assert _holds_nothing(model)


def test_hooks_for_other_rows_of_the_same_length_refuse(model):
    """Same row count and length, different layouts (another question): refused, not broadcast."""
    a = model.to_inputs(frames(2, seed=5), "what color is the object", n_frames=2)
    b = model.to_inputs(frames(2, seed=5), "what shape is the object", n_frames=2)
    assert a.seq_len == b.seq_len
    assert torch.equal(a.layout.frame, b.layout.frame)  # same structure: accepted (the mask is the same)
    with torch.no_grad():
        model.run_with_hooks(b, fwd_hooks=ko.LV().hooks(a))
    c = model.to_inputs(frames(3, seed=5), "what", n_frames=3)
    with pytest.raises(ko.KnockoutError, match="same inputs"), torch.no_grad():
        model.run_with_hooks(c, fwd_hooks=ko.LV().hooks(a))


def test_nested_contexts_compose_and_unwind(model, inputs, clean):
    lv, vt = ko.LV().hooks(inputs), ko.VT().hooks(inputs)
    with torch.no_grad():
        both = model.run_with_hooks(inputs, fwd_hooks=lv + vt)
        with model.hooks(fwd_hooks=lv):
            with model.hooks(fwd_hooks=vt):
                nested = model(inputs)
            only_lv = model(inputs)
        ref_lv = model.run_with_hooks(inputs, fwd_hooks=lv)
    assert torch.equal(nested, both)
    assert torch.equal(only_lv, ref_lv)
    assert _holds_nothing(model)


# dtypes × paths × sites × specs × layers: never NaN --------------------------------------------------
@pytest.fixture(scope="module")
def organism_by_dtype():
    from vlens.organism import checkpoint_dir

    return {dt: HookedVideoLLM.from_pretrained(checkpoint_dir(), dtype=dt) for dt in ("float32", "bfloat16", "float16")}


@pytest.fixture(scope="module")
def organism_inputs(organism_by_dtype):
    from vlens.data import synthetic

    sample = synthetic.generate(1, seed=3, n_frames=8, size=32)[0]
    return {dt: m.to_inputs(sample.video, sample.question, n_frames=8) for dt, m in organism_by_dtype.items()}


SPECS = {"LV": ko.LV(), "VT": ko.VT(), "VS": ko.VS(), "LV|VT|VS": ko.LV() | ko.VT() | ko.VS()}
SELECTIONS = {
    "all": ko.all_layers(),
    "from 5": ko.from_layer(5),
    "window 3,2": ko.window(3, 2),
    "layer 0": ko.layers([0]),
}


def test_fp16_pattern_knockout_in_all_layers_is_finite(organism_by_dtype, organism_inputs):
    """The reported case: organism in fp16, LV-K on hook_pattern in all layers, explicit path."""
    model, inputs = organism_by_dtype["float16"], organism_inputs["float16"]
    with torch.no_grad(), model.hooks(fwd_hooks=ko.LV().hooks(inputs)):
        logits, cache = model.run_with_cache(inputs, names_filter=lambda n: n.endswith("hook_pattern"))
    assert model.last_attention_path == "explicit"
    assert torch.isfinite(logits).all()
    assert all(torch.isfinite(t).all() for t in cache.values())


@settings(max_examples=24, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    dtype=st.sampled_from(["float32", "bfloat16", "float16"]),
    path=st.sampled_from(["fast", "flex", "explicit"]),
    site=st.sampled_from(["pattern", "attn_scores"]),
    spec=st.sampled_from(list(SPECS)),
    selection=st.sampled_from(list(SELECTIONS)),
)
def test_no_nan_in_any_dtype_path_site_spec_or_layers(
    organism_by_dtype, organism_inputs, dtype, path, site, spec, selection
):
    model, inputs = organism_by_dtype[dtype], organism_inputs[dtype]
    hooks = SPECS[spec].hooks(inputs, layers=SELECTIONS[selection], on=site)
    with torch.no_grad(), model.attention_path_as(path):
        logits = model.run_with_hooks(inputs, fwd_hooks=hooks)
    assert model.last_attention_path == path
    assert torch.isfinite(logits).all()
    if dtype != "float32":  # close to the fp32 run (the same knockout) at the answer position
        ref_model, ref_inputs = organism_by_dtype["float32"], organism_inputs["float32"]
        with torch.no_grad():
            ref = ref_model.run_with_hooks(
                ref_inputs, fwd_hooks=SPECS[spec].hooks(ref_inputs, layers=SELECTIONS[selection])
            )
        p, q = torch.softmax(logits[0, -1].float(), -1), torch.softmax(ref[0, -1], -1)
        assert (p - q).abs().max() < 0.1


# padded rows ---------------------------------------------------------------------------------------
def test_padded_positions_match_hf_everywhere(model, hf_models):
    """Left-pad query rows see no key in HF's SDPA mask: their attention output is 0 there and
    here, so the logits at padded positions agree too (not only at real ones)."""
    inputs = model.to_inputs(
        [frames(2, seed=1), frames(2, seed=2)],
        ["what color is the object", "how many objects are moving to the left in the video"],
        n_frames=2,
    )
    assert (inputs["attention_mask"] == 0).any()
    with torch.no_grad():
        ref = hf_models["sdpa"](**inputs).logits
        fast = model(inputs)
        with model.attention_path_as("explicit"):
            explicit = model(inputs)
        with model.attention_path_as("flex"):
            flex = model(inputs)
    for ours in (fast, explicit, flex):
        assert (ours - ref).abs().max().item() <= 1e-4


# strict loading, frozen config, devices, the KV cache --------------------------------------------------
def test_an_unused_language_model_tensor_is_refused(onevision_dir):
    from transformers import LlavaOnevisionForConditionalGeneration

    hf = LlavaOnevisionForConditionalGeneration.from_pretrained(onevision_dir)
    hf.model.language_model.layers[0].self_attn.register_parameter("extra_gate", torch.nn.Parameter(torch.zeros(3)))
    with pytest.raises(KeyError, match="extra_gate"):
        HookedVideoLLM.from_hf(hf)


def test_a_shape_mismatch_names_the_key_and_both_shapes(onevision_dir, monkeypatch):
    from transformers import LlavaOnevisionForConditionalGeneration

    from vlens.families import family_for

    hf = LlavaOnevisionForConditionalGeneration.from_pretrained(onevision_dir)
    family = family_for("LlavaOnevisionForConditionalGeneration")
    table = family.weight_table

    def swapped(cfg):  # q_proj pointed at k_proj's tensor (GQA: fewer rows)
        t = dict(table(cfg))
        t["blocks.0.attn.q_proj.weight"] = t["blocks.0.attn.k_proj.weight"]
        return t

    monkeypatch.setattr(type(family), "weight_table", lambda self, cfg: swapped(cfg))
    with pytest.raises(ValueError, match=r"k_proj\.weight has shape \(32, 64\).*expects \(64, 64\)"):
        HookedVideoLLM.from_hf(hf)


def test_config_is_frozen(model):
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.cfg.n_layers = 3


def test_inputs_on_another_device_are_refused(model, inputs):
    moved = dict(inputs)
    moved["input_ids"] = inputs["input_ids"].to("meta")
    with pytest.raises(ValueError, match=r"inputs.to"):
        model(moved)


def test_kv_cache_update_appends_and_checks_rows():
    cache = KVCache(2)
    k = torch.randn(1, 2, 3, 4)
    keys, _values, index = cache.update(0, k, k, torch.arange(3))
    assert keys.shape[2] == 3 and cache.seq_len(0) == 3 and cache.seq_len(1) == 0
    keys, _, index = cache.update(0, k[:, :, :1], k[:, :, :1], torch.tensor([3]))
    assert keys.shape[2] == 4 and index.tolist() == [0, 1, 2, 3] and cache.is_contiguous(0)
    cache.update(1, k, k, torch.tensor([0, 2, 5]), contiguous=False)
    assert not cache.is_contiguous(1)
    with pytest.raises(ValueError, match="holds 1 rows"):
        cache.update(0, torch.randn(2, 2, 1, 4), torch.randn(2, 2, 1, 4), torch.tensor([4]))


def test_a_list_is_not_a_kv_cache(model, inputs):
    with pytest.raises(TypeError, match="KVCache"), torch.no_grad():
        model(inputs, kv_cache=[None] * model.cfg.n_layers)
