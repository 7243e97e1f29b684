"""to_inputs, VideoLayout against the processor, and clear errors for bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import frames
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vlens import HookedVideoLLM
from vlens.families import UnsupportedModelError
from vlens.inputs.layout import LayoutError
from vlens.inputs.sampling import VideoError
from vlens.inputs.video import write_video


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n_frames=st.integers(1, 6),
    h=st.integers(16, 72),
    w=st.integers(16, 72),
    q=st.sampled_from(["what color", "how many objects are moving"]),
)
def test_layout_matches_config_and_processor(model, n_frames, h, w, q):
    inputs = model.to_inputs(frames(n_frames, h, w), q, n_frames=n_frames)
    lay = inputs.layout
    vc = model.hf_model.config.vision_config
    g = math.ceil((vc.image_size // vc.patch_size) / 2)
    counts = lay.counts()
    assert counts["video"] == n_frames * g * g
    assert counts["separator"] == 1
    ids = inputs["input_ids"][0]
    vision_pos = lay.positions("video", "separator")
    # vision positions are exactly the processor's <video> placeholders, contiguous
    assert torch.equal(vision_pos, (ids == model.hf_model.config.video_token_id).nonzero().flatten())
    assert torch.equal(vision_pos, torch.arange(int(vision_pos[0]), int(vision_pos[-1]) + 1))
    # frames in order, each a full g×g grid in row-major order, separator last
    video = lay.positions("video")
    assert lay.segment[int(vision_pos[-1])] == "separator"
    f, r, c = lay.frame[video], lay.row[video], lay.col[video]
    assert torch.equal(f, torch.arange(n_frames).repeat_interleave(g * g))
    assert torch.equal(r * g + c, torch.arange(g * g).repeat(n_frames))
    assert lay.n_frames == n_frames
    assert set(lay.segment[: int(vision_pos[0])]) == {"system"}
    assert set(lay.segment[int(vision_pos[-1]) + 1 :]) == {"text"}
    labels = model.to_str_tokens(inputs)
    assert labels[int(video[0])] == "<f0 r0 c0>" and labels[int(vision_pos[-1])] == "<sep>"


def test_video_file_folder_and_array_give_the_same_inputs(model, tmp_path):
    clip = np.stack([np.full((32, 32, 3), 8 * k, dtype=np.uint8) for k in range(20)])
    path = write_video(tmp_path / "clip.mp4", clip, fps=10)
    from_file = model.to_inputs(path, "what color", n_frames=4)
    assert from_file.videos[0].indices == (2, 7, 12, 17)
    assert from_file.videos[0].timestamps == pytest.approx((0.2, 0.7, 1.2, 1.7))
    from_array = model.to_inputs(clip, "what color", n_frames=4)
    assert from_array.videos[0].indices == (2, 7, 12, 17) and from_array.videos[0].timestamps is None
    assert torch.equal(from_file["input_ids"], from_array["input_ids"])
    # mp4 compression changes pixels a little, not the structure
    assert (from_file["pixel_values_videos"] - from_array["pixel_values_videos"]).abs().mean() < 0.1
    window = model.to_inputs(path, "what color", n_frames=2, start=1.0, end=2.0)
    assert window.videos[0].indices == (12, 17)


def test_bad_video_inputs_raise_clear_errors(model, tmp_path):
    with pytest.raises(VideoError, match="not found"):
        model.to_inputs(tmp_path / "missing.mp4", "q")
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(VideoError, match="cannot read video"):
        model.to_inputs(bad, "q")
    with pytest.raises(VideoError, match="allow_repeat"):
        model.to_inputs(frames(3), "q", n_frames=8)
    repeated = model.to_inputs(frames(3), "q", n_frames=6, allow_repeat=True)
    assert repeated.videos[0].indices == (0, 0, 1, 1, 2, 2)
    with pytest.raises(VideoError, match="n_frames must be >= 1"):
        model.to_inputs(frames(3), "q", n_frames=0)
    with pytest.raises(VideoError, match="before end"):
        model.to_inputs(frames(3), "q", n_frames=1, start=2.0, end=1.0)
    with pytest.raises(VideoError, match="uint8"):
        model.to_inputs(np.zeros((3, 8, 8, 3), dtype=np.float32), "q", n_frames=1)
    with pytest.raises(ValueError, match="one video per question"):
        model.to_inputs(frames(2), ["q1", "q2"], n_frames=2)
    with pytest.raises(ValueError, match=r"different frame counts \[2, 3\].*same n_frames"):
        two, three = (model.to_inputs(frames(n), "q", n_frames=n).videos[0] for n in (2, 3))
        model.inputs_from_prompts(["a", "b"], [two, three])


def test_placeholder_count_mismatch_is_an_error(model):
    inputs = model.to_inputs(frames(2), "what color", n_frames=2)
    ids = inputs["input_ids"][0].clone()
    first_vision = int(inputs.layout.positions("video")[0])
    ids[first_vision] = ids[0]  # one placeholder fewer than the processor promised
    with pytest.raises(LayoutError, match="placeholder"):
        model.family.layout(ids, None, None, model.hf_model.config, inputs)
    tampered = dict(inputs)
    tampered["input_ids"] = ids[None]
    with pytest.raises(ValueError, match="placeholder"):
        model(tampered)


def test_checkpoint_directory_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        HookedVideoLLM.from_pretrained(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a HF checkpoint"):
        HookedVideoLLM.from_pretrained(tmp_path / "empty")
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    with pytest.raises(UnsupportedModelError, match="LlavaOnevisionForConditionalGeneration"):
        HookedVideoLLM.from_pretrained(bert)
