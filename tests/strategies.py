"""Hypothesis strategies for random video layouts (any family's shape: frames, per-frame extra
tokens, separators, markers between frames, padding)."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from vlens.inputs.layout import VideoLayout, VisionToken


@st.composite
def layouts(draw, max_frames: int = 4, max_grid: int = 3, allow_pad: bool = True) -> VideoLayout:
    n_pad = draw(st.integers(0, 3)) if allow_pad else 0
    n_system = draw(st.integers(0, 4))
    n_frames = draw(st.integers(1, max_frames))
    h = draw(st.integers(1, max_grid))
    w = draw(st.integers(1, max_grid))
    cls_token = draw(st.booleans())
    markers = draw(st.booleans())
    separator = draw(st.booleans())
    n_text = draw(st.integers(1, 5))
    is_vision, is_marker, tokens = [], [], []

    def add(vision: bool, marker: bool = False):
        is_vision.append(vision)
        is_marker.append(marker)

    for _ in range(n_pad + n_system):
        add(False)
    for f in range(n_frames):
        if markers:
            add(False, True)
        if cls_token:
            add(True)
            tokens.append(VisionToken("video", f))
        for r in range(h):
            for c in range(w):
                add(True)
                tokens.append(VisionToken("video", f, r, c))
    if separator:
        add(True)
        tokens.append(VisionToken("separator"))
    if markers:
        add(False, True)
    for _ in range(n_text):
        add(False)
    n = len(is_vision)
    is_pad = torch.zeros(n, dtype=torch.bool)
    is_pad[:n_pad] = True
    return VideoLayout.build(torch.tensor(is_vision), tokens, is_pad=is_pad, is_marker=torch.tensor(is_marker))


@st.composite
def layouts_with_roles(draw, max_frames: int = 4, max_grid: int = 3) -> VideoLayout:
    """A random layout (as `layouts`) with text roles the way a chat prompt has them: system
    text is `system` then `template`; text after the video is template, question, lettered
    options, answer prompt, `last`; sometimes the correct letter is known."""
    import dataclasses

    from vlens.inputs.prompts import LETTERS

    layout = draw(layouts(max_frames=max_frames, max_grid=max_grid))
    n = len(layout)
    role, letter = [""] * n, [""] * n
    pre = [i for i, s in enumerate(layout.segment) if s == "system"]
    post = [i for i, s in enumerate(layout.segment) if s == "text"]
    cut = draw(st.integers(0, len(pre)))
    for j, i in enumerate(pre):
        role[i] = "system" if j < cut else "template"
    n_options = 0
    for i in post:
        r = draw(st.sampled_from(["template", "question", "option", "answer_prompt"]))
        role[i] = r
        if r == "option":
            letter[i] = LETTERS[draw(st.integers(0, 3))]
            n_options += 1
    if layout.segment[-1] == "text":
        role[-1] = "last"
        letter[-1] = ""
    correct = draw(st.sampled_from([None, "A", "B", "C", "D"]))
    return dataclasses.replace(layout, role=tuple(role), option_letter=tuple(letter), correct=correct)
