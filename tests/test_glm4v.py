"""GLM-4.1V's decoder features in the hooked decoder: sandwich norms (hooked, ablatable, equal to
HF with the norm removed), the fused gate_up_proj shared with HF (views, no copy), partial
adjacent-pair M-RoPE (HF's own tables), knockouts of the per-frame markers and across frames
against the HF reference, and clear refusals. (Parity, padded batches, generation, LV/VT/VS,
layout and efficient inference of the family run in test_families.py.)"""

from __future__ import annotations

import json

import pytest
import torch
import transformers
from conftest import frames
from hf_reference import hf_knockout

from vlens import HookedVideoLLM, testing
from vlens import knockout as ko
from vlens.components.rotary import MRotary

ATOL = 1e-4
Q = "what color is the object"


@pytest.fixture(scope="module")
def glm(tmp_path_factory):
    path = testing.make_tiny_glm4v(tmp_path_factory.mktemp("glm4v") / "ckpt", n_layers=3)
    model = HookedVideoLLM.from_pretrained(path)
    hf = transformers.Glm4vForConditionalGeneration.from_pretrained(path).eval()
    return model, hf, model.to_inputs(frames(4, seed=3), Q, n_frames=4, fps=2.0), path


def _lm(model):
    return model.hf_model.model.language_model


@pytest.mark.parametrize("norm,hf_name", [("ln1_post", "post_self_attn_layernorm"), ("ln2_post", "post_mlp_layernorm")])
def test_ablating_a_sandwich_norm_equals_hf_without_it(glm, norm, hf_name):
    """Zeroing blocks.1.<norm>.hook_normalized = HF with that norm's weight zeroed (the attention or
    MLP output of block 1 never reaches the residual stream)."""
    model, hf, inputs, _ = glm
    zero = [(f"blocks.1.{norm}.hook_normalized", lambda t, hook: torch.zeros_like(t))]
    assert getattr(model.blocks[1], norm).w is getattr(_lm(model).layers[1], hf_name).weight  # the HF tensor itself
    weight = getattr(hf.model.language_model.layers[1], hf_name).weight  # the reference's own copy
    with torch.no_grad():
        clean = model(inputs)
        ours = model.run_with_hooks(inputs, fwd_hooks=zero)
        saved = weight.clone()
        weight.zero_()
        try:
            ref = hf(**inputs).logits
        finally:
            weight.copy_(saved)
    assert (ours - ref).abs().max() <= ATOL
    assert (ours - clean).abs().max() > 1e-3, "the ablation changed nothing: the test would be vacuous"


