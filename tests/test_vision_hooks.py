"""Hook points inside the vision tower and projector (issue 29 item 1), for every family.

The reference is HF's own vision modules run by HF's own forward, read with plain PyTorch forward
hooks (no vlens code in the numbers): every tower block's output, the projector's output and the
logits equal ours in fp32 (≤ 1e-5 in the tower, ≤ 1e-4 for logits) with every vision hook point
attached — the pattern ones switch the tower to the hooked eager attention — and without.
"""

from __future__ import annotations

import hf_testers
import pytest
import torch
from conftest import frames

from vlens import HookedVideoLLM, testing
from vlens.model.vision_hooks import VisionHookError, find_tower

TOWER_ATOL = 1e-5
LOGIT_ATOL = 1e-4

# family builder -> (to_inputs kwargs, n_frames)
BUILDERS = {
    "onevision": (testing.make_tiny_onevision, {}, 3),
    "llava_next_video": (testing.make_tiny_llava_next_video, {}, 2),
    "video_llava": (testing.make_tiny_video_llava, {}, 8),
    "qwen2_5_vl": (testing.make_tiny_qwen2_5_vl, {"fps": 3.0}, 4),
    "qwen2_vl": (testing.make_tiny_qwen2_vl, {"fps": 3.0}, 4),
    "qwen3_vl": (testing.make_tiny_qwen3_vl, {"fps": 3.0}, 4),
    "qwen3_vl_moe": (testing.make_tiny_qwen3_vl_moe, {"fps": 3.0}, 2),
    "glm4v": (testing.make_tiny_glm4v, {"fps": 3.0}, 2),
    "smolvlm": (testing.make_tiny_smolvlm, {"fps": 3.0}, 2),
    "internvl": (testing.make_tiny_internvl, {}, 2),
    "video_llama3": (testing.make_tiny_video_llama3, {"fps": 3.0}, 2),
    "perception_lm": (testing.make_tiny_perception_lm, {}, 2),
    "internvideo2_5": (testing.make_tiny_internvideo2_5, {"allow_repeat": True}, 4),
    "llava_next_video_qwen": (testing.make_tiny_llava_next_video_qwen, {"fps": 3.0}, 2),
    "longva": (testing.make_tiny_longva, {}, 2),
}
# released checkpoints vlens runs through its own reconstruction of the authors' glue around HF
# modules (tests/test_releases.py checks those logits): the reference logits are the clean forward's
RELEASES = ("internvideo2_5", "llava_next_video_qwen", "longva")
_LOADED: dict = {}
_OTHER: dict = {}  # the same question on another video


def loaded(name: str, tmp_path_factory):
    if name not in _LOADED:
        build, kw, n = BUILDERS[name]
        path = build(tmp_path_factory.mktemp(name) / "ckpt", seed=0, n_layers=2)
        model = HookedVideoLLM.from_pretrained(path)
        inputs = model.to_inputs(frames(n, 32, 32), "what color is the object", n_frames=n, **kw)
        _LOADED[name] = (model, inputs)
        _OTHER[name] = model.to_inputs(frames(n, 32, 32, seed=1), "what color is the object", n_frames=n, **kw)
    return _LOADED[name]


@pytest.fixture(params=list(BUILDERS), scope="module")
def fam(request, tmp_path_factory):
    return loaded(request.param, tmp_path_factory)


def _hf_reference(model, inputs):
    """HF's forward on the same HF model: each tower block's output, the projector's, the logits."""
    tower = model.vision_hooks.tower
    seen: dict[str, torch.Tensor] = {}
    handles = []

    def keep(name):
        def hook(module, args, out):
            t = out if isinstance(out, torch.Tensor) else out[0]
            seen[name] = (t[None] if t.ndim == 2 else t).detach().clone()

        return hook

    for l, b in enumerate(tower.blocks):
        handles.append(b.block.register_forward_hook(keep(f"vision.blocks.{l}.hook_resid_post")))
    if tower.merger is not None:
        handles.append(tower.merger.register_forward_hook(keep("vision.hook_merger_out")))
    try:
        with torch.no_grad():
            if model.family.name in {"internvideo2.5", "llava-next-video-qwen", "longva"}:
                logits = model(inputs)  # no vision hook: the HF modules run untouched (tested below)
            else:
                kwargs = {k: v for k, v in inputs.items() if k != "position_ids"}
                logits = model.hf_model(**kwargs).logits
    finally:
        for h in handles:
            h.remove()
    return seen, logits


