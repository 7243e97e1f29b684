"""Reading video: files (decord, or PyAV where decord does not import), frame folders, arrays — sampled as `vlens.inputs.sampling` says.

Only regular files are opened (a FIFO or a device would block or stream forever); decord's own
C-level messages (`moov atom not found`, `ERROR opening`, ...) are captured and folded into the
`VideoError` instead of being printed.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import UInt8

from vlens.inputs.sampling import (
    SampledVideo,
    Sampling,
    VideoError,
    check_fps,
    check_n_frames,
    check_sampling,
    check_seconds,
    frame_window,
    sample_indices,
)
from vlens.inputs.video_readers import BACKENDS, Backend, VideoReader, open_reader

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


log = logging.getLogger(__name__)


def _natural_key(p: Path) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def stack_frames(frames: Sequence[Any], names: Sequence[str] | None = None) -> np.ndarray:
    """Stack frames into one `[T, H, W, C]` array; all must have the first frame's shape.

    Frames of different sizes are refused, not resized: which size a resize should target (the
    first frame's? the processor's?) is the caller's decision, and a silent resize changes the
    vision tokens. `names` label the frames in the message (file names of a folder).

    Raises:
        VideoError: naming the first frame whose shape differs from frame 0's."""
    arrays = [np.asarray(f) for f in frames]
    label = (lambda i: f"frame {i} ({names[i]})") if names is not None else (lambda i: f"frame {i}")
    for i, a in enumerate(arrays[1:], start=1):
        if a.shape != arrays[0].shape:
            raise VideoError(
                f"{label(i)} has shape {list(a.shape)} but {label(0)} has {list(arrays[0].shape)}: all frames "
                "of one clip must have the same size; resize them to one size first (vlens does not resize)"
            )
    return np.stack(arrays)


def _check_array(frames: Any) -> np.ndarray:
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise VideoError("the frame list is empty")
        frames = stack_frames(frames)
    if not isinstance(frames, np.ndarray):
        raise VideoError(
            f"unsupported video type {type(frames).__name__}: pass a path to a video file, a folder of "
            "frames, a list of HxWx3 uint8 frames or a uint8 [T,H,W,3] array/tensor"
        )
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise VideoError(f"frames must be uint8 [T,H,W,3], got {frames.dtype} {list(frames.shape)}")
    if frames.shape[0] == 0:
        raise VideoError("the frame array holds no frame (shape [0, H, W, 3])")
    return frames


