"""The two video readers (decord from the decord2 wheels, PyAV the fallback) read the same frames
of a real H.264 clip: the same frame count, rate and indices, pixels within the RGB conversion's
rounding; and PyAV takes over wherever decord does not import."""

from __future__ import annotations

import numpy as np
import pytest

from vlens.inputs import video as video_module
from vlens.inputs.sampling import VideoError
from vlens.inputs.video import load_video
from vlens.inputs.video_readers import available_backends, default_backend, open_reader


def _h264(path, n=40, h=72, w=128, fps=12):
    """A real H.264 (libx264, yuv420p, B-frames on) clip at a width both decords read (not one of
    dmlc/decord#336's): a bright square moving over a gradient,
    so every frame differs and a shifted index would show."""
    import av

    yy, xx = np.mgrid[0:h, 0:w]
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "12", "bf": "2", "g": "10"}
        for k in range(n):
            f = np.stack([(xx * 2 + k * 3) % 256, (yy * 3) % 256, np.full_like(xx, 40)], -1).astype(np.uint8)
            f[10 + k % 40 : 30 + k % 40, 5 + 2 * k : 25 + 2 * k] = 250
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return _h264(tmp_path_factory.mktemp("h264") / "clip.mp4")


def test_both_readers_are_installed():
    """decord2 (imports as decord) and PyAV are core dependencies: neither is skipped here."""
    assert available_backends() == ("decord", "pyav")
    assert default_backend() == "decord"


def test_decord_and_pyav_read_the_same_frames(clip):
    dec, pav = open_reader(clip, "decord"), open_reader(clip, "pyav")
    assert dec.n == pav.n == 40
    assert dec.fps == pytest.approx(pav.fps) == pytest.approx(12.0)
    idx = [0, 1, 7, 8, 19, 20, 33, 39, 5, 5]  # unordered, repeated, across GOP boundaries
    a, b = dec.frames(idx), pav.frames(idx)
    assert a.shape == b.shape == (len(idx), 72, 128, 3) and a.dtype == b.dtype == np.uint8
    diff = np.abs(a.astype(int) - b.astype(int))
    # the same decoded YUV, converted to RGB by two swscale setups: rounding, not other frames
    assert diff.max() <= 3, diff.max()
    assert diff.mean() < 0.5, diff.mean()
    # and a neighbouring frame is far away (the comparison would catch an off-by-one index)
    nxt = pav.frames([i + 1 if i < 39 else i - 1 for i in idx])
    assert np.abs(a.astype(int) - nxt.astype(int)).mean() > 5 * max(diff.mean(), 0.1)


def test_load_video_gives_the_same_sample_with_either_backend(clip):
    a = load_video(clip, 8, backend="decord")
    b = load_video(clip, 8, backend="pyav")
    assert a.indices == b.indices and a.timestamps == b.timestamps and a.fps == b.fps
    assert np.abs(a.frames.astype(int) - b.frames.astype(int)).max() <= 3


def test_pyav_takes_over_where_decord_does_not_import(clip, monkeypatch):
    import vlens.inputs.video_readers as readers

    monkeypatch.setattr(readers, "available_backends", lambda: ("pyav",))
    assert readers.default_backend() == "pyav"
    v = load_video(clip, 4)
    assert len(v.frames) == 4
    with pytest.raises(ImportError, match="pip install decord2"):
        open_reader(clip, "decord")
    monkeypatch.setattr(readers, "available_backends", lambda: ())
    with pytest.raises(ImportError, match=r"pip install decord2 .* pip install av"):
        load_video(clip, 4)


def test_bad_backend_and_bad_files(clip, tmp_path):
    with pytest.raises(VideoError, match=r"backend must be one of \['decord', 'pyav'\].*got 'opencv'"):
        load_video(clip, 4, backend="opencv")  # type: ignore[arg-type]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(clip.read_bytes()[:200])
    for backend in ("decord", "pyav"):
        with pytest.raises(VideoError, match=r"cannot read video|cannot decode frames|has no frames"):
            load_video(broken, 4, backend=backend)
    assert video_module.load_video is load_video


@pytest.mark.parametrize("width", [16, 32, 48, 96])
def test_small_widths_decord_misreads_are_read_with_pyav(tmp_path, width):
    """dmlc/decord#336: decord 0.6 and decord2 misread some small widths (padded rows as a 4th
    channel). Automatic reading then takes PyAV (the same frames); asking for decord says why."""
    from vlens.inputs.video import write_video
    from vlens.inputs.video_readers import DecordFrameError, DecordReader

    frames = np.random.default_rng(width).integers(0, 256, (6, 24, width, 3), dtype=np.uint8)
    path = write_video(tmp_path / "small.mp4", frames, fps=6)
    v = load_video(path, 3)
    assert v.frames.shape == (3, 24, width, 3)
    ref = open_reader(path, "pyav").frames(list(v.indices))
    assert np.array_equal(v.frames, ref)
    try:
        DecordReader(path)
    except DecordFrameError as e:  # this decord build misreads this width: the error names the fix
        assert "backend='pyav'" in str(e) and "dmlc/decord#336" in str(e)
        with pytest.raises(VideoError, match="backend='pyav'"):
            load_video(path, 3, backend="decord")