def test_every_family_has_a_hooked_tower(fam):
    model, _ = fam
    tower = model.vision_hooks.tower
    assert tower is not None
    v = model.hf_model.config.vision_config
    args = getattr(v, "model_args", None) or {}  # timm (PerceptionLM) keeps its depth in model_args
    depth = (
        next(getattr(v, k) for k in ("depth", "num_hidden_layers", "num_layers") if hasattr(v, k))
        if not args
        else args["depth"]
    )
    assert len(tower.blocks) == depth
    names = model.vision_hooks.hook_names()
    assert set(names) <= set(model.hook_dict)
    for l in range(depth):
        assert f"vision.blocks.{l}.hook_resid_post" in names and f"vision.blocks.{l}.attn.hook_z" in names
    assert ("vision.hook_merger_out" in names) == (tower.merger is not None)


def test_tower_and_logits_equal_hf_with_and_without_hooks(fam):
    model, inputs = fam
    ref, ref_logits = _hf_reference(model, inputs)
    with torch.no_grad():
        clean = model(inputs)
        logits, cache = model.run_with_cache(inputs, names_filter=lambda n: n.startswith("vision."), vision=True)
    mask = inputs["attention_mask"].bool()
    assert (clean - ref_logits)[mask].abs().max() <= LOGIT_ATOL
    assert (logits - ref_logits)[mask].abs().max() <= LOGIT_ATOL
    assert (logits - clean)[mask].abs().max() <= TOWER_ATOL
    # every vision hook point fired, the pattern ones included where the tower has them
    assert set(model.vision_hooks.hook_names()) <= set(cache.keys())
    for name, t in ref.items():
        assert (cache[name] - t).abs().max() <= TOWER_ATOL, name
    for l in range(1, len(model.vision_hooks.blocks)):
        assert torch.equal(cache[f"vision.blocks.{l}.hook_resid_pre"], cache[f"vision.blocks.{l - 1}.hook_resid_post"])
    for l in model.vision_hooks.pattern_layers():
        p = cache[f"vision.blocks.{l}.attn.hook_pattern"]
        torch.testing.assert_close(p.sum(-1), torch.ones_like(p.sum(-1)))


def test_no_vision_hook_leaves_hf_untouched(fam):
    """With no vision hook attached nothing is installed: no PyTorch hook on any HF vision module,
    the attention implementation unchanged, and the forward bitwise HF's own placement."""
    model, inputs = fam
    tower = model.vision_hooks.tower
    before = [c._attn_implementation for c in tower.attn_configs]
    installed = []

    def count(t, hook):
        # HF's own output-capturing hooks stay; vlens adds none while no vision hook is attached
        installed.append(sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in tower.root.modules()))
        return t

    idle = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in tower.root.modules())
    with torch.no_grad():
        model.run_with_hooks(inputs, fwd_hooks=[("hook_embed", count)])
    assert installed == [idle]
    assert [c._attn_implementation for c in tower.attn_configs] == before


