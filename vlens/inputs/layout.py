"""VideoLayout: what every position of one sequence is (segment, frame, patch row and column).

Knockouts, patching groups and efficient inference read positions only through a layout, so they
work unchanged for every family. A family derives the layout by arithmetic from the config and
`input_ids` (vision positions are where the processor put its placeholder token) and checks the
count against what the processor should have produced; a mismatch raises `LayoutError`, it is
never guessed around.

| segment     | what                                                          | frame | row/col |
|-------------|---------------------------------------------------------------|-------|---------|
| `video`     | vision-filled position of one frame (or temporal group)       | index | patch coordinates, −1 for a per-frame extra token |
| `separator` | vision-filled position of no single frame (e.g. image_newline) | −1    | −1      |
| `image`     | vision-filled position of a still image (`layout.image`: its index in the row) | −1 | patch coordinates, −1 for an extra token (CLS, newline) |
| `marker`    | template text around or between frames                         | −1    | −1      |
| `system`    | other tokens before the first vision position                  | −1    | −1      |
| `text`      | other tokens after it                                          | −1    | −1      |
| `pad`       | padding                                                        | −1    | −1      |
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Int
from torch import Tensor

SEGMENTS = ("system", "video", "separator", "image", "marker", "text", "pad")
VISION_SEGMENTS = ("video", "separator")
# text roles (`layout.role`); "" where a position has none (vision, pad, or roles not derived)
ROLES = ("system", "template", "question", "option", "answer_prompt", "last", "generated")


class LayoutError(ValueError):
    """The tokens do not have the structure the family's layout rules predict."""


@dataclass(frozen=True)
class VisionToken:
    """How one vision-filled position is labelled (families emit these in sequence order)."""

    segment: str  # "video", "separator" or "image"
    frame: int = -1
    row: int = -1
    col: int = -1
    image: int = -1  # the image's index in its row (segment "image")


