"""Reading and sampling video: files (decord), frame folders, arrays.

Sampling policies (`sampling=`). The clip, or the window [start, end] seconds of it, covers frame
indices first..last (count = last − first + 1 frames):

- `"centres"` (vlens's default, the uniform segment sampling of LLaVA-style evaluators): the window
  is cut into `n_frames` equal segments and the frame at the centre of each is taken,

      idx_i = first + floor((i + 0.5) * count / n_frames),   i = 0..n_frames-1

- `"linspace"` (LongVA's and LLaVA's evaluation code): `np.linspace(first, last, n_frames,
  dtype=int)`, so the first and last frames are always taken.
- `"fps"` (LLaVA-NeXT-Video's demo): one frame a second — every round(clip_fps / 1)-th frame from
  `first` — when that gives at most `n_frames` frames (so possibly FEWER than `n_frames`),
  `"linspace"` otherwise.
- `"internvl"` (InternVL's / InternVideo2.5's `get_index`): segments of (last − first) / n_frames
  frames, idx_i = int(first + seg/2 + round(seg·i)) — centres of segments over last − first
  rather than last − first + 1 frames, so it can differ from "centres" by one frame.

With fewer frames than `n_frames`, "centres" and "linspace" repeat indices; that is an error unless
`allow_repeat=True`. Timestamps are idx / fps (None for arrays unless `fps` is given).

Only regular files are opened (a FIFO or a device would block or stream forever); decord's own
C-level messages (`moov atom not found`, `ERROR opening`, ...) are captured and folded into the
`VideoError` instead of being printed.
"""

from __future__ import annotations

import math
import numbers
import operator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from jaxtyping import UInt8

SAMPLING = ("centres", "linspace", "fps", "internvl")


Sampling = Literal["centres", "linspace", "fps", "internvl"]


FPS_POLICY_RATE = 1.0  # frames a second taken by sampling="fps" (the LLaVA-NeXT-Video demo's default)


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


# argument checks -----------------------------------------------------------------------------------
def check_n_frames(n_frames: Any) -> int:
    """`n_frames` as an int >= 1. Floats (even 4.0), strings and bools are refused rather than
    converted: a silent int() would hide a mistake upstream (e.g. a CLI value read as text).

    Raises:
        VideoError: not an integer, or < 1.
    """
    if isinstance(n_frames, bool):
        raise VideoError(f"n_frames must be an integer >= 1, got the bool {n_frames!r}")
    try:
        n = operator.index(n_frames)  # int and numpy integers
    except TypeError:
        hint = ""
        if isinstance(n_frames, float) and n_frames.is_integer():
            hint = f" (pass n_frames={int(n_frames)})"
        elif isinstance(n_frames, str) and n_frames.strip().isdigit():
            hint = f" (pass n_frames={int(n_frames)}, an int, not a string)"
        raise VideoError(
            f"n_frames must be an integer >= 1, got {n_frames!r} ({type(n_frames).__name__}){hint}"
        ) from None
    if n < 1:
        raise VideoError(f"n_frames must be >= 1, got {n}")
    return n


def check_seconds(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise VideoError(f"{name} must be a number of seconds or None, got {value!r} ({type(value).__name__})")
    v = float(value)
    if not math.isfinite(v):
        raise VideoError(
            f"{name} must be a finite number of seconds, got {value!r}; leave it None for the clip's {'start' if name == 'start' else 'end'}"
        )
    if v < 0:
        raise VideoError(f"{name} must be >= 0 seconds, got {value!r}")
    return v


def check_fps(fps: Any) -> float | None:
    """`fps` as a finite positive float (or None).

    Raises:
        VideoError: not a number, not finite, or <= 0.
    """
    if fps is None:
        return None
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real):
        raise VideoError(
            f"fps must be a positive number of frames per second or None, got {fps!r} ({type(fps).__name__})"
        )
    f = float(fps)
    if not math.isfinite(f) or f <= 0:
        raise VideoError(f"fps must be a finite number > 0 (the clip's frames per second), got {fps!r}")
    return f


def check_sampling(sampling: Any) -> str:
    if sampling not in SAMPLING:
        raise VideoError(f"sampling must be one of {', '.join(map(repr, SAMPLING))}, got {sampling!r}")
    return sampling


# sampling -------------------------------------------------------------------------------------------
def sample_indices(
    n_total: int,
    n_frames: int,
    *,
    first: int = 0,
    last: int | None = None,
    allow_repeat: bool = False,
    sampling: Sampling = "centres",
    fps: float | None = None,
) -> list[int]:
    """Frame indices in [first, last] (inclusive; last defaults to n_total-1) by the policy
    `sampling` (see the module docstring). `fps` (the clip's frame rate) is needed by "fps".

    Raises:
        VideoError: a bad argument, an empty window, or too few frames without `allow_repeat`.
    """
    n_frames = check_n_frames(n_frames)
    check_sampling(sampling)
    last = n_total - 1 if last is None else last
    count = last - first + 1
    if count < 1:
        raise VideoError(f"the clip window holds no frame (frames {first}..{last} of {n_total})")
    if sampling == "fps":
        if fps is None:
            raise VideoError("sampling='fps' takes one frame a second and needs the clip's frame rate: pass fps=")
        step = max(1, round(fps / FPS_POLICY_RATE))
        idx = list(range(first, last + 1, step))
        if len(idx) <= n_frames:
            return idx
        sampling = "linspace"
    if count < n_frames and not allow_repeat:
        raise VideoError(
            f"the clip has {count} frames in the requested window but n_frames={n_frames} were asked; "
            "ask for fewer frames or pass allow_repeat=True to repeat frames"
        )
    if sampling == "linspace":
        return [int(i) for i in np.linspace(first, last, n_frames, dtype=int)]
    if sampling == "internvl":
        seg = (last - first) / n_frames
        idx = [int(first + seg / 2 + np.round(seg * i)) for i in range(n_frames)]
        if len(set(idx)) < len(idx) and not allow_repeat:
            raise VideoError(
                f"sampling='internvl' (the InternVL/InternVideo2.5 authors' get_index) takes frames {idx} from a "
                f"window of {count} frames: it repeats a frame when n_frames={n_frames} is close to the window's "
                "length. Pass allow_repeat=True to feed it as the authors do, or sampling='centres'"
            )
        return idx
    return [first + math.floor((i + 0.5) * count / n_frames) for i in range(n_frames)]


def frame_window(n_total: int, fps: float | None, start: float | None, end: float | None, what: str) -> tuple[int, int]:
    if start is None and end is None:
        return 0, n_total - 1
    if fps is None:
        raise VideoError(f"start/end seconds need a frame rate, and {what} has none: pass fps=")
    duration = n_total / fps
    s = 0.0 if start is None else start
    e = duration if end is None else end
    if s >= duration:
        raise VideoError(
            f"start={s:g}s is at or past the end of {what}, which is {duration:.2f}s long "
            f"({n_total} frames at {fps:g} fps); pass a start before {duration:.2f}s"
        )
    if e <= s:
        raise VideoError(f"need start < end, got start={start}, end={end}")
    first = math.floor(s * fps)
    last = min(n_total - 1, math.ceil(e * fps) - 1)
    return first, max(first, last)
