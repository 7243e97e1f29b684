"""Hook semantics and TransformerLens interop (ActivationCache methods, patching)."""

from __future__ import annotations

import pytest
import torch
from conftest import frames
from transformer_lens import ActivationCache

ATOL = 1e-4

HOOKS_PER_BLOCK = {
    "hook_resid_pre",
    "hook_resid_mid",
    "hook_resid_post",
    "hook_attn_out",
    "hook_mlp_out",
    "ln1.hook_scale",
    "ln1.hook_normalized",
    "ln2.hook_scale",
    "ln2.hook_normalized",
    "attn.hook_q",
    "attn.hook_k",
    "attn.hook_v",
    "attn.hook_rot_q",
    "attn.hook_rot_k",
    "attn.hook_attn_scores",
    "attn.hook_pattern",
    "attn.hook_z",
    "mlp.hook_pre",
    "mlp.hook_pre_linear",
    "mlp.hook_post",
}


@pytest.fixture(scope="module")
def inputs(model):
    return model.to_inputs(frames(3), "what color is the object", n_frames=3)


@pytest.fixture(scope="module")
def run(model, inputs):
    with torch.no_grad():
        return model.run_with_cache(inputs)


def test_every_hook_name_is_cached_with_tl_shapes(model, inputs, run):
    _logits, cache = run
    assert isinstance(cache, ActivationCache)
    cfg, n = model.cfg, inputs.seq_len
    expected = {"hook_embed", "hook_video_features", "ln_final.hook_scale", "ln_final.hook_normalized"}
    expected |= {f"blocks.{l}.{h}" for l in range(cfg.n_layers) for h in HOOKS_PER_BLOCK}
    assert set(cache.keys()) == expected
    assert cache["blocks.0.attn.hook_q"].shape == (1, n, cfg.n_heads, cfg.d_head)
    assert cache["blocks.0.attn.hook_k"].shape == (1, n, cfg.n_key_value_heads, cfg.d_head)
    assert cache["blocks.0.attn.hook_pattern"].shape == (1, cfg.n_heads, n, n)
    assert cache["blocks.0.attn.hook_z"].shape == (1, n, cfg.n_heads, cfg.d_head)
    n_vision = int(inputs.layout.is_vision.sum())
    assert cache["hook_video_features"].shape == (1, n_vision, cfg.d_model)
    # the vision features are exactly what sits at the vision positions of the embedding
    assert torch.equal(cache["hook_embed"][0, inputs.layout.is_vision], cache["hook_video_features"][0])
    # patterns are causal distributions
    p = cache["blocks.1.attn.hook_pattern"]
    torch.testing.assert_close(p.sum(-1), torch.ones_like(p.sum(-1)))
    assert not p.triu(1).any()
    assert model.last_attention_path == "explicit"


def test_caching_without_patterns_takes_the_fast_path_and_matches(model, inputs, run):
    logits, cache = run
    with torch.no_grad():
        fast_logits, small = model.run_with_cache(inputs, names_filter=lambda n: "resid" in n)
    assert model.last_attention_path == "fast"
    assert (fast_logits - logits).abs().max() <= ATOL
    assert (small["blocks.2.hook_resid_post"] - cache["blocks.2.hook_resid_post"]).abs().max() <= ATOL


def test_zero_ablating_pattern_rows_is_what_tl_does(model, inputs, run):
    logits, _cache = run
    row = inputs.seq_len - 1

    def kill_last_row(pattern, hook):
        pattern[:, :, row, :] = 0.0
        return pattern

    with torch.no_grad():
        out = model.run_with_hooks(inputs, fwd_hooks=[("blocks.1.attn.hook_pattern", kill_last_row)])
    # the last position's attention output in layer 1 is zero → only its residual changes
    assert not torch.allclose(out[0, -1], logits[0, -1])
    assert (out[0, :-1] - logits[0, :-1]).abs().max() <= ATOL
    # and layer 1 attn_out at that position is exactly zero
    seen = {}

    def grab(t, hook):
        seen["attn_out"] = t.clone()

    with torch.no_grad():
        model.run_with_hooks(
            inputs, fwd_hooks=[("blocks.1.attn.hook_pattern", kill_last_row), ("blocks.1.hook_attn_out", grab)]
        )
    assert seen["attn_out"][0, -1].abs().max() == 0