@dataclass(frozen=True, eq=False)
class VideoLayout:
    """What every position of one sequence is: segment, frame (or temporal group), patch row/col.

    Attributes:
        segment: one of `system`, `video`, `separator`, `marker`, `text`, `pad` per position.
        frame: `[pos]` frame (temporal group) index of `video` positions, −1 elsewhere.
        row: `[pos]` patch row of `video` positions, −1 elsewhere and for per-frame extra tokens.
        col: `[pos]` patch column, likewise.
        frames_per_group: frames sharing one group of tokens (2 for Qwen2.5-VL's temporal patches).
        frame_times: seconds of each sampled frame, or None.

    Raises:
        LayoutError: tensors whose length differs from `segment`'s, or unknown segment names.
    """

    segment: tuple[str, ...]
    frame: Int[Tensor, " pos"]
    row: Int[Tensor, " pos"]
    col: Int[Tensor, " pos"]
    frames_per_group: int = 1
    frame_times: tuple[float, ...] | None = None
    image: Int[Tensor, " pos"] | None = None  # image index per position (−1 where not an image)
    role: tuple[str, ...] | None = None  # text role per position (ROLES, or "")
    option_letter: tuple[str, ...] | None = None  # the option's letter at `option` positions, "" elsewhere
    correct: str | None = None  # the correct option's letter, when known

    def __post_init__(self) -> None:
        n = len(self.segment)
        if self.role is None:
            # without derived roles only one is known for sure: the scored (last) position
            role = [""] * n
            if n and self.segment[-1] not in ("pad", *VISION_SEGMENTS, "image"):
                role[-1] = "last"
            object.__setattr__(self, "role", tuple(role))
        if self.option_letter is None:
            object.__setattr__(self, "option_letter", ("",) * n)
        for name in ("role", "option_letter"):
            if len(getattr(self, name)) != n:
                raise LayoutError(f"layout.{name} has {len(getattr(self, name))} entries, expected {n}")
        assert self.role is not None  # filled by __post_init__
        bad_roles = set(self.role) - set(ROLES) - {""}
        if bad_roles:
            raise LayoutError(f"unknown role names {sorted(bad_roles)}; roles are {ROLES}")
        if self.image is None:  # layouts without images (and callers that predate them)
            object.__setattr__(self, "image", torch.full((n,), -1, dtype=torch.long))
        for name in ("frame", "row", "col", "image"):
            if getattr(self, name).shape != (n,):
                raise LayoutError(f"layout.{name} has shape {tuple(getattr(self, name).shape)}, expected ({n},)")
        unknown = set(self.segment) - set(SEGMENTS)
        if unknown:
            raise LayoutError(f"unknown segment names {sorted(unknown)}; segments are {SEGMENTS}")

    # construction ------------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        is_vision: Bool[Tensor, " pos"],
        vision_tokens: Sequence[VisionToken],
        *,
        is_pad: Bool[Tensor, " pos"] | None = None,
        is_marker: Bool[Tensor, " pos"] | None = None,
        frames_per_group: int = 1,
        frame_times: Sequence[float] | None = None,
    ) -> VideoLayout:
        """Label a sequence. `is_vision` marks every vision-filled position (video frames,
        separators and still images); `vision_tokens` describes them in order, so its length must
        equal the number of marked positions.

        Args:
            is_vision: `[pos]` where the processor put vision placeholder tokens.
            vision_tokens: the label of each vision position, in sequence order.
            is_pad: `[pos]` padding positions (default: none).
            is_marker: `[pos]` template text around or between frames (default: none).
            frames_per_group: frames per temporal group.
            frame_times: seconds of each sampled frame.

        Returns:
            The layout; non-vision positions before the first vision position are `system`, after
            it `text` (unless pad or marker).

        Raises:
            LayoutError: the number of vision positions differs from `len(vision_tokens)`.
        """
        n = int(is_vision.shape[0])
        n_vision = int(is_vision.sum())
        if n_vision != len(vision_tokens):
            raise LayoutError(
                f"the sequence has {n_vision} vision placeholder tokens but the layout rules expect "
                f"{len(vision_tokens)}; the processor and the config disagree (was the prompt built "
                f"with this checkpoint's own processor and the same number of frames?)"
            )
        is_pad = torch.zeros(n, dtype=torch.bool) if is_pad is None else is_pad.bool().cpu()
        is_marker = torch.zeros(n, dtype=torch.bool) if is_marker is None else is_marker.bool().cpu()
        is_vision = is_vision.bool().cpu()
        vision_idx = is_vision.nonzero().flatten().tolist()
        first_vision = vision_idx[0] if vision_idx else n
        segment = ["text"] * n
        frame = torch.full((n,), -1, dtype=torch.long)
        row = torch.full((n,), -1, dtype=torch.long)
        col = torch.full((n,), -1, dtype=torch.long)
        image = torch.full((n,), -1, dtype=torch.long)
        for i in range(n):
            if is_pad[i]:
                segment[i] = "pad"
            elif is_marker[i]:
                segment[i] = "marker"
            elif i < first_vision:
                segment[i] = "system"
        for i, tok in zip(vision_idx, vision_tokens):
            segment[i] = tok.segment
            frame[i], row[i], col[i], image[i] = tok.frame, tok.row, tok.col, tok.image
        return cls(
            tuple(segment),
            frame,
            row,
            col,
            frames_per_group=frames_per_group,
            frame_times=tuple(float(t) for t in frame_times) if frame_times is not None else None,
            image=image,
        )

    # views ---------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.segment)

    def mask(self, *segments: str) -> Bool[Tensor, " pos"]:
        """Positions whose segment is one of `segments`."""
        unknown = set(segments) - set(SEGMENTS)
        if unknown:
            raise LayoutError(f"unknown segment names {sorted(unknown)}; segments are {SEGMENTS}")
        return torch.tensor([s in segments for s in self.segment], dtype=torch.bool)

    def role_mask(self, *roles: str) -> Bool[Tensor, " pos"]:
        """Positions whose text role is one of `roles`.

        Raises:
            LayoutError: an unknown role name.
        """
        unknown = set(roles) - set(ROLES)
        if unknown:
            raise LayoutError(f"unknown role names {sorted(unknown)}; roles are {ROLES}")
        assert self.role is not None  # filled by __post_init__
        return torch.tensor([r in roles for r in self.role], dtype=torch.bool)

    @property
    def is_vision(self) -> Bool[Tensor, " pos"]:
        """`[pos]` vision-filled positions (`video` and `separator`)."""
        return self.mask(*VISION_SEGMENTS)

    @property
    def is_video(self) -> Bool[Tensor, " pos"]:
        """`[pos]` positions of one frame (segment `video`)."""
        return self.mask("video")

    @property
    def n_frames(self) -> int:
        """Number of frames (temporal groups) that have video positions."""
        f = self.frame[self.is_video]
        return int(f.max()) + 1 if f.numel() else 0

    @property
    def is_image(self) -> Bool[Tensor, " pos"]:
        return self.mask("image")

    @property
    def n_images(self) -> int:
        """Number of still images in the row."""
        assert self.image is not None  # filled by __post_init__
        i = self.image[self.is_image]
        return int(i.max()) + 1 if i.numel() else 0

    @property
    def has_video(self) -> bool:
        """Whether any position is a `video` position."""
        return bool(self.is_vision.any())

    def positions(self, *segments: str) -> Int[Tensor, " n"]:
        """Indices of the positions whose segment is one of `segments`, ascending.

        Raises:
            LayoutError: an unknown segment name.
        """
        return self.mask(*segments).nonzero().flatten()

    def frame_positions(self, frame: int) -> Int[Tensor, " n"]:
        """Indices of the `video` positions of frame (temporal group) `frame`, ascending."""
        return (self.is_video & (self.frame == frame)).nonzero().flatten()

    @property
    def last_vision(self) -> int:
        """Index of the last vision position (−1 if none)."""
        idx = self.positions(*VISION_SEGMENTS)
        return int(idx[-1]) if idx.numel() else -1

    def counts(self) -> dict[str, int]:
        """Positions per segment, for the segments present."""
        return {s: self.segment.count(s) for s in SEGMENTS if self.segment.count(s)}

    def extend(self, n: int) -> VideoLayout:
        """The layout after `n` generated tokens (they are `text`).

        Args:
            n: generated tokens appended to the sequence.

        Returns:
            A new layout `n` positions longer (the same object when `n == 0`).
        """
        if n == 0:
            return self
        pad = torch.full((n,), -1, dtype=torch.long)
        # filled by __post_init__
        assert self.image is not None and self.role is not None and self.option_letter is not None
        return VideoLayout(
            self.segment + ("text",) * n,
            torch.cat([self.frame, pad]),
            torch.cat([self.row, pad]),
            torch.cat([self.col, pad]),
            self.frames_per_group,
            self.frame_times,
            torch.cat([self.image, pad]),
            self.role + ("generated",) * n,
            self.option_letter + ("",) * n,
            self.correct,
        )

    def labels(self, tokens: Sequence[str] | None = None, roles: bool = False) -> list[str]:
        """One label per position: the token text, or `<f3 r2 c5>` for a video position
        (`<f3 extra>` for a per-frame extra token, `<sep>` for a separator, `<i0 r1 c2>` for
        a position of image 0, `<i0 extra>` for an image's extra token).

        Args:
            tokens: token strings per position (e.g. `model.to_str_tokens(inputs)`); without them
                text positions read `<segment>`.
            roles: append each text position's role (`What|question`, `B|option B*`, the `*`
                marking the correct option); positions without a role are unchanged.

        Returns:
            One string per position.
        """
        # filled by __post_init__
        assert self.image is not None and self.role is not None and self.option_letter is not None
        out = []
        for i, seg in enumerate(self.segment):
            if seg == "video":
                f, r, c = int(self.frame[i]), int(self.row[i]), int(self.col[i])
                out.append(f"<f{f} r{r} c{c}>" if r >= 0 else f"<f{f} extra>")
            elif seg == "image":
                k, r, c = int(self.image[i]), int(self.row[i]), int(self.col[i])
                out.append(f"<i{k} r{r} c{c}>" if r >= 0 and c >= 0 else f"<i{k} extra>")
            elif seg == "separator":
                out.append("<sep>")
            elif seg == "pad":
                out.append("<pad>")
            else:
                text = tokens[i] if tokens is not None else f"<{seg}>"
                r = self.role[i]
                if roles and r:
                    if r == "option" and self.option_letter[i]:
                        star = "*" if self.option_letter[i] == self.correct else ""
                        r = f"option {self.option_letter[i]}{star}"
                    text = f"{text}|{r}"
                out.append(text)
        return out

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}={v}" for k, v in self.counts().items())
        images = f"images={self.n_images}, " if self.n_images else ""
        return f"VideoLayout(len={len(self)}, frames={self.n_frames}, {images}{parts})"
