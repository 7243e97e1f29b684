"""HookedVideoLLM equals the HF model it was loaded from (fp32, max abs diff ≤ 1e-4)."""

from __future__ import annotations

import pytest
import torch
from conftest import frames

ATOL = 1e-4


def _max_diff(a, b, mask):
    return (a - b)[mask.bool()].abs().max().item()


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("n_frames,h,w", [(1, 32, 32), (3, 32, 32), (4, 40, 56)])
def test_clean_logits_match_hf(model, hf_models, impl, n_frames, h, w):
    inputs = model.to_inputs(frames(n_frames, h, w), "what color is the object", n_frames=n_frames)
    with torch.no_grad():
        ref = hf_models[impl](**inputs).logits
        ours = model(inputs)
    assert ours.shape == ref.shape
    assert _max_diff(ours, ref, inputs["attention_mask"]) <= ATOL


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_padded_batch_matches_hf_and_single_rows(model, hf_models, impl):
    qs = ["what color is the object", "how many objects are moving to the left in the video"]
    vids = [frames(2, seed=1), frames(2, seed=2)]
    inputs = model.to_inputs(vids, qs, n_frames=2)
    assert (inputs["attention_mask"][0] == 0).any(), "the shorter row must be left-padded"
    assert inputs.layouts[0].counts()["pad"] > 0
    with torch.no_grad():
        ref = hf_models[impl](**inputs).logits
        ours = model(inputs)
        single = model(model.to_inputs(vids[0], qs[0], n_frames=2))
    assert _max_diff(ours, ref, inputs["attention_mask"]) <= ATOL
    # the answer position of every row is the last position, padding changes nothing there
    assert (ours[0, -1] - single[0, -1]).abs().max().item() <= ATOL


def test_cache_matches_hf_hidden_states(model, hf_models):
    inputs = model.to_inputs(frames(3), "which object appears first", n_frames=3)
    with torch.no_grad():
        ref = hf_models["sdpa"](**inputs, output_hidden_states=True)
        _, cache = model.run_with_cache(inputs)
    L = model.cfg.n_layers
    assert len(ref.hidden_states) == L + 1
    for i, h in enumerate(ref.hidden_states):
        name = f"blocks.{i}.hook_resid_pre" if i < L else "ln_final.hook_normalized"
        assert (h - cache[name]).abs().max().item() <= ATOL, name


def test_greedy_generate_matches_hf(model, hf_models):
    inputs = model.to_inputs(frames(2), "what color is the object", n_frames=2)
    with torch.no_grad():
        ref = hf_models["sdpa"].generate(**inputs, max_new_tokens=8, do_sample=False)
    ours = model.generate(inputs, max_new_tokens=8)
    n = inputs["input_ids"].shape[1]
    assert ours.tolist() == ref[:, n:].tolist()


def test_from_hf_shares_weights_with_the_hf_model(hf_models, onevision_dir):
    from transformers import AutoProcessor

    from vlens import HookedVideoLLM

    hf = hf_models["sdpa"]
    m = HookedVideoLLM.from_hf(hf, AutoProcessor.from_pretrained(onevision_dir))
    lm = hf.model.language_model
    assert m.blocks[0].attn.q_proj.weight.data_ptr() == lm.layers[0].self_attn.q_proj.weight.data_ptr()
    assert m.embed.W_E.data_ptr() == lm.embed_tokens.weight.data_ptr()
    assert m.unembed.W_U.data_ptr() == hf.lm_head.weight.data_ptr()
