"""Synthetic clips of moving coloured shapes with exact answer keys.

One generator serves the tests, the demo and the model organism's training. Each question kind
needs a different kind of evidence:

| kind           | evidence         | question                               | options |
|----------------|------------------|----------------------------------------|---------|
| `color`        | any single frame | What color is the object?              | 4 colours |
| `shape`        | any single frame | What shape is the object?              | 4 shapes |
| `direction`    | several frames   | Which direction is the object moving?  | left, right, up, down |
| `first`        | several frames   | Which object appears first?            | 4 colours (the two shown + 2 others) |
| `color_change` | several frames   | Does the object change color?          | yes, no |
| `count`        | all of one frame | How many objects are there?            | one … four |

Sample i of seed s is drawn from `np.random.default_rng([s, i])`: deterministic, independent of
n, and the same whether frames stay in memory or are written as mp4 files (`write_dir=`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vlens.data import DatasetError, Sample

COLORS = {
    "red": (220, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 235),
    "yellow": (235, 220, 40),
    "purple": (160, 60, 210),
    "white": (235, 235, 235),
}
SHAPES = ("square", "circle", "triangle", "cross")
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
COUNT_WORDS = ("one", "two", "three", "four")
QUESTION_KINDS = ("color", "shape", "direction", "first", "color_change", "count")
BACKGROUND = 20
QUESTIONS = {
    "color": "What color is the object?",
    "shape": "What shape is the object?",
    "direction": "Which direction is the object moving?",
    "first": "Which object appears first?",
    "color_change": "Does the object change color?",
    "count": "How many objects are there?",
}


def shape_mask(shape: str, size: int) -> np.ndarray:
    """A bool [size, size] stencil of the shape."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    c = size / 2
    if shape == "square":
        return np.ones((size, size), dtype=bool)
    if shape == "circle":
        return (yy - c) ** 2 + (xx - c) ** 2 <= c**2
    if shape == "triangle":  # apex up
        return (yy >= 0) & (np.abs(xx - c) <= yy / 2)
    if shape == "cross":
        w = max(1, size // 3)
        lo, hi = (size - w) // 2, (size - w) // 2 + w
        return ((xx >= lo) & (xx < hi)) | ((yy >= lo) & (yy < hi))
    raise ValueError(f"unknown shape {shape!r}")


def _draw(frame: np.ndarray, shape: str, color: str, x: int, y: int, size: int) -> None:
    m = shape_mask(shape, size)
    h, w = frame.shape[:2]
    ys, xs = np.nonzero(m)
    ys, xs = ys + y, xs + x
    keep = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    frame[ys[keep], xs[keep]] = COLORS[color]


def _options(
    rng: np.random.Generator, answer: str, pool: Sequence[str], n: int, shuffle: bool
) -> tuple[tuple[str, ...], int]:
    others = [p for p in pool if p != answer]
    picked = [answer, *list(rng.choice(others, size=n - 1, replace=False))]
    order = rng.permutation(n) if shuffle else np.argsort([pool.index(p) for p in picked])
    options = tuple(str(picked[i]) for i in order)
    return options, options.index(answer)


def make_sample(kind: str, rng: np.random.Generator, *, n_frames: int = 8, size: int = 32, shuffle: bool = True):
    """(frames uint8 [T,H,W,3], question, options, answer index, facts) for one clip."""
    if kind not in QUESTION_KINDS:
        raise DatasetError(f"unknown synthetic question kind {kind!r}; kinds: {', '.join(QUESTION_KINDS)}")
    obj = max(6, size * 5 // 16)  # 10 px at 32 px frames
    frames = np.full((n_frames, size, size, 3), BACKGROUND, dtype=np.uint8)
    colors, shapes = list(COLORS), list(SHAPES)
    facts: dict = {"kind": kind, "object_size": obj}

    def place() -> tuple[int, int]:
        return int(rng.integers(0, size - obj + 1)), int(rng.integers(0, size - obj + 1))

    if kind in ("color", "shape"):
        color, shape = str(rng.choice(colors)), str(rng.choice(shapes))
        x, y = place()
        for t in range(n_frames):
            _draw(frames[t], shape, color, x, y, obj)
        facts.update(color=color, shape=shape)
        answer, pool = (color, colors) if kind == "color" else (shape, shapes)
        options, idx = _options(rng, answer, pool, 4, shuffle)
    elif kind == "direction":
        color, shape = str(rng.choice(colors)), str(rng.choice(shapes))
        direction = str(rng.choice(list(DIRECTIONS)))
        dx, dy = DIRECTIONS[direction]
        travel = size - obj  # edge to edge: ≥ 2 px per frame at 8 frames of 32 px
        other = int(rng.integers(0, size - obj + 1))
        for t in range(n_frames):
            p = round(t * travel / max(1, n_frames - 1))
            along = p if (dx > 0 or dy > 0) else travel - p
            x, y = (along, other) if dx else (other, along)
            _draw(frames[t], shape, color, x, y, obj)
        facts.update(color=color, shape=shape, direction=direction)
        options, idx = _options(rng, direction, list(DIRECTIONS), 4, shuffle)
    elif kind == "first":
        first, second = (str(c) for c in rng.choice(colors, size=2, replace=False))
        shape = str(rng.choice(shapes))
        appear = int(rng.integers(n_frames // 4 + 1, 3 * n_frames // 4 + 1))
        half = size // 2  # one object in each half: they never overlap
        xa, xb = int(rng.integers(0, half - obj + 1)), half + int(rng.integers(0, half - obj + 1))
        (x1, x2) = (xa, xb) if rng.random() < 0.5 else (xb, xa)
        y1, y2 = (int(rng.integers(0, size - obj + 1)) for _ in range(2))
        for t in range(n_frames):
            _draw(frames[t], shape, first, x1, y1, obj)
            if t >= appear:
                _draw(frames[t], shape, second, x2, y2, obj)
        facts.update(first=first, second=second, appear=appear)
        pool = [first, second] + [c for c in colors if c not in (first, second)]
        rest = list(rng.choice(pool[2:], size=2, replace=False))
        picked = [first, second] + [str(c) for c in rest]
        order = rng.permutation(4) if shuffle else np.argsort([colors.index(c) for c in picked])
        options = tuple(picked[i] for i in order)
        idx = options.index(first)
    elif kind == "color_change":
        a, b = (str(c) for c in rng.choice(colors, size=2, replace=False))
        changes = bool(rng.random() < 0.5)
        shape = str(rng.choice(shapes))
        x, y = place()
        switch = int(rng.integers(n_frames // 4 + 1, 3 * n_frames // 4 + 1))
        for t in range(n_frames):
            _draw(frames[t], shape, b if (changes and t >= switch) else a, x, y, obj)
        facts.update(color=a, new_color=b if changes else a, changes=changes, switch=switch if changes else None)
        answer = "yes" if changes else "no"
        options = ("yes", "no") if not shuffle or rng.random() < 0.5 else ("no", "yes")
        idx = options.index(answer)
    else:  # count
        k = int(rng.integers(1, 5))
        cell = size // 2  # one object per quadrant: never overlapping, always countable
        quads = rng.permutation(4)[:k]
        chosen = [str(c) for c in rng.choice(colors, size=k, replace=False)]
        shape = str(rng.choice(shapes))
        spots = []
        for q, color in zip(quads, chosen):
            qx, qy = (q % 2) * cell, (q // 2) * cell
            x = qx + int(rng.integers(0, max(1, cell - obj + 1)))
            y = qy + int(rng.integers(0, max(1, cell - obj + 1)))
            spots.append((x, y, color))
        for t in range(n_frames):
            for x, y, color in spots:
                _draw(frames[t], shape, color, x, y, obj)
        facts.update(count=k, colors=chosen)
        options, idx = _options(rng, COUNT_WORDS[k - 1], list(COUNT_WORDS), 4, shuffle)
    return frames, QUESTIONS[kind], options, idx, facts


def generate(
    n: int,
    seed: int = 0,
    *,
    kinds: tuple[str, ...] = QUESTION_KINDS,
    n_frames: int = 8,
    size: int = 32,
    shuffle: bool = False,
    write_dir: str | Path | None = None,
    fps: float = 8.0,
    start: int = 0,
) -> list[Sample]:
    """Samples start..start+n-1 of `seed`; kinds cycle in order (sample i has kinds[i % len]).

    Options come in a canonical order (colours in palette order, left/right/up/down, one…four,
    yes/no), as the model organism is trained and evaluated; `shuffle=True` permutes them."""
    from vlens.inputs.video import write_video

    out = []
    for i in range(start, start + n):
        kind = kinds[i % len(kinds)]
        rng = np.random.default_rng([seed, i])
        frames, question, options, answer, facts = make_sample(kind, rng, n_frames=n_frames, size=size, shuffle=shuffle)
        video: str | np.ndarray = frames
        if write_dir is not None:
            video = str(write_video(Path(write_dir) / f"{seed}_{i}.mp4", frames, fps=fps))
        out.append(Sample(f"synthetic/{seed}/{i}", video, question, options, answer, fps=fps, meta=facts))
    return out


def load(arg: str = "", *, task: str | list[str] | None = None, **filters) -> list[Sample]:
    """`synthetic[:SEED[,n=120,frames=8,size=32,shuffle=0]]`; `task` filters question kinds;
    `shuffle=1` permutes the options (canonical order by default, as the organism was trained)."""
    seed, opts = 0, {"n": 120, "frames": 8, "size": 32, "shuffle": 0}
    for part in [p for p in arg.split(",") if p.strip()]:
        if "=" in part:
            k, _, v = part.partition("=")
            if k.strip() not in opts:
                raise DatasetError(f"unknown synthetic option {k!r}; options: seed (first), {', '.join(opts)}")
            opts[k.strip()] = int(v)
        else:
            seed = int(part)
    if filters:
        raise DatasetError(f"synthetic takes no filters {sorted(filters)}; use --task KIND")
    kinds = QUESTION_KINDS
    if task:
        wanted = [task] if isinstance(task, str) else list(task)
        bad = [k for k in wanted if k not in QUESTION_KINDS]
        if bad:
            raise DatasetError(f"unknown synthetic task(s) {bad}; kinds: {', '.join(QUESTION_KINDS)}")
        kinds = tuple(wanted)
    if opts["shuffle"] not in (0, 1):
        raise DatasetError(f"synthetic option shuffle must be 0 or 1, got {opts['shuffle']}")
    return generate(
        opts["n"], seed, kinds=kinds, n_frames=opts["frames"], size=opts["size"], shuffle=bool(opts["shuffle"])
    )