def test_adding_to_resid_pre_propagates(model, inputs, run):
    _logits, cache = run
    direction = torch.randn(model.cfg.d_model)

    def add(resid, hook):
        return resid + direction

    with torch.no_grad():
        seen = {}
        model.run_with_hooks(
            inputs,
            fwd_hooks=[
                ("blocks.2.hook_resid_pre", add),
                ("blocks.2.hook_resid_pre", lambda t, hook: seen.__setitem__("r", t.clone())),
            ],
        )
    torch.testing.assert_close(seen["r"], cache["blocks.2.hook_resid_pre"] + direction)
    assert not model.blocks[2].hook_resid_pre._forward_hooks, "run_with_hooks removes its hooks"


def test_hooks_context_manager_and_reset(model, inputs, run):
    logits, _ = run
    with torch.no_grad(), model.hooks(fwd_hooks=[("blocks.0.hook_mlp_out", lambda t, hook: t * 0)]):
        changed = model(inputs)
    assert not torch.allclose(changed, logits)
    model.add_hook("blocks.0.hook_mlp_out", lambda t, hook: t * 0)
    model.reset_hooks()
    with torch.no_grad():
        assert (model(inputs) - logits).abs().max() <= ATOL


def test_activation_cache_methods(model, inputs, run):
    logits, cache = run
    L = model.cfg.n_layers
    final = cache["blocks.3.hook_resid_post"]
    parts = cache.decompose_resid(layer=L)
    torch.testing.assert_close(parts.sum(0), final, atol=ATOL, rtol=0)
    acc = cache.accumulated_resid(layer=L)
    assert acc.shape[0] == L + 1
    torch.testing.assert_close(acc[-1], final)
    heads = cache.stack_head_results(layer=L)
    assert heads.shape[0] == L * model.cfg.n_heads
    attn_sum = heads.view(L, model.cfg.n_heads, *heads.shape[1:]).sum(1)
    for l in range(L):
        torch.testing.assert_close(attn_sum[l], cache[f"blocks.{l}.hook_attn_out"], atol=ATOL, rtol=0)
    # the logit lens through the stack: final residual with the final norm recomputed = logits
    lens = cache.accumulated_resid(layer=L, apply_ln=True)
    torch.testing.assert_close(model.unembed(lens[-1]), logits, atol=ATOL, rtol=0)
    # hook_scale is what apply_ln_to_stack divides by (the weight is not folded, see docs)
    stack = cache.apply_ln_to_stack(cache["blocks.2.hook_resid_pre"][None], layer=2)
    torch.testing.assert_close(
        stack[0] * model.blocks[2].ln1.w, cache["blocks.2.ln1.hook_normalized"], atol=ATOL, rtol=0
    )


def test_transformer_lens_patching_runs_on_the_model(model):
    from transformer_lens import patching

    ids = model.tokenizer("what color is the object", return_tensors="pt")["input_ids"]
    corrupted = model.tokenizer("what shape is the object", return_tensors="pt")["input_ids"]
    assert ids.shape == corrupted.shape
    with torch.no_grad():
        clean_logits, clean_cache = model.run_with_cache(ids)
        metric = lambda logits: logits[0, -1].sum()
        result = patching.get_act_patch_resid_pre(model, corrupted, clean_cache, metric)
        corrupted_value = metric(model(corrupted))
    assert result.shape == (model.cfg.n_layers, ids.shape[1])
    differ = (ids != corrupted)[0].nonzero().flatten().tolist()
    assert len(differ) == 1
    # at layer 0 only the differing token carries the difference: patching it restores the clean
    # metric exactly, patching any other position leaves the corrupted one
    torch.testing.assert_close(result[0, differ[0]], metric(clean_logits), atol=ATOL, rtol=0)
    others = [p for p in range(ids.shape[1]) if p != differ[0]]
    torch.testing.assert_close(result[0, others], corrupted_value.expand(len(others)), atol=ATOL, rtol=0)
    assert not torch.isclose(corrupted_value, metric(clean_logits))


def test_hooks_page_lists_exactly_the_hooks(model):
    from hooks_page import assert_hooks_documented

    assert_hooks_documented(model)