# files ------------------------------------------------------------------------------------------------
def check_regular_file(path: Path, what: str = "video") -> None:
    """Refuse anything but a regular file (after following links): opening a FIFO blocks until a
    writer appears, and a device may stream forever.

    Raises:
        VideoError: `path` is missing or is not a regular file.
    """
    try:
        mode = path.stat().st_mode
    except OSError as e:
        raise VideoError(f"{what} not found: {path} ({e.strerror})") from None
    if not stat.S_ISREG(mode):
        kind = (
            "a FIFO (named pipe)"
            if stat.S_ISFIFO(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "a device"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a regular file"
        )
        raise VideoError(f"{what} {path} is {kind}; vlens only opens regular files (copy the stream to a file first)")


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Capture what C code writes to file descriptor 2 (decord/FFmpeg print there directly, past
    Python's sys.stderr). Yields a list that holds the captured text once the block exits."""
    out: list[str] = []
    try:
        fd = 2
        saved = os.dup(fd)
    except OSError:  # no fd 2 (some embedded interpreters): nothing to capture
        yield out
        return
    with tempfile.TemporaryFile() as tmp:
        try:
            import sys

            sys.stderr.flush()
        except Exception:
            pass
        os.dup2(tmp.fileno(), fd)
        try:
            yield out
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode("utf-8", "replace").strip())


def _with_native(message: str, native: list[str]) -> str:
    text = " ".join(" ".join(native).split())
    return f"{message} (decoder said: {text[:500]})" if text else message


def _read_file(path: Path, backend: Backend | None = None) -> VideoReader:
    check_regular_file(path)
    with captured_stderr() as native:
        try:
            reader, err = open_reader(path, backend), None
        except ImportError:
            raise
        except Exception as e:  # decord's DECORDError / RuntimeError, PyAV's av.error.*
            reader, err = None, e
    if err is not None or reader is None:
        raise VideoError(
            _with_native(f"cannot read video {path}: {err}. Is it a complete, valid video file?", native)
        ) from err
    if native and native[0]:
        log.debug("%s on %s: %s", reader.backend, path, native[0])
    if reader.n < 1:
        raise VideoError(f"video {path} has no frames")
    if not math.isfinite(reader.fps) or reader.fps <= 0:
        raise VideoError(f"video {path} reports a frame rate of {reader.fps}; pass the real one as fps=")
    return reader


def load_video(
    video: Any,
    n_frames: int = 32,
    *,
    start: float | None = None,
    end: float | None = None,
    fps: float | None = None,
    allow_repeat: bool = False,
    sampling: Sampling = "centres",
    backend: Backend | None = None,
) -> SampledVideo:
    """Sample frames from a file, a frame folder, a list of frames or an array/tensor.

    Args:
        video: a path to a video file, a folder of frame images, a list of HxWx3 uint8 frames or a
            uint8 [T,H,W,3] array/tensor.
        n_frames: how many frames ("fps" sampling may take fewer, see the module docstring).
        start: window start in seconds (the whole clip by default); needs a frame rate.
        end: window end in seconds.
        fps: the frame rate of a folder or array (a file's own rate is used otherwise).
        allow_repeat: repeat frames when the window has fewer than `n_frames`.
        sampling: "centres" | "linspace" | "fps" | "internvl" (module docstring).
        backend: the file reader, "decord" or "pyav" (vlens.inputs.video_readers); None takes
            decord where it imports, else PyAV. Both give the same frames.

    Returns:
        The `SampledVideo`: frames [t, h, w, 3], their indices and timestamps.

    Raises:
        VideoError: a bad argument (named, with the fix) or an unreadable video.
    """
    n_frames = check_n_frames(n_frames)
    start, end = check_seconds(start, "start"), check_seconds(end, "end")
    fps = check_fps(fps)
    check_sampling(sampling)
    if backend is not None and backend not in BACKENDS:
        raise VideoError(f"backend must be one of {list(BACKENDS)} (or None: decord, else PyAV), got {backend!r}")
    if start is not None and end is not None and start >= end:
        raise VideoError(f"start ({start}) must be before end ({end})")
    pick = functools.partial(sample_indices, n_frames=n_frames, allow_repeat=allow_repeat, sampling=sampling)
    if isinstance(video, (str, Path)):
        path = Path(video)
        if not path.exists():
            raise VideoError(f"video not found: {path}")
        if path.is_dir():
            files = sorted(
                (p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()), key=_natural_key
            )
            if not files:
                raise VideoError(f"frame folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            first, last = frame_window(len(files), fps, start, end, f"frame folder {path}")
            idx = pick(len(files), first=first, last=last, fps=fps)
            from PIL import Image

            try:
                images = [np.asarray(Image.open(files[i]).convert("RGB")) for i in idx]
            except Exception as e:
                raise VideoError(f"cannot read frame images in {path}: {e}") from e
            frames = stack_frames(images, [files[i].name for i in idx])
            times = tuple(i / fps for i in idx) if fps else None
            return SampledVideo(frames, tuple(idx), times, fps, str(path))
        reader = _read_file(path, backend)
        use_fps = fps or reader.fps
        first, last = frame_window(reader.n, use_fps, start, end, f"video {path}")
        idx = pick(reader.n, first=first, last=last, fps=use_fps)
        with captured_stderr() as native:
            try:
                frames, err = reader.frames(idx), None
            except Exception as e:
                frames, err = None, e
        if err is not None:
            raise VideoError(_with_native(f"cannot decode frames {idx[:4]}... of {path}: {err}", native)) from err
        assert frames is not None  # err is None: the reader returned them
        return SampledVideo(frames, tuple(idx), tuple(i / use_fps for i in idx), use_fps, str(path))
    frames = _check_array(video)
    first, last = frame_window(len(frames), fps, start, end, "the array of frames")
    idx = pick(len(frames), first=first, last=last, fps=fps)
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
        stream = out.add_stream("mpeg4", rate=round(fps))
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
