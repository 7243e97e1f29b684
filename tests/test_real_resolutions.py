"""Real videos at real resolutions: a real H.264 file (libx264, 640×360 and 1280×720) read by
decord and the checkpoint's own processor under its real settings (vlens.testing.realistic).
Tokens per frame are the published numbers, the layout holds the frames sampled, LV-K and VT-K
block exactly the edges the layout implies, and LV-K equals HF with the same mask.

The longer frame counts (32, 64) and every checkpoint: benchmarks/real_resolutions.py, which
runs the same checks and times them (docs/performance.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlens import HookedVideoLLM
from vlens import knockout as ko
from vlens.testing.realistic import realistic_spec

QUESTION = "Which way does the red ball move?"


def _h264(path, height, width, n=48, fps=24):
    import av

    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for k in range(n):
            f = np.stack([(xx + 5 * k) % 256, yy % 256, np.full_like(xx, 50)], -1).astype(np.uint8)
            f[height // 3 : height // 2, 10 * k : 10 * k + height // 6] = 250
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("real-res")
    return {(h, w): _h264(root / f"{w}x{h}.mp4", h, w) for h, w in [(360, 640), (720, 1280)]}


def _edges(layout) -> tuple[int, int]:
    """LV-K's and VT-K's edges, counted position by position from the layout."""
    vision = layout.is_vision.tolist()
    last_vision = max(i for i, v in enumerate(vision) if v)
    lv = sum(
        1 for q in range(last_vision + 1, len(layout)) if layout.segment[q] != "pad" for k in range(q) if vision[k]
    )
    frames = np.array([f for f, s in zip(layout.frame.tolist(), layout.segment) if s == "video"])
    vt = int(np.tril(frames[:, None] != frames[None, :], -1).sum())  # earlier video keys of other frames
    return lv, vt


def _blocked(spec, inputs) -> torch.Tensor:
    return spec.hooks(inputs, layers=ko.layers([0]))[0][1].blocked_full(inputs.seq_len, "cpu")


@pytest.mark.parametrize(
    "name",
    [
        "llava-onevision-qwen2-0.5b-ov-hf",
        # the 1280x720 groups are 720 tokens: 37k patches through the tower (~1 min on 2 cores)
        pytest.param("Qwen2.5-VL-7B-Instruct", marks=pytest.mark.slow),
    ],
)
def test_real_h264_at_real_resolution(name, clips, realistic_checkpoint):
    import transformers
    from hf_reference import hf_knockout

    spec = realistic_spec(name)
    path = realistic_checkpoint(name)
    model = HookedVideoLLM.from_pretrained(path)
    group = getattr(model.hf_model.config.vision_config, "temporal_patch_size", 1) or 1
    n_frames = 8
    for size, clip in clips.items():
        inputs = model.to_inputs(clip, QUESTION, n_frames=n_frames)
        layout = inputs.layout
        per_frame = torch.bincount(layout.frame[layout.is_video]).tolist()
        assert layout.n_frames == n_frames // group
        assert len(set(per_frame)) == 1, per_frame
        if size == spec.probe_size or spec.probe_size[0] == spec.probe_size[1]:  # fixed-size processors resize
            assert per_frame[0] == spec.tokens_per_frame
        lv, vt = _edges(layout)
        assert int(_blocked(ko.LV(), inputs).sum()) == lv
        assert int(_blocked(ko.VT(), inputs).sum()) == vt
    # the larger frames make more tokens where the processor keeps the aspect and the pixel budget
    if group > 1:
        assert inputs.seq_len > model.to_inputs(clips[(360, 640)], QUESTION, n_frames=n_frames).seq_len

    hf = getattr(transformers, model.hf_model.config.architectures[0]).from_pretrained(path, attn_implementation="sdpa")
    hooks = ko.LV().hooks(inputs, layers=ko.layers([0]))
    with torch.no_grad():
        ours = model.run_with_hooks(inputs, fwd_hooks=hooks)
        with hf_knockout(hf.eval(), {0: hooks[0][1].blocked_full(inputs.seq_len, "cpu")}):
            ref = hf(**inputs).logits
    assert (ours - ref).abs().max().item() <= 1e-4