def test_sandwich_norms_feed_the_residual_stream(glm):
    """hook_attn_out / hook_mlp_out are the normalised outputs (what the stream adds), and
    decompose_resid still sums to the residual stream."""
    model, _, inputs, _ = glm
    assert model.cfg.use_normalization_before_and_after
    with torch.no_grad():
        _, cache = model.run_with_cache(inputs)
    for l in range(model.cfg.n_layers):
        assert cache[f"blocks.{l}.ln1_post.hook_scale"].shape == (1, inputs.seq_len, 1)
        assert torch.equal(cache[f"blocks.{l}.hook_attn_out"], cache[f"blocks.{l}.ln1_post.hook_normalized"])
        assert torch.equal(cache[f"blocks.{l}.hook_mlp_out"], cache[f"blocks.{l}.ln2_post.hook_normalized"])
        mid = cache[f"blocks.{l}.hook_resid_pre"] + cache[f"blocks.{l}.hook_attn_out"]
        assert torch.equal(cache[f"blocks.{l}.hook_resid_mid"], mid)
    comps = cache.decompose_resid()
    assert (comps.sum(0) - cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"]).abs().max() <= 1e-5


def test_fused_gate_up_is_shared_not_copied(glm):
    model, _, inputs, _ = glm
    d, D = model.cfg.d_mlp, model.cfg.d_model
    mlp, hf_mlp = model.blocks[0].mlp, _lm(model).layers[0].mlp
    assert model.cfg.fused_gate_up and not hasattr(mlp, "gate_proj") and not hasattr(mlp, "up_proj")
    assert mlp.gate_up_proj.weight is hf_mlp.gate_up_proj.weight
    w = hf_mlp.gate_up_proj.weight
    # W_gate / W_in are views of the one HF tensor: its first and second d_mlp rows
    assert mlp.W_gate.shape == mlp.W_in.shape == (D, d)
    assert mlp.W_gate.data_ptr() == w.data_ptr()
    assert mlp.W_in.data_ptr() == w[d:].data_ptr() == w.data_ptr() + d * D * w.element_size()
    assert mlp.W_gate.untyped_storage().data_ptr() == w.untyped_storage().data_ptr()
    with torch.no_grad():
        _, cache = model.run_with_cache(
            inputs, names_filter=lambda n: n.startswith("blocks.0.") and ("mlp" in n or "ln2" in n)
        )
        x = cache["blocks.0.ln2.hook_normalized"]
        assert (cache["blocks.0.mlp.hook_pre"] - x @ mlp.W_gate).abs().max() <= 1e-5
        assert (cache["blocks.0.mlp.hook_pre_linear"] - x @ mlp.W_in).abs().max() <= 1e-5
        up = hf_mlp.gate_up_proj(x)
        assert torch.equal(torch.cat([cache["blocks.0.mlp.hook_pre"], cache["blocks.0.mlp.hook_pre_linear"]], -1), up)


def test_partial_rotary_turns_only_the_first_dims_with_hfs_tables(glm):
    model, _, inputs, _ = glm
    cfg = model.cfg
    assert cfg.rotary_dim == cfg.d_head // 2 and cfg.rotary_adjacent_pairs
    assert isinstance(model.rotary, MRotary) and model.rotary.adjacent_pairs and not model.rotary.interleaved
    pos = model.position_ids(inputs)
    x = torch.zeros(1, inputs.seq_len, cfg.d_model)
    with torch.no_grad():
        ours = model.rotary(pos, torch.float32)
        ref = _lm(model).rotary_emb(x, pos)
        _, cache = model.run_with_cache(inputs, names_filter=lambda n: n.startswith("blocks.0.attn.hook_"))
    assert ours[0].shape == (1, inputs.seq_len, cfg.rotary_dim)
    assert torch.equal(ours[0], ref[0]) and torch.equal(ours[1], ref[1])
    r = cfg.rotary_dim
    for a, b in (("hook_q", "hook_rot_q"), ("hook_k", "hook_rot_k")):
        before, after = cache[f"blocks.0.attn.{a}"], cache[f"blocks.0.attn.{b}"]
        assert torch.equal(before[..., r:], after[..., r:])  # the pass-through half is untouched
        assert (before[..., :r] - after[..., :r]).abs().max() > 1e-3


@pytest.mark.parametrize(
    "spec",
    [
        ko.Edges("text", "marker"),  # the question cannot read the frames' <|begin/end_of_image|> and timestamps
        ko.Edges("video", "video", frames="earlier"),  # no group reads an earlier group
    ],
    ids=["text<-marker", "video<-earlier-video"],
)
def test_edges_knockouts_equal_hf_reference(glm, spec):
    model, hf, inputs, _ = glm
    layers = [0, 2]
    sel = ko.layers(layers)
    with torch.no_grad():
        outs = {}
        for on in ("pattern", "attn_scores"):
            hooks = spec.hooks(inputs, layers=sel, on=on)
            outs[f"fast/{on}"] = model.run_with_hooks(inputs, fwd_hooks=hooks)
            with model.attention_path_as("explicit"):
                outs[f"explicit/{on}"] = model.run_with_hooks(inputs, fwd_hooks=hooks)
        blocked = hooks[0][1].blocked_full(inputs.seq_len, "cpu")
        assert bool(blocked.any())
        with hf_knockout(hf, dict.fromkeys(layers, blocked)):
            ref = hf(**inputs).logits
        clean = hf(**inputs).logits
    diffs = {k: (v - ref).abs().max().item() for k, v in outs.items()}
    assert max(diffs.values()) <= ATOL, diffs
    assert (ref - clean).abs().max() > 1e-3, f"{spec.label} changed nothing: the test would be vacuous"


# refusals -----------------------------------------------------------------------------------------
def test_frames_without_a_rate_or_too_few_are_refused(glm):
    model, _, _, _ = glm
    with pytest.raises(ValueError, match="fps="):
        model.to_inputs(frames(2), Q, n_frames=2)
    with pytest.raises(ValueError, match="at least 2 frames"):
        model.to_inputs(frames(1), Q, n_frames=1, fps=2.0)
    two, four = (model.to_inputs(frames(n), Q, n_frames=n, fps=2.0) for n in (2, 4))
    with pytest.raises(ValueError, match=r"different frame counts \[2, 4\]"):  # features split evenly by row
        model.inputs_from_prompts([two.prompts[0], four.prompts[0]], [two.videos[0], four.videos[0]])


def test_raw_processor_kwargs_take_the_family_rules_and_equal_hf(glm):
    """The processor's own kwargs through inputs_from_hf (no frame times): the same segments and
    frames as to_inputs (timestamps and begin/end markers included), HF's logits."""
    model, hf, inputs, _ = glm
    raw = model.inputs_from_hf(dict(inputs))
    lay, ref = raw.layouts[0], inputs.layouts[0]
    assert lay.segment == ref.segment and torch.equal(lay.frame, ref.frame)
    assert int(lay.mask("marker").sum()) > 4  # per group: begin, end, timestamp text
    with torch.no_grad():
        assert (model(raw) - hf(**dict(inputs)).logits).abs().max() <= ATOL
    with pytest.raises(ValueError, match=r"does not run these glm4v inputs exactly: \['second_per_grid_ts'\]"):
        model.inputs_from_hf({**dict(inputs), "second_per_grid_ts": torch.ones(1)})


def test_an_mrope_section_that_misses_the_rotary_width_is_refused(glm, tmp_path):
    """partial_rotary_factor 1 with sections covering half a head: HF would fail or rotate
    differently; vlens names the mismatch."""
    import shutil

    _, _, _, path = glm
    bad = tmp_path / "bad"
    shutil.copytree(path, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["text_config"]["rope_parameters"]["partial_rotary_factor"] = 1.0
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(NotImplementedError, match="mrope_section"):
        HookedVideoLLM.from_pretrained(bad)


def test_a_config_with_attention_bias_true_loads_and_equals_hf(glm, tmp_path):
    """GLM-4 configs carry `attention_bias: true`, which HF's Glm4v attention ignores (q/k/v
    always biased, o_proj never): the checkpoint loads and equals HF, unlike Llama's flag."""
    import shutil

    _, _, inputs, path = glm
    biased = tmp_path / "biased"
    shutil.copytree(path, biased)
    cfg = json.loads((biased / "config.json").read_text())
    cfg["text_config"]["attention_bias"] = True
    (biased / "config.json").write_text(json.dumps(cfg))
    model = HookedVideoLLM.from_pretrained(biased)
    hf = transformers.Glm4vForConditionalGeneration.from_pretrained(biased).eval()
    assert (
        hf.config.text_config.attention_bias is True and hf.model.language_model.layers[0].self_attn.o_proj.bias is None
    )
    inputs = model.to_inputs(frames(4, seed=3), Q, n_frames=4, fps=2.0)
    with torch.no_grad():
        diff = (model(inputs) - hf(**inputs).logits).abs().max().item()
    assert diff <= ATOL