def test_z_ablation_equals_the_same_edit_on_hf(fam):
    """Zeroing head 0 of `vision.blocks.0.attn.hook_z` equals zeroing that slice of the output
    projection's input on the HF model with a plain PyTorch hook."""
    model, inputs = fam
    b = model.vision_hooks.tower.blocks[0]
    d_head = b.attn_out.in_features // b.n_heads

    def zero_head(z, hook):
        z = z.clone()
        z[..., 0, :] = 0
        return z

    def hf_zero(module, args):
        x = args[0].clone()
        x[..., :d_head] = 0
        return (x,)

    with torch.no_grad():
        ours = model.run_with_hooks(inputs, fwd_hooks=[("vision.blocks.0.attn.hook_z", zero_head)])
        h = b.attn_out.register_forward_pre_hook(hf_zero)
        try:
            ref = model(inputs)
        finally:
            h.remove()
        clean = model(inputs)
    mask = inputs["attention_mask"].bool()
    assert (ours - ref)[mask].abs().max() <= TOWER_ATOL
    assert (ours - clean)[mask].abs().max() > 1e-4  # the edit reaches the logits


@pytest.fixture(params=list(BUILDERS), scope="module")
def fam_name(request, tmp_path_factory):
    loaded(request.param, tmp_path_factory)
    return request.param


def test_patching_a_tower_activation_from_a_clean_run(fam_name):
    """Activation patching works like the LM's: the projector's output (or the last block's)
    cached on one video and written into a run on another gives the first video's logits."""
    model, inputs = _LOADED[fam_name]
    other = _OTHER[fam_name]
    last = len(model.vision_hooks.blocks) - 1
    names = [n for n in model.vision_hooks.hook_names() if n.endswith("hook_merger_out")]  # DeepStack's too
    names = names or [f"vision.blocks.{last}.hook_resid_post"]
    with torch.no_grad():
        clean, cache = model.run_with_cache(inputs, names_filter=names)
        patched = model.run_with_hooks(other, fwd_hooks=[(n, lambda t, hook: cache[hook.name]) for n in names])
        corrupted = model(other)
    assert (patched - clean).abs().max() <= TOWER_ATOL
    assert (corrupted - clean).abs().max() > 1e-4


def test_unknown_vision_hook_names_list_the_family_s(tmp_path_factory):
    model, inputs = loaded("onevision", tmp_path_factory)
    with pytest.raises(
        VisionHookError, match=r"no such hook point \(2 tower blocks, l = 0..1\).*vision.blocks.\{l\}.attn.hook_z"
    ):
        model.run_with_hooks(inputs, fwd_hooks=[("vision.blocks.7.hook_resid_post", lambda t, hook: t)])
    with pytest.raises(VisionHookError, match=r"vision\.hook_merger_out"):
        model.run_with_cache(inputs, names_filter=["vision.deepstack.0.hook_merger_in"])
    pl, pl_inputs = loaded("perception_lm", tmp_path_factory)
    with pytest.raises(VisionHookError, match=r"AttentionInterface.*hook_z"):
        pl.run_with_hooks(pl_inputs, fwd_hooks=[("vision.blocks.0.attn.hook_pattern", lambda t, hook: t)])


def test_deepstack_taps(tmp_path_factory):
    model, inputs = loaded("qwen3_vl", tmp_path_factory)
    n = len(model.vision_hooks.tower.deepstack)
    assert n == len(model.hf_model.config.vision_config.deepstack_visual_indexes)
    names = [f"vision.deepstack.{i}.hook_merger_out" for i in range(n)]
    with torch.no_grad():
        _, cache = model.run_with_cache(inputs, names_filter=[*names, "blocks.0.hook_deepstack"])
    # the first DeepStack merger's output is what block 0 adds at the vision positions
    where = inputs["input_ids"][0] == model.family.video_token_id(model.hf_model.config)
    torch.testing.assert_close(cache["blocks.0.hook_deepstack"][0, where], cache[names[0]][0], atol=TOWER_ATOL, rtol=0)


