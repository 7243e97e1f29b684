"""Qwen3-VL's DeepStack in the hooked decoder: the additions are hooked, equal HF's DeepStack
features, sit inside the residual stream (decompose_resid, resumed forwards), and can be switched
off — equal to HF with its DeepStack step removed. (Parity, knockouts, generation and layout of the
family run in test_families.py.)"""

from __future__ import annotations

import pytest
import torch
import transformers
from conftest import frames

from vlens import HookedVideoLLM, testing
from vlens.components.rotary import MRotary

ATOL = 1e-4
Q = "what color is the object"


@pytest.fixture(scope="module")
def q3(tmp_path_factory):
    path = testing.make_tiny_qwen3_vl(
        tmp_path_factory.mktemp("q3") / "ckpt", n_layers=3, deepstack_visual_indexes=(0, 2)
    )
    model = HookedVideoLLM.from_pretrained(path)
    hf = transformers.Qwen3VLForConditionalGeneration.from_pretrained(path).eval()
    return model, hf, model.to_inputs(frames(4, seed=3), Q, n_frames=4, fps=2.0)


def test_deepstack_hooks_hold_hf_features_at_vision_positions(q3):
    model, hf, inputs = q3
    assert model.cfg.deepstack_layers == 2 and model.cfg.qk_norm
    assert isinstance(model.rotary, MRotary) and model.rotary.interleaved
    assert "blocks.1.hook_deepstack" in model.hook_dict and "blocks.2.hook_deepstack" not in model.hook_dict
    lm = model.hf_model.model.language_model  # weights shared with the HF model vlens wraps
    assert model.blocks[0].attn.q_norm.w.data_ptr() == lm.layers[0].self_attn.q_norm.weight.data_ptr()
    with torch.no_grad():
        _, cache = model.run_with_cache(inputs, names_filter=lambda n: "deepstack" in n)
        ref = hf.model.get_video_features(inputs["pixel_values_videos"], inputs["video_grid_thw"]).deepstack_features
    vision = inputs.layout.is_vision
    for l in range(2):
        add = cache[f"blocks.{l}.hook_deepstack"][0]
        assert add.shape == (inputs.seq_len, model.cfg.d_model)
        assert (add[~vision] == 0).all()
        assert (add[vision] - torch.cat(list(ref[l]))).abs().max() <= ATOL


def test_switching_deepstack_off_equals_hf_without_it(q3, monkeypatch):
    model, hf, inputs = q3
    zero = [(f"blocks.{l}.hook_deepstack", lambda t, hook: torch.zeros_like(t)) for l in range(2)]
    with torch.no_grad():
        clean = model(inputs)
        off = model(inputs, deepstack=False)
        hooked = model.run_with_hooks(inputs, fwd_hooks=zero)
        monkeypatch.setattr(type(hf.model.language_model), "_deepstack_process", lambda self, h, m, e: h)
        ref = hf(**inputs).logits
    assert (off - ref).abs().max() <= ATOL
    assert (hooked - off).abs().max() <= ATOL
    assert (clean - off).abs().max() > 1e-3, "DeepStack changed nothing: the test would be vacuous"


def test_decompose_resid_includes_deepstack(q3):
    model, _, inputs = q3
    with torch.no_grad():
        _, cache = model.run_with_cache(inputs)
    comps, labels = cache.decompose_resid(return_labels=True)
    assert labels[:5] == ["embed", "0_attn_out", "0_mlp_out", "0_deepstack", "1_attn_out"]
    assert "1_deepstack" in labels and "2_deepstack" not in labels
    resid = cache["blocks.2.hook_resid_post"]
    assert (comps.sum(0) - resid).abs().max() <= 1e-4
    for l in range(2):  # the addition lives inside resid_post, so resid_post[l] = resid_pre[l+1]
        assert torch.equal(cache[f"blocks.{l}.hook_resid_post"], cache[f"blocks.{l + 1}.hook_resid_pre"])


def test_resumed_forward_needs_the_deepstack_additions(q3):
    model, _, inputs = q3
    with torch.no_grad():
        full, cache = model.run_with_cache(inputs)
        step = {"input_ids": inputs["input_ids"], "position_ids": model.position_ids(inputs)}
        resid = cache["blocks.1.hook_resid_pre"]
        with pytest.raises(ValueError, match="deepstack_adds"):
            model(step, start_at_layer=1, resid=resid)
        resumed = model(step, start_at_layer=1, resid=resid, deepstack_adds={1: cache["blocks.1.hook_deepstack"]})
        late = model(step, start_at_layer=2, resid=cache["blocks.2.hook_resid_pre"])  # after the last DeepStack block
    assert (resumed - full).abs().max() <= ATOL and (late - full).abs().max() <= ATOL


