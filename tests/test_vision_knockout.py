"""Knockouts inside the vision tower (issue 29 item 1): Qwen2.5-VL's window edges against HF with
the same mask through transformers' AttentionInterface, the masks against their definition, and
the refusals (a tower without windows, frames that never meet in any tower)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import frames
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AttentionInterface
from transformers.vision_utils import get_vision_window_index

from vlens import HookedVideoLLM, testing
from vlens import vision_knockout as vko
from vlens.model.vision_hooks import TowerCall

TOWER_ATOL = 1e-5
LOGIT_ATOL = 1e-4
REF_NAME = "vlens_test_reference_flash_varlen"  # "flash": HF passes the packed sequence in one call


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    path = testing.make_tiny_qwen2_5_vl(tmp_path_factory.mktemp("q25") / "ckpt", seed=0, n_layers=2)
    model = HookedVideoLLM.from_pretrained(path)
    inputs = model.to_inputs(frames(4, 32, 32), "what color is the object", n_frames=4, fps=3.0)
    return model, inputs


@pytest.fixture(scope="module")
def onevision(tmp_path_factory):
    path = testing.make_tiny_onevision(tmp_path_factory.mktemp("ov") / "ckpt", seed=0, n_layers=2)
    model = HookedVideoLLM.from_pretrained(path)
    return model, model.to_inputs(frames(2), "what color is the object", n_frames=2)


def _reference(model, inputs, allowed_rule, layers):
    """HF's forward with the tower's attention replaced by SDPA under a boolean mask built from
    the definition: same cu_seqlens group, and `allowed_rule(window_q, window_k, i, j)` on the
    knocked-out layers. Windows from HF's own get_vision_window_index (read in a pre-hook)."""
    visual = model.hf_model.model.visual
    cfg = visual.config
    layer_of = {id(b.attn): l for l, b in enumerate(visual.blocks)}
    state = {}

    def grab(module, args, kwargs):
        grid = kwargs.get("grid_thw", args[1] if len(args) > 1 else None)
        _, cu = get_vision_window_index(grid, cfg.spatial_merge_size, cfg.window_size, cfg.patch_size)
        cu = torch.unique_consecutive(torch.as_tensor(cu))
        state["window"] = torch.bucketize(torch.arange(int(cu[-1])), cu[1:], right=True)

    def attention(module, q, k, v, attention_mask, scaling=None, cu_seq_lens_q=None, **kwargs):
        n = q.shape[-2]
        assert cu_seq_lens_q is not None  # the "flash" name makes HF pass the packed sequence
        group = torch.bucketize(torch.arange(n), cu_seq_lens_q[1:].cpu(), right=True)
        allowed = group[:, None] == group[None, :]
        if layer_of[id(module)] in layers:
            w = state["window"]
            i = torch.arange(n)
            allowed &= allowed_rule(w[:, None], w[None, :], i[:, None], i[None, :])
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=scaling)
        return out.transpose(1, 2).contiguous(), None

    AttentionInterface.register(REF_NAME, attention)
    old = cfg._attn_implementation
    h = visual.register_forward_pre_hook(grab, with_kwargs=True)
    cfg._attn_implementation = REF_NAME
    merged = {}
    h2 = visual.merger.register_forward_hook(lambda m, a, o: merged.setdefault("out", o.detach().clone()))
    try:
        with torch.no_grad():
            kwargs = {k: v for k, v in inputs.items() if k != "position_ids"}
            logits = model.hf_model(**kwargs).logits
    finally:
        cfg._attn_implementation = old
        h.remove()
        h2.remove()
    return logits, merged["out"]


RULES = {
    "across_windows": (vko.AcrossWindows(), lambda wq, wk, i, j: wq == wk),
    "within_window": (vko.WithinWindow(), lambda wq, wk, i, j: (wq != wk) | (i == j)),
    "both": (vko.AcrossWindows() | vko.WithinWindow(), lambda wq, wk, i, j: i == j),
}


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("layers", [None, [0], [0, 1]])
def test_window_knockouts_equal_hf_with_the_same_mask(qwen, rule, layers):
    model, inputs = qwen
    spec, allowed = RULES[rule]
    full = model.hf_model.config.vision_config.fullatt_block_indexes
    if layers is not None and spec.needs_windows and "across" in rule and any(l not in full for l in layers):
        with pytest.raises(vko.VisionKnockoutError, match="attend within windows already"):
            spec.hooks(model, layers=layers)
        return
    hooks = spec.hooks(model, layers=layers)
    chosen = sorted({int(n.split(".")[2]) for n, _ in hooks})
    assert chosen == (sorted(spec.default_layers(model)) if layers is None else layers)
    ref_logits, ref_merged = _reference(model, inputs, allowed, chosen)
    with torch.no_grad():
        _, cache = model.run_with_cache(inputs, names_filter=["vision.hook_merger_out"])
        cache_ko = {}

        def keep(t, hook):
            cache_ko["out"] = t.clone()
            return t

        ko_logits = model.run_with_hooks(inputs, fwd_hooks=[*hooks, ("vision.hook_merger_out", keep)])
    mask = inputs["attention_mask"].bool()
    assert (cache_ko["out"][0] - ref_merged).abs().max() <= TOWER_ATOL
    assert (ko_logits - ref_logits)[mask].abs().max() <= LOGIT_ATOL
    assert (cache_ko["out"] - cache["vision.hook_merger_out"]).abs().max() > 1e-4  # the knockout does something


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=24).map(sorted))
def test_window_masks_partition_a_group_s_edges(windows):
    """AcrossWindows, WithinWindow and the diagonal split every edge of a group exactly once,
    and no spec empties a row (each keeps the token's own edge)."""
    w = torch.tensor(windows)
    call = TowerCall(group=torch.zeros(len(w), dtype=torch.long), window=w, layer=0)
    across, within = vko.AcrossWindows().blocked(call), vko.WithinWindow().blocked(call)
    n = len(w)
    for i in range(n):
        for j in range(n):
            assert bool(across[i, j]) == (windows[i] != windows[j])
            assert bool(within[i, j]) == (windows[i] == windows[j] and i != j)
    assert not (across & within).any()
    assert torch.equal(across | within | torch.eye(n, dtype=torch.bool), torch.ones(n, n, dtype=torch.bool))
    assert (~(vko.AcrossWindows() | vko.WithinWindow()).blocked(call)).any(-1).all()


def test_towers_without_windows_or_frames_are_refused_with_the_reason(qwen, onevision):
    q, _ = qwen
    ov, _ = onevision
    with pytest.raises(vko.VisionKnockoutError, match=r"no across-frame edges.*temporal patch group \(2 frames fused"):
        vko.AcrossFrames().hooks(q)
    with pytest.raises(vko.VisionKnockoutError, match=r"no across-frame edges.*one row per frame"):
        vko.AcrossFrames().hooks(ov)
    with pytest.raises(vko.VisionKnockoutError, match=r"no window attention.*only Qwen2.5-VL"):
        vko.WithinWindow().hooks(ov)
    with pytest.raises(vko.VisionKnockoutError, match=r"layers \[5\] out of range.*2 blocks"):
        vko.WithinWindow().hooks(q, layers=[5])
    with pytest.raises(vko.VisionKnockoutError, match=r"layers \[0\] attend within windows already.*\[1\]"):
        vko.AcrossWindows().hooks(q, layers=[0])
