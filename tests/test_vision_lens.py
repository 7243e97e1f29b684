"""The logit lens of the vision positions and of the tower's layers (issue 29 item 5)."""

from __future__ import annotations

import pytest
import torch
from conftest import frames

from vlens import HookedVideoLLM, testing
from vlens.figures.vision_lens import plot_vision_lens
from vlens.interventions.vision_lens import tower_lens, vision_token_lens


@pytest.fixture(scope="module", params=["onevision", "qwen2_5_vl"])
def fam(request, tmp_path_factory):
    build, kw, n = {
        "onevision": (testing.make_tiny_onevision, {}, 3),
        "qwen2_5_vl": (testing.make_tiny_qwen2_5_vl, {"fps": 3.0}, 4),
    }[request.param]
    path = build(tmp_path_factory.mktemp(request.param) / "ckpt", seed=0, n_layers=2, vision_layers=3)
    model = HookedVideoLLM.from_pretrained(path)
    return model, model.to_inputs(frames(n), "what color is the object", n_frames=n, **kw)


def test_lm_lens_decodes_the_cached_residual_at_every_vision_position(fam):
    model, inputs = fam
    lens = vision_token_lens(model, inputs, k=3)
    where = inputs.layout.is_vision.nonzero().flatten()
    assert torch.equal(lens.positions, where)
    L = model.cfg.n_layers
    with torch.no_grad():
        logits, cache = model.run_with_cache(inputs, names_filter=lambda n: "resid" in n)
    for l in range(L):
        ref = model.unembed(model.ln_final(cache[f"blocks.{l}.hook_resid_pre"]))[0, where].softmax(-1)
        top = ref.topk(3, dim=-1)
        assert torch.equal(lens.top_ids[l], top.indices)
        torch.testing.assert_close(lens.top_probs[l], top.values, atol=1e-6, rtol=0)
    # the last layer with the norm is the model's own prediction at those positions
    assert torch.equal(lens.top_ids[L, :, 0], logits[0, where].argmax(-1))
    assert lens.labels == [f"{l}_pre" for l in range(L)] + ["final"]


def test_tower_lens_equals_cutting_the_hf_tower_with_plain_hooks(fam):
    """Layer l of the tower lens equals HF's vision path with its blocks after l replaced by
    identities (plain PyTorch hooks on HF's blocks), embedded and decoded; its last layer is the
    LM lens's first (the embedding)."""
    model, inputs = fam
    lens = tower_lens(model, inputs, k=2)
    lm = vision_token_lens(model, inputs, k=2)
    assert torch.equal(lens.top_ids[-1], lm.top_ids[0])
    blocks = [b.block for b in model.vision_hooks.tower.blocks]
    assert lens.top_ids.shape[0] == len(blocks) == 3
    where = lens.positions
    for l in range(len(blocks)):
        handles = [
            b.register_forward_hook(
                lambda m, args, kwargs, out: args[0] if args else kwargs["hidden_states"],
                with_kwargs=True,
                prepend=True,  # before HF's own output-capturing hooks (hidden_states[feature_layer])
            )
            for b in blocks[l + 1 :]
        ]
        try:
            with torch.no_grad():
                x = model.embed_inputs(inputs)
        finally:
            for h in handles:
                h.remove()
        ref = model.unembed(model.ln_final(x))[0, where].softmax(-1).topk(2, dim=-1)
        assert torch.equal(lens.top_ids[l], ref.indices), l
        torch.testing.assert_close(lens.top_probs[l], ref.values, atol=1e-6, rtol=0)
    assert lens.labels == ["tower 0", "tower 1", "tower 2"]


def test_bad_arguments_are_refused(fam):
    model, inputs = fam
    with pytest.raises(ValueError, match=r"k=0 must be between 1 and d_vocab"):
        vision_token_lens(model, inputs, k=0)
    with pytest.raises(ValueError, match=r"row=3 is outside the batch of 1"):
        tower_lens(model, inputs, row=3)
    with pytest.raises(ValueError, match="no layout"):
        vision_token_lens(model, {"input_ids": inputs["input_ids"]})


def test_the_figure(fam, tmp_path):
    model, inputs = fam
    tower, lm = tower_lens(model, inputs), vision_token_lens(model, inputs)
    out = plot_vision_lens(tower, lm, model.tokenizer, tmp_path / "lens.png", frames=[0, 1])
    assert out.exists() and out.stat().st_size > 10_000
    assert plot_vision_lens(None, lm, model.tokenizer, tmp_path / "lm.svg").exists()
    with pytest.raises(ValueError, match=r"frames=\[9\] select no vision position"):
        plot_vision_lens(tower, lm, model.tokenizer, tmp_path / "x.png", frames=[9])