def test_raw_processor_kwargs_take_the_family_rules_and_equal_hf(q3):
    """The processor's own kwargs through inputs_from_hf (no frame times): the timestamp rules
    still lay them out (the same segments and frames as to_inputs), DeepStack included."""
    model, hf, inputs = q3
    raw = model.inputs_from_hf(dict(inputs))
    lay, ref = raw.layouts[0], inputs.layouts[0]
    assert lay.segment == ref.segment and torch.equal(lay.frame, ref.frame)
    with torch.no_grad():
        assert (model(raw) - hf(**dict(inputs)).logits).abs().max() <= ATOL
        assert (model(raw, deepstack=False) - model(raw)).abs().max() > 1e-3  # DeepStack is there


def test_frames_without_a_frame_rate_are_refused(q3):
    model, _, _ = q3
    with pytest.raises(ValueError, match="fps="):
        model.to_inputs(frames(2), Q, n_frames=2)


# Qwen3-VL-MoE: the sparse MLP as a hooked component ------------------------------------------------
@pytest.fixture(scope="module")
def moe(tmp_path_factory):
    path = testing.make_tiny_qwen3_vl_moe(tmp_path_factory.mktemp("moe") / "ckpt")
    model = HookedVideoLLM.from_pretrained(path)
    hf = transformers.Qwen3VLMoeForConditionalGeneration.from_pretrained(path).eval()
    return model, hf, model.to_inputs(frames(3, seed=5), Q, n_frames=3, fps=2.0)


def test_moe_hooks_are_the_routing_hf_computes(moe):
    model, hf, inputs = moe
    layers = model.cfg.moe.layers
    assert layers == (0, 2) and type(model.blocks[1].mlp).__name__ == "GatedMLP"  # block 1 is mlp-only
    k, E = model.cfg.moe.top_k, model.cfg.moe.n_experts
    with torch.no_grad():
        _, cache = model.run_with_cache(inputs, names_filter=lambda n: ".mlp.hook_" in n or "mlp_out" in n)
        ref = hf(**inputs, output_router_logits=True).router_logits  # one [pos, expert] per MoE layer
    B, N = inputs["input_ids"].shape
    for i, l in enumerate(layers):
        logits = cache[f"blocks.{l}.mlp.hook_router_logits"]
        experts, weights = cache[f"blocks.{l}.mlp.hook_topk_experts"], cache[f"blocks.{l}.mlp.hook_topk_weights"]
        outs = cache[f"blocks.{l}.mlp.hook_expert_out"]
        assert logits.shape == (B, N, E) and experts.shape == weights.shape == (B, N, k)
        assert outs.shape == (B, N, k, model.cfg.d_model)
        assert (logits.reshape(-1, E) - ref[i]).abs().max() <= ATOL
        assert torch.equal(experts, logits.topk(k, dim=-1).indices)
        assert torch.allclose(weights.sum(-1), torch.ones(B, N))
        assert (cache[f"blocks.{l}.hook_mlp_out"] - (outs * weights[..., None]).sum(-2)).abs().max() <= 1e-5


def test_ablating_an_expert_equals_hf_without_it(moe):
    """Zeroing expert e's weight wherever it is chosen (hook_topk_weights) = HF with e's down
    projection zeroed: the routing stays, e's contribution goes."""
    model, hf, inputs = moe
    e, layer = 1, 0

    def drop(weights, hook):
        chosen = model_cache["experts"] == e
        return weights.masked_fill(chosen, 0.0)

    with torch.no_grad():
        _, c = model.run_with_cache(inputs, names_filter=f"blocks.{layer}.mlp.hook_topk_experts")
        model_cache = {"experts": c[f"blocks.{layer}.mlp.hook_topk_experts"]}
        assert bool((model_cache["experts"] == e).any()), "expert 1 is never chosen: the test would be vacuous"
        ours = model.run_with_hooks(inputs, fwd_hooks=[(f"blocks.{layer}.mlp.hook_topk_weights", drop)])
        clean = model(inputs)
        down = hf.model.language_model.layers[layer].mlp.experts.down_proj
        saved = down[e].clone()
        down[e] = 0
        try:
            ref = hf(**inputs).logits
        finally:
            down[e] = saved
    assert (ours - ref).abs().max() <= ATOL
    assert (ours - clean).abs().max() > 1e-3


def test_hooks_page_lists_the_moe_hooks(moe):
    from hooks_page import assert_hooks_documented

    assert_hooks_documented(moe[0])