@pytest.mark.parametrize("name", list(hf_testers.TESTERS))
def test_hf_tester_shapes(name):
    """HF's own tester configurations: every tower block's output and the logits equal HF with
    every vision hook point attached."""
    t = hf_testers.TESTERS[name]()
    model = HookedVideoLLM.from_hf(t.hf, None)
    assert find_tower(model.vision) is not None
    inputs = model.inputs_from_hf(t.video_kwargs, images_as_frames=t.images_as_frames)
    ref, ref_logits = _hf_reference(model, inputs)
    with torch.no_grad():
        logits, cache = model.run_with_cache(inputs, names_filter=lambda n: n.startswith("vision."), vision=True)
    mask = inputs["attention_mask"].bool()
    assert (logits - ref_logits)[mask].abs().max() <= LOGIT_ATOL
    for k, v in ref.items():
        assert (cache[k] - v).abs().max() <= TOWER_ATOL, k


def test_vision_hooks_are_opt_in_and_their_cache_is_bounded(fam):
    """A filter function (or none) caches no vision hook unless `vision=True`; the memory
    estimate for vision hooks bounds what is kept."""
    from vlens.model import cache_memory

    model, inputs = fam
    with torch.no_grad():
        _, plain = model.run_with_cache(inputs, names_filter=lambda n: "resid_post" in n)
        names = model.vision_hooks.hook_names()
        _, vision = model.run_with_cache(inputs, names_filter=names)
    assert plain.keys() and not [k for k in plain.cache_dict if k.startswith("vision.")]
    kept = sum(t.numel() * t.element_size() for t in vision.cache_dict.values())
    bound = cache_memory.estimate(model, inputs, names).total
    assert kept <= bound <= 8 * kept


@pytest.mark.parametrize("name", ["onevision", "qwen2_5_vl"])
def test_a_batch_of_two_videos_and_gradients_through_the_tower(name, tmp_path_factory):
    """Two videos in one batch equal each alone with every vision hook attached (per-frame rows /
    one packed row holding both), and backward hooks on the tower's hook points receive gradients."""
    model, inputs = loaded(name, tmp_path_factory)
    _, kw, n = BUILDERS[name]
    q = "what color is the object"
    both = model.to_inputs([frames(n, 32, 32), frames(n, 32, 32, seed=1)], [q, q], n_frames=n, **kw)
    keep = lambda n_: n_.startswith("vision.")
    with torch.no_grad():
        batched, _ = model.run_with_cache(both, names_filter=keep, vision=True)
        alone = [model.run_with_cache(x, names_filter=keep, vision=True)[0] for x in (inputs, _OTHER[name])]
    for row, ref in enumerate(alone):
        m = both["attention_mask"][row].bool()
        assert (batched[row, m] - ref[0]).abs().max() <= LOGIT_ATOL
    grads = {}
    hook = "vision.blocks.0.hook_resid_post"
    logits = model.run_with_hooks(
        inputs, fwd_hooks=[], bwd_hooks=[(hook, lambda g, hook: grads.setdefault(hook.name, g.detach().clone()))]
    )
    logits[0, -1].sum().backward()
    model.zero_grad(set_to_none=True)
    assert hook in grads and grads[hook].abs().sum() > 0


def test_filter_functions_reach_the_tower_only_when_asked(tmp_path_factory):
    """`lambda n: n.endswith("hook_pattern")` names the language model's patterns in run_with_hooks
    as in run_with_cache (attention_flow relies on it); `hooks(..., vision=True)` or an explicit
    name reaches the tower's."""
    model, inputs = loaded("onevision", tmp_path_factory)
    seen: list[str] = []

    def record(t, hook):
        seen.append(hook.name)
        return t

    model.run_with_hooks(inputs, fwd_hooks=[(lambda n: n.endswith("attn.hook_pattern"), record)])
    assert seen and not any(n.startswith("vision.") for n in seen)
    seen.clear()
    with model.hooks(fwd_hooks=[(lambda n: n.endswith("attn.hook_pattern"), record)], vision=True):
        model(inputs)
    assert any(n.startswith("vision.") for n in seen) and any(n.startswith("blocks.") for n in seen)
    seen.clear()
    model.run_with_hooks(inputs, fwd_hooks=[("vision.blocks.0.attn.hook_pattern", record)])
    assert seen == ["vision.blocks.0.attn.hook_pattern"]
