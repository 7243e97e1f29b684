"""Reading and sampling video: files (decord), frame folders, arrays.

Sampling convention (uniform, segment centres): the clip, or the window [start, end] seconds of
it, covers frame indices first..last. It is cut into `n_frames` equal segments and the frame at the
centre of each is taken:

    idx_i = first + floor((i + 0.5) * (last - first + 1) / n_frames),   i = 0..n_frames-1

This is the uniform segment sampling of LLaVA-style evaluators. With fewer frames than `n_frames`
the same formula repeats indices; that is an error unless `allow_repeat=True`. Timestamps are
idx / fps (None for arrays unless `fps` is given).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import UInt8

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class VideoError(ValueError):
    """A video could not be read or sampled as asked."""


@dataclass(frozen=True)
class SampledVideo:
    """Frames sampled from a clip, and where they came from.

    Attributes:
        frames: `[t, h, w, 3]` uint8 RGB.
        indices: frame index in the source of each sampled frame.
        timestamps: seconds of each sampled frame (None when the source has no frame rate).
        fps: the source's frame rate, or None.
        source: the path, or `"array"`.
    """

    frames: UInt8[np.ndarray, "t h w 3"]
    indices: tuple[int, ...]
    timestamps: tuple[float, ...] | None
    fps: float | None
    source: str

    def __len__(self) -> int:
        return len(self.indices)


def sample_indices(
    n_total: int, n_frames: int, *, first: int = 0, last: int | None = None, allow_repeat: bool = False
) -> list[int]:
    """Uniform segment-centre indices in [first, last] (inclusive; last defaults to n_total-1).

    Args:
        n_total: frames in the source.
        n_frames: frames to sample.
        first: first frame of the window.
        last: last frame of the window (default: the last frame).
        allow_repeat: allow fewer frames than `n_frames` in the window (indices then repeat).

    Returns:
        `n_frames` indices, non-decreasing.

    Raises:
        VideoError: `n_frames < 1`, an empty window, or too few frames without `allow_repeat`.
    """
    if n_frames < 1:
        raise VideoError(f"n_frames must be >= 1, got {n_frames}")
    last = n_total - 1 if last is None else last
    count = last - first + 1
    if count < 1:
        raise VideoError(f"the clip window holds no frame (frames {first}..{last} of {n_total})")
    if count < n_frames and not allow_repeat:
        raise VideoError(
            f"the clip has {count} frames in the requested window but n_frames={n_frames} were asked; "
            "ask for fewer frames or pass allow_repeat=True to repeat frames"
        )
    return [first + int(math.floor((i + 0.5) * count / n_frames)) for i in range(n_frames)]


def _window(n_total: int, fps: float | None, start: float | None, end: float | None, what: str) -> tuple[int, int]:
    if start is None and end is None:
        return 0, n_total - 1
    if fps is None:
        raise VideoError(f"start/end seconds need a frame rate, and {what} has none: pass fps=")
    duration = n_total / fps
    s = 0.0 if start is None else float(start)
    e = duration if end is None else float(end)
    if s < 0 or e <= s:
        raise VideoError(f"need 0 <= start < end, got start={start}, end={end}")
    if s >= duration:
        raise VideoError(f"start={s}s is past the end of the clip ({duration:.2f}s)")
    first = int(math.floor(s * fps))
    last = min(n_total - 1, int(math.ceil(e * fps)) - 1)
    return first, max(first, last)


def _natural_key(p: Path) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def _check_array(frames: Any) -> np.ndarray:
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise VideoError("the frame list is empty")
        frames = np.stack([np.asarray(f) for f in frames])
    if not isinstance(frames, np.ndarray):
        raise VideoError(
            f"unsupported video type {type(frames).__name__}: pass a path to a video file, a folder of "
            "frames, a list of HxWx3 uint8 frames or a uint8 [T,H,W,3] array/tensor"
        )
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise VideoError(f"frames must be uint8 [T,H,W,3], got {frames.dtype} {list(frames.shape)}")
    return frames


def _read_file(path: Path) -> tuple[Any, int, float]:
    from decord import VideoReader, cpu

    try:
        vr = VideoReader(str(path), ctx=cpu(0), num_threads=1)
        n = len(vr)
        fps = float(vr.get_avg_fps())
    except Exception as e:  # decord raises its own DECORDError / RuntimeError
        raise VideoError(f"cannot read video {path}: {e}. Is it a complete, valid video file?") from e
    if n < 1:
        raise VideoError(f"video {path} has no frames")
    return vr, n, fps


def load_video(
    video: Any,
    n_frames: int = 32,
    *,
    start: float | None = None,
    end: float | None = None,
    fps: float | None = None,
    allow_repeat: bool = False,
) -> SampledVideo:
    """Sample `n_frames` frames uniformly (see the module docstring) from a file, a frame folder,
    a list of frames or an array/tensor.

    Args:
        video: a video file path (decord), a folder of frame images (natural sort order), a list of
            `[h, w, 3]` uint8 frames, or a `[t, h, w, 3]` uint8 array or tensor.
        n_frames: frames to sample.
        start: window start in seconds (needs a frame rate: the file's, or `fps`).
        end: window end in seconds.
        fps: frame rate of a folder or array (for timestamps and windows); overrides a file's.
        allow_repeat: allow clips shorter than `n_frames` (indices repeat).

    Returns:
        `SampledVideo` with `[n_frames, h, w, 3]` uint8 frames.

    Raises:
        VideoError: a missing or unreadable source, a bad window, or too few frames.
    """
    if n_frames < 1:
        raise VideoError(f"n_frames must be >= 1, got {n_frames}")
    if start is not None and end is not None and start >= end:
        raise VideoError(f"start ({start}) must be before end ({end})")
    if isinstance(video, (str, Path)):
        path = Path(video)
        if not path.exists():
            raise VideoError(f"video not found: {path}")
        if path.is_dir():
            files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
            if not files:
                raise VideoError(f"frame folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            first, last = _window(len(files), fps, start, end, f"frame folder {path}")
            idx = sample_indices(len(files), n_frames, first=first, last=last, allow_repeat=allow_repeat)
            from PIL import Image

            try:
                frames = np.stack([np.asarray(Image.open(files[i]).convert("RGB")) for i in idx])
            except Exception as e:
                raise VideoError(f"cannot read frame images in {path}: {e}") from e
            times = tuple(i / fps for i in idx) if fps else None
            return SampledVideo(frames, tuple(idx), times, fps, str(path))
        vr, n, file_fps = _read_file(path)
        use_fps = fps or file_fps
        first, last = _window(n, use_fps, start, end, f"video {path}")
        idx = sample_indices(n, n_frames, first=first, last=last, allow_repeat=allow_repeat)
        try:
            frames = vr.get_batch(idx).asnumpy()
        except Exception as e:
            raise VideoError(f"cannot decode frames {idx[:4]}... of {path}: {e}") from e
        return SampledVideo(frames, tuple(idx), tuple(i / use_fps for i in idx), use_fps, str(path))
    frames = _check_array(video)
    first, last = _window(len(frames), fps, start, end, "an array of frames")
    idx = sample_indices(len(frames), n_frames, first=first, last=last, allow_repeat=allow_repeat)
    times = tuple(i / fps for i in idx) if fps else None
    return SampledVideo(frames[idx], tuple(idx), times, fps, "array")


def write_video(path: str | Path, frames: UInt8[np.ndarray, "t h w 3"], fps: float = 8.0) -> Path:
    """Write a real mp4 (MPEG-4 part 2, yuv420p) with PyAV: tests and the synthetic dataset use it.

    Args:
        path: output file (parent folders are created).
        frames: `[t, h, w, 3]` uint8 RGB; odd widths/heights lose their last column/row (yuv420p).
        fps: frame rate (rounded to an integer).

    Returns:
        `path`.

    Raises:
        VideoError: `frames` is not a `[t, h, w, 3]` uint8 array.
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = _check_array(frames)
    h, w = frames.shape[1:3]
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("mpeg4", rate=int(round(fps)))
        stream.width, stream.height = w - w % 2, h - h % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "2"}
        for f in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f[: h - h % 2, : w - w % 2]), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
