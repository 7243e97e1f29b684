"""inputs_from_hf on HF's own test shapes, images, never-silent inputs, mixed resolutions
(issue 17 items 1-4 and 6)."""

from __future__ import annotations

import hf_testers
import numpy as np
import pytest
import torch
from conftest import frames
from hf_reference import hf_knockout

from vlens import HookedVideoLLM
from vlens import knockout as ko
from vlens.inputs.layout import LayoutError

ATOL = 1e-4
_CACHE: dict = {}


def built(name: str):
    if name not in _CACHE:
        t = hf_testers.TESTERS[name]()
        _CACHE[name] = (t, HookedVideoLLM.from_hf(t.hf, None))
    return _CACHE[name]


@pytest.fixture(params=list(hf_testers.TESTERS), scope="module")
def hft(request):
    return built(request.param)


def _diff(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    return float((a - b).abs().amax(-1)[mask.bool()].max())


def test_hf_test_shapes_match_hf_through_inputs_from_hf(hft):
    t, model = hft
    for kwargs, as_frames in ((t.kwargs, False), (t.video_kwargs, t.images_as_frames)):
        inputs = model.inputs_from_hf(kwargs, images_as_frames=as_frames)
        assert len(inputs.layouts) == kwargs["input_ids"].shape[0]
        with torch.no_grad():
            ours, ref = model(inputs), t.hf(**kwargs).logits
        assert _diff(ours, ref, kwargs["attention_mask"]) <= ATOL
        # every placeholder of the family is laid out as image or video, nothing else
        lay = inputs.layouts[0]
        n_media = int((lay.mask("video", "separator", "image")).sum())
        image_id, video_id = model.family.media_ids(t.hf.config)
        ids = kwargs["input_ids"][0]
        assert n_media == int(sum((ids == i).sum() for i in (image_id, video_id) if i is not None))


# Video-LLaVA's tester rows are 2044 positions long: its knockouts run in the slow suite
_KO_CASES = [
    pytest.param(n, s, marks=[pytest.mark.slow] if n == "video_llava" else [])
    for n in hf_testers.TESTERS
    for s in ("lv", "vt", "vs")
]


# HF's tester shapes have one-token frames, where VS-K removes nothing (and says so): still equal to HF
@pytest.mark.filterwarnings("ignore::vlens.interventions.knockout.KnockoutWarning")
@pytest.mark.parametrize("name, spec_name", _KO_CASES)
def test_hf_test_shapes_knockouts_equal_the_hf_reference(name, spec_name):
    t, model = built(name)
    inputs = model.inputs_from_hf(t.video_kwargs, images_as_frames=t.images_as_frames)
    L = model.cfg.n_layers
    layer_list = list(range(L // 2, L))
    hooks = ko.from_name(spec_name).hooks(inputs, layers=ko.layers(layer_list))
    blocked = hooks[0][1].blocked_full(inputs.seq_len, "cpu")
    with torch.no_grad():
        ours = model.run_with_hooks(inputs, fwd_hooks=hooks)
        with hf_knockout(t.hf, dict.fromkeys(layer_list, blocked)):
            ref = t.hf(**t.video_kwargs).logits
        clean = t.hf(**t.video_kwargs).logits
    mask = t.video_kwargs["attention_mask"]
    assert _diff(ours, ref, mask) <= ATOL
    if bool(blocked.any()):  # VS-K removes nothing where a frame is one token (OneVision, Qwen2.5-VL here)
        assert _diff(ref, clean, mask) > 1e-6, f"{spec_name} changed nothing: the comparison would be vacuous"


def test_inputs_hf_accepts_but_vlens_does_not_run_exactly_are_refused():
    t, model = built("qwen2_5_vl")
    with pytest.raises(ValueError, match=r"does not run these qwen2.5-vl inputs exactly: \['position_ids'\]"):
        model.inputs_from_hf({**t.kwargs, "position_ids": torch.zeros(3, 3, 39, dtype=torch.long)})
    with pytest.raises(ValueError, match=r"needs input_ids .*pass input_ids instead"):
        model.inputs_from_hf({"inputs_embeds": torch.zeros(1, 3, 32)})
    with pytest.raises(LayoutError, match="pixel values without image_grid_thw"):
        model.inputs_from_hf({k: v for k, v in t.kwargs.items() if k != "image_grid_thw"})
    with pytest.raises(TypeError, match="as a dict"):
        model.inputs_from_hf([t.kwargs["input_ids"]])
    ov, ov_model = built("llava_onevision")
    with pytest.raises(LayoutError, match="pixel_values without image_sizes"):
        ov_model.inputs_from_hf({k: v for k, v in ov.kwargs.items() if k != "image_sizes"})
    short = {**ov.kwargs, "input_ids": ov.kwargs["input_ids"].clone()}
    short["input_ids"][0, 0] = 5  # one image placeholder fewer than the image fills
    with pytest.raises(LayoutError, match="row 0 has 9 image placeholder tokens but the images given to it fill 10"):
        ov_model.inputs_from_hf(short)


def test_qwen_positions_follow_the_kwargs_given():
    t, model = built("qwen2_5_vl")
    kw = dict(t.video_kwargs)
    inputs = model.inputs_from_hf(kw)
    plain = model.position_ids(inputs)  # no mm_token_type_ids: HF uses 0..n-1 on every axis
    assert torch.equal(
        plain.reshape(-1, *kw["input_ids"].shape)[0], torch.arange(kw["input_ids"].shape[1]).expand_as(kw["input_ids"])
    )
    types = (kw["input_ids"] == 5).long() * 2
    with_types = model.inputs_from_hf({**kw, "mm_token_type_ids": types})
    rope = model.position_ids(with_types)
    ref, _ = t.hf.model.get_rope_index(
        kw["input_ids"],
        mm_token_type_ids=types,
        video_grid_thw=kw["video_grid_thw"],
        second_per_grid_ts=kw["second_per_grid_ts"],
        attention_mask=kw["attention_mask"],
    )
    assert torch.equal(rope, ref) and not torch.equal(
        rope[0], plain.reshape(rope.shape[-2:]) if plain.ndim == 2 else plain[0]
    )
    with torch.no_grad():
        assert _diff(model(with_types), t.hf(**with_types).logits, kw["attention_mask"]) <= ATOL


# images and mixed resolutions through the processor ---------------------------------------------
@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    from vlens.testing import make_tiny_qwen2_5_vl

    return HookedVideoLLM.from_pretrained(make_tiny_qwen2_5_vl(tmp_path_factory.mktemp("qwen") / "ckpt", seed=0))


def test_images_with_and_without_video_match_hf_and_are_laid_out(qwen):
    img_a, img_b = frames(1, 40, 56, seed=1)[0], frames(1, 28, 28, seed=2)[0]
    both = qwen.to_inputs(frames(4), "what", n_frames=4, fps=2.0, images=[img_a, img_b])
    only = qwen.to_inputs(None, "what", images=img_a)
    for inputs in (both, only):
        with torch.no_grad():
            assert _diff(qwen(inputs), qwen.hf_model(**inputs).logits, inputs["attention_mask"]) <= ATOL
    lay = both.layout
    m = qwen.hf_model.config.vision_config.spatial_merge_size
    grids = both["image_grid_thw"].tolist()
    assert lay.n_images == 2 and lay.n_frames == 2
    for k, (_, h, w) in enumerate(grids):
        pos = (lay.image == k).nonzero().flatten()
        assert len(pos) == (h // m) * (w // m)
        assert torch.equal(lay.row[pos] * (w // m) + lay.col[pos], torch.arange(len(pos)))
    assert int(lay.positions("image")[-1]) < int(lay.positions("video")[0])  # images come first in the prompt
    labels = qwen.to_str_tokens(both)
    assert labels[int(lay.positions("image")[0])] == "<i0 r0 c0>"
    # LV-K: the question is cut from the video only; image positions are neither query nor key
    blocked = ko.LV().blocked(lay)
    assert not blocked[:, lay.is_image].any() and not blocked[lay.is_image].any()


def test_mixed_resolution_batch_rows_equal_rows_alone(qwen):
    clips = [frames(4, 32, 32, seed=1), frames(4, 56, 84, seed=2)]
    qs = ["what colour", "how many objects are moving here"]
    batch = qwen.to_inputs(clips, qs, n_frames=4, fps=2.0)
    assert batch["video_grid_thw"][0].tolist() != batch["video_grid_thw"][1].tolist()
    hooks = (ko.LV() | ko.VT()).hooks(batch, layers=ko.from_layer(1))
    with torch.no_grad():
        clean, knocked = qwen(batch), qwen.run_with_hooks(batch, fwd_hooks=hooks)
        for i in range(2):
            alone = qwen.to_inputs(clips[i], qs[i], n_frames=4, fps=2.0)
            n = alone.seq_len
            row_hooks = (ko.LV() | ko.VT()).hooks(alone, layers=ko.from_layer(1))
            assert (clean[i, -n:] - qwen(alone)[0]).abs().max() <= ATOL
            assert (knocked[i, -n:] - qwen.run_with_hooks(alone, fwd_hooks=row_hooks)[0]).abs().max() <= ATOL
        assert (clean[:, -1] - qwen.hf_model(**batch).logits[:, -1]).abs().max() <= ATOL


def test_images_as_frames_needs_image_rows():
    from vlens.inputs.video_inputs import as_frames

    t, model = built("qwen2_5_vl")
    with pytest.raises(ValueError, match="images_as_frames: the row already has video"):
        as_frames(model.inputs_from_hf(t.video_kwargs).layouts[0])
    with pytest.raises(ValueError, match="images_as_frames: the row has no image"):
        as_frames(model.inputs_from_hf({"input_ids": t.kwargs["input_ids"][:, -3:]}).layouts[0])


def test_bad_images_are_refused(qwen, tmp_path):
    with pytest.raises(ValueError, match=r"an image array must be uint8 \[H, W, 3\]"):
        qwen.to_inputs(None, "q", images=np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match="one list per row"):
        qwen.to_inputs([None, None], ["a", "b"], images=[frames(1)[0]])
    with pytest.raises(ValueError, match="nothing to show the model"):
        qwen.to_inputs(None, "q")


def test_mixed_resolution_batch_of_a_resizing_family(model):
    """LLaVA-OneVision's processor resizes every frame: 32×32 and 48×64 clips share a batch and
    each row equals the row alone, knockouts included."""
    clips, qs = [frames(3, 32, 32, seed=1), frames(3, 48, 64, seed=2)], ["what", "what is moving here"]
    batch = model.to_inputs(clips, qs, n_frames=3)
    spec = ko.LV() | ko.VT()
    with torch.no_grad():
        clean = model(batch)
        knocked = model.run_with_hooks(batch, fwd_hooks=spec.hooks(batch, layers=ko.from_layer(1)))
        for i in range(2):
            alone = model.to_inputs(clips[i], qs[i], n_frames=3)
            n = alone.seq_len
            assert (clean[i, -n:] - model(alone)[0]).abs().max() <= ATOL
            ref = model.run_with_hooks(alone, fwd_hooks=spec.hooks(alone, layers=ko.from_layer(1)))[0]
            assert (knocked[i, -n:] - ref).abs().max() <= ATOL
