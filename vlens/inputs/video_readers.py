"""The two video file readers: decord (the `decord2` wheels, `import decord`) and PyAV, the
fallback wherever decord does not import. Both give frame k of the clip as FFmpeg decodes it, in
presentation order, converted to RGB24; tests/test_video_readers.py checks that they agree on a
real H.264 clip (same frame count, rate and indices; pixels within the RGB conversion's rounding).

`decord2` (maintained, same `import decord`) has wheels for Linux x86-64 and aarch64, macOS
arm64 and Windows; decord 0.6 had them for x86-64 Linux and Windows only.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from jaxtyping import UInt8

Backend = Literal["decord", "pyav"]
BACKENDS: tuple[Backend, ...] = ("decord", "pyav")
log = logging.getLogger(__name__)


class VideoReader(Protocol):
    """An opened video file: `n` frames at `fps`, frames read by index."""

    backend: Backend
    n: int
    fps: float

    def frames(self, indices: Sequence[int]) -> UInt8[np.ndarray, "t h w 3"]:
        """Frames at `indices` (any order, repeats allowed) as uint8 RGB [t, h, w, 3]."""
        ...


def available_backends() -> tuple[Backend, ...]:
    """The readers that import here, preferred first (decord, then PyAV)."""
    names = {"decord": "decord", "pyav": "av"}
    return tuple(b for b in BACKENDS if importlib.util.find_spec(names[b]) is not None)


def default_backend() -> Backend:
    """decord where it imports, else PyAV.

    Raises:
        ImportError: neither imports (the message names both installs).
    """
    found = available_backends()
    if not found:
        raise ImportError(
            "reading video files needs decord or PyAV: pip install decord2 (imports as decord) or pip install av"
        )
    return found[0]


class DecordFrameError(ValueError):
    """decord opened the file but gives malformed frames (dmlc/decord#336)."""


class DecordReader:
    """decord's VideoReader on one CPU thread (decord2 or decord 0.6: the same API)."""

    backend: Backend = "decord"

    def __init__(self, path: Path):
        import decord

        self._vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        self.n = len(self._vr)
        self.fps = float(self._vr.get_avg_fps())
        shape = tuple(self._vr[0].shape) if self.n else (0, 0, 3)
        if len(shape) != 3 or shape[-1] != 3:
            # dmlc/decord#336: at some small widths (16, 24, 48, 72 px in decord 0.6; 16, 24, 32,
            # 48, 96, 144 in decord2 3.4) decord returns padded rows as a 4th "channel" and its
            # get_batch fails; real widths (176 … 1920) are read fine
            raise DecordFrameError(
                f"decord {decord.__version__} decodes frames of {path} as {shape}, not [h, w, 3] "
                "(dmlc/decord#336, a row-padding bug at some small widths); read it with backend='pyav'"
            )

    def frames(self, indices: Sequence[int]) -> UInt8[np.ndarray, "t h w 3"]:
        return self._vr.get_batch(list(indices)).asnumpy()


class PyAVReader:
    """PyAV (FFmpeg's libraries): frames decoded in order from the start up to the last index
    asked for; only the asked-for frames are kept (converted with `to_ndarray("rgb24")`)."""

    backend: Backend = "pyav"

    def __init__(self, path: Path):
        import av

        self._path = str(path)
        with av.open(self._path) as container:
            if not container.streams.video:
                raise ValueError("the file has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            self.fps = float(rate) if rate else float("nan")
            n = int(stream.frames or 0)
            if n <= 0:  # no frame count in the container: count by decoding
                n = sum(1 for _ in container.decode(stream))
        self.n = n

    def frames(self, indices: Sequence[int]) -> UInt8[np.ndarray, "t h w 3"]:
        import av

        wanted = {int(i) for i in indices}
        if not wanted:
            raise ValueError("no frame indices given")
        last = max(wanted)
        kept: dict[int, np.ndarray] = {}
        with av.open(self._path) as container:
            stream = container.streams.video[0]
            for k, frame in enumerate(container.decode(stream)):
                if k in wanted:
                    kept[k] = frame.to_ndarray(format="rgb24")
                if k >= last:
                    break
        missing = sorted(wanted - set(kept))
        if missing:
            raise ValueError(f"the file decodes to fewer frames than it reports: frames {missing[:4]} are missing")
        return np.stack([kept[int(i)] for i in indices])


def open_reader(path: str | Path, backend: Backend | None = None) -> VideoReader:
    """Open a video file with `backend` ("decord" or "pyav"; None: `default_backend()`, and PyAV
    for a file decord decodes into malformed frames, dmlc/decord#336).

    Raises:
        ValueError: an unknown backend name.
        ImportError: the backend asked for does not import (the message names its install).
        Exception: whatever the backend raises on a file it cannot open (callers wrap it).
    """
    automatic = backend is None
    if backend is None:
        backend = default_backend()
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if backend not in available_backends():
        install = "pip install decord2 (imports as decord)" if backend == "decord" else "pip install av"
        raise ImportError(f"video backend {backend!r} is not installed: {install}")
    if backend == "pyav":
        return PyAVReader(Path(path))
    try:
        return DecordReader(Path(path))
    except DecordFrameError as e:
        if not automatic or "pyav" not in available_backends():
            raise
        # PyAV decodes the same frames (tests/test_video_readers.py): the result does not change
        log.info("%s; reading it with PyAV instead", e)
        return PyAVReader(Path(path))
