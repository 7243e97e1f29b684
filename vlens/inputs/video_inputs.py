"""VideoInputs: the HF model's kwargs for a batch, plus the layout of every row.

It *is* a dict of exactly what the checkpoint's processor returned, so `hf_model(**inputs)` runs
the HF model on the same tensors as `model(inputs)`; the extra attributes say what each position
is (`layouts`), which frames were sampled (`videos`) and the prompt text (`prompts`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vlens.inputs.layout import VideoLayout
from vlens.inputs.sampling import SampledVideo


class VideoInputs(dict):
    """The HF model's kwargs for a batch (a dict), plus what each position and row is.

    Built by `model.to_inputs`. `hf_model(**inputs)` runs the HF model on the same tensors.

    Args:
        tensors: what the checkpoint's processor returned (`input_ids` `[batch, pos]`,
            `attention_mask`, pixel values, …).
        layouts: one `VideoLayout` per row.
        videos: the `SampledVideo` of each row (None for a row without video).
        prompts: the templated prompt text of each row.

    Raises:
        ValueError: the number of layouts differs from the batch size.
    """

    def __init__(
        self,
        tensors: dict,
        layouts: Sequence[VideoLayout],
        videos: Sequence[SampledVideo | None] = (),
        prompts: Sequence[str] = (),
    ):
        super().__init__(tensors)
        self.layouts: list[VideoLayout] = list(layouts)
        self.videos = list(videos)
        self.prompts = list(prompts)
        n = self["input_ids"].shape[0]
        if len(self.layouts) != n:
            raise ValueError(f"{len(self.layouts)} layouts for a batch of {n} rows; give one layout per row")

    @property
    def layout(self) -> VideoLayout:
        """The layout of a batch of one (use `.layouts[i]` for row i of a batch)."""
        if len(self.layouts) != 1:
            raise ValueError(
                f"inputs.layout is for a batch of one, this batch has {len(self.layouts)} rows: use inputs.layouts[i]"
            )
        return self.layouts[0]

    @property
    def batch_size(self) -> int:
        """Rows in the batch."""
        return int(self["input_ids"].shape[0])

    @property
    def shape(self) -> torch.Size:
        """[batch, pos] of input_ids: lets TransformerLens tools that read `tokens.shape`
        (e.g. transformer_lens.patching) take VideoInputs where they take tokens."""
        return self["input_ids"].shape

    @property
    def seq_len(self) -> int:
        """Positions per row (after padding)."""
        return int(self["input_ids"].shape[1])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> VideoInputs:
        """Move tensors to `device`; cast floating tensors (pixel values) to `dtype`.

        Args:
            device: target device (None: stay).
            dtype: dtype for floating tensors (None: keep); integer tensors are never cast.

        Returns:
            New `VideoInputs` with the same layouts, videos and prompts.
        """
        moved = {}
        for k, v in self.items():
            if isinstance(v, torch.Tensor):
                v = v.to(device) if device is not None else v
                if dtype is not None and v.is_floating_point():
                    v = v.to(dtype)
            moved[k] = v
        return VideoInputs(moved, self.layouts, self.videos, self.prompts)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}: {tuple(v.shape)}" for k, v in self.items() if isinstance(v, torch.Tensor))
        return f"VideoInputs({shapes}; layouts={self.layouts})"


def _image(item: Any, where: str) -> Any:
    """One still image as the processor takes it (PIL image or HxWx3 uint8 array)."""
    if isinstance(item, (str, Path)):
        from vlens.inputs.video import check_regular_file

        path = Path(item)
        check_regular_file(path, "image")
        from PIL import Image

        try:
            with Image.open(path) as im:
                return im.convert("RGB")
        except Exception as e:
            raise ValueError(f"{where}: cannot read image {path}: {e}") from e
    if isinstance(item, torch.Tensor):
        item = item.detach().cpu().numpy()
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8 or item.ndim != 3 or item.shape[-1] != 3:
            raise ValueError(f"{where}: an image array must be uint8 [H, W, 3], got {item.dtype} {list(item.shape)}")
        return item
    if type(item).__module__.startswith("PIL."):
        return item.convert("RGB")
    raise TypeError(f"{where}: an image is a PIL image, an HxWx3 uint8 array or a file path, got {type(item).__name__}")


def load_images(images: Any, rows: int) -> list[list[Any]]:
    """`to_inputs(images=...)` as one list of images per row.

    One image or a flat list of images is the images of a batch of one; a batch (rows > 1) takes
    one list per row.

    Raises:
        ValueError / TypeError: a bad image, or a batch without one list per row.
    """
    if images is None:
        return [[] for _ in range(rows)]
    single = not isinstance(images, (list, tuple))
    if rows == 1:
        items = [images] if single else list(images)
        if items and all(isinstance(i, (list, tuple)) for i in items) and len(items) == 1:
            items = list(items[0])
        return [[_image(im, f"image {j}") for j, im in enumerate(items)]]
    if single or len(images) != rows or not all(isinstance(r, (list, tuple)) for r in images):
        raise ValueError(f"a batch of {rows} rows takes images=[[row 0's images], [row 1's], ...] (one list per row)")
    return [[_image(im, f"row {i} image {j}") for j, im in enumerate(r)] for i, r in enumerate(images)]


def with_media(messages: list[dict], n_images: int, *, video: bool = True) -> list[dict]:
    """The family's chat messages for one question with `n_images` image items put before the
    video item of the user turn (and the video item dropped when there is no video)."""
    out = copy.deepcopy(messages)
    user = next(m for m in out if m["role"] == "user")
    content = [c for c in user["content"] if video or c.get("type") != "video"]
    at = next((i for i, c in enumerate(content) if c.get("type") in ("video", "text")), 0)
    user["content"] = content[:at] + [{"type": "image"} for _ in range(n_images)] + content[at:]
    return out


def as_frames(layout: VideoLayout) -> VideoLayout:
    """The layout with each image read as a video frame (image k becomes frame k)."""
    if layout.has_video:
        raise ValueError("images_as_frames: the row already has video positions; it takes rows of images only")
    if layout.n_images == 0:
        raise ValueError("images_as_frames: the row has no image positions to read as frames")
    img = layout.is_image
    assert layout.image is not None  # filled by VideoLayout.__post_init__
    segment = tuple("video" if s == "image" else s for s in layout.segment)
    frame = torch.where(img, layout.image, layout.frame)
    return VideoLayout(
        segment,
        frame,
        layout.row.clone(),
        layout.col.clone(),
        layout.frames_per_group,
        layout.frame_times,
        torch.full_like(layout.image, -1),
    )


IGNORED_HF_KWARGS = ("labels", "use_cache", "return_dict")  # accepted by HF, no effect on the logits


def check_hf_kwargs(family: Any, kwargs: Mapping[str, Any]) -> dict:
    """The HF kwargs `model.inputs_from_hf` takes, checked: `input_ids` [batch, pos] of integers,
    an `attention_mask` of the same shape, and only keys the family runs exactly
    (`family.hf_inputs`); `IGNORED_HF_KWARGS` are dropped.

    Raises:
        TypeError: kwargs is not a mapping.
        ValueError: a missing or malformed field, or a kwarg vlens does not run exactly (named).
    """
    if not isinstance(kwargs, Mapping):
        raise TypeError(f"inputs_from_hf takes the HF model's kwargs as a dict, got {type(kwargs).__name__}")
    if "input_ids" not in kwargs:
        hint = (
            " (vlens needs the token ids to lay out positions; pass input_ids instead)"
            if "inputs_embeds" in kwargs
            else ""
        )
        raise ValueError(f"inputs_from_hf needs input_ids [batch, pos]{hint}; got keys {sorted(kwargs)}")
    ids = kwargs["input_ids"]
    if not isinstance(ids, torch.Tensor) or ids.ndim != 2 or ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(
            f"input_ids must be an integer tensor [batch, pos], got "
            f"{getattr(ids, 'dtype', type(ids).__name__)} {tuple(getattr(ids, 'shape', ()))}"
        )
    if ids.shape[0] == 0:
        raise ValueError("input_ids holds an empty batch")
    accepted = set(getattr(family, "hf_inputs", ())) | {"input_ids", "attention_mask"}
    unknown = sorted(set(kwargs) - accepted - set(IGNORED_HF_KWARGS))
    if unknown:
        raise ValueError(
            f"vlens does not run these {family.name} inputs exactly: {unknown} (it takes "
            f"{sorted(accepted)}); drop them or build the inputs with model.to_inputs"
        )
    mask = kwargs.get("attention_mask")
    if mask is not None and (not isinstance(mask, torch.Tensor) or mask.shape != ids.shape):
        raise ValueError(
            f"attention_mask must be [batch, pos] like input_ids {tuple(ids.shape)}, "
            f"got {tuple(getattr(mask, 'shape', ()))} (4-D masks are not supported)"
        )
    return {k: v for k, v in kwargs.items() if k not in IGNORED_HF_KWARGS}
