"""Layouts of rows that hold any mix of images and videos, from token ids alone.

The HF models fill placeholders in batch order: the k-th image's features go to the next
`n_k` image-placeholder positions (row 0's first, then row 1's, ...), and the same for videos,
independently. A family describes each image and each video of the batch, in that order, as the
list of `VisionToken`s its features fill (`media_tokens`); this module hands them to rows by
counting each row's placeholders and labels the positions exactly as HF fills them. A count
that does not divide at a row boundary is a `LayoutError` naming the row and both counts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from vlens.inputs.layout import LayoutError, VideoLayout, VisionToken


def assign_to_rows(
    ids: Int[Tensor, "batch pos"], token_id: int | None, sizes: Sequence[int], what: str
) -> list[list[int]]:
    """Which items (images or videos, by batch-order index) each row holds.

    Args:
        ids: the batch's input_ids.
        token_id: the items' placeholder token (None: the family has no such items).
        sizes: placeholder count of every item, in batch order.
        what: "image" or "video", for errors.

    Returns:
        Per row, the indices of its items.

    Raises:
        LayoutError: the rows' placeholder counts and the items' sizes do not line up.
    """
    per_row = (ids == token_id).sum(1).tolist() if token_id is not None else [0] * ids.shape[0]
    out, k = [], 0
    for r, need in enumerate(per_row):
        mine, got = [], 0
        while got < need and k < len(sizes):
            mine.append(k)
            got += sizes[k]
            k += 1
        if got != need:
            raise LayoutError(
                f"row {r} has {need} {what} placeholder tokens but the {what}s given to it fill {got} "
                f"(sizes in batch order: {list(sizes)}); every {what} must have exactly its tokens in its row"
            )
        out.append(mine)
    if k != len(sizes):
        raise LayoutError(f"{len(sizes)} {what}s were given but the prompts' placeholders hold only {k}")
    return out


def row_layout(
    ids: Int[Tensor, " pos"],
    attention_mask: Int[Tensor, " pos"] | None,
    *,
    image_id: int | None,
    video_id: int | None,
    images: Sequence[Sequence[VisionToken]],
    videos: Sequence[Sequence[VisionToken]],
    is_marker: Bool[Tensor, " pos"] | None = None,
    frames_per_group: int = 1,
    frame_times: Sequence[float] | None = None,
) -> VideoLayout:
    """The layout of one row from its images' and videos' tokens (each list in the row's order).

    Frame indices continue across the row's videos (video 2's first frame follows video 1's
    last), so VT-K/VS-K treat every frame of the row as its own frame; image indices count the
    row's images from 0.
    """
    ids = ids.cpu()
    image_q: list[VisionToken] = [dataclasses.replace(t, image=k) for k, im in enumerate(images) for t in im]
    video_q: list[VisionToken] = []
    offset = 0
    for vid in videos:
        frames = [t.frame for t in vid if t.frame >= 0]
        video_q += [dataclasses.replace(t, frame=t.frame + offset) if t.frame >= 0 else t for t in vid]
        offset += (max(frames) + 1) if frames else 0
    is_image = ids == image_id if image_id is not None else torch.zeros_like(ids, dtype=torch.bool)
    is_video = ids == video_id if video_id is not None else torch.zeros_like(ids, dtype=torch.bool)
    if image_id is not None and image_id == video_id:
        raise LayoutError("images and videos share one placeholder token here; use the family's own layout rules")
    for name, mask, queue in (("image", is_image, image_q), ("video", is_video, video_q)):
        if int(mask.sum()) != len(queue):
            raise LayoutError(
                f"the row has {int(mask.sum())} {name} placeholder tokens but its {name}s fill {len(queue)}"
            )
    tokens, it_i, it_v = [], iter(image_q), iter(video_q)
    for pos in (is_image | is_video).nonzero().flatten().tolist():
        tokens.append(next(it_i) if is_image[pos] else next(it_v))
    is_pad = attention_mask.cpu() == 0 if attention_mask is not None else None
    return VideoLayout.build(
        is_image | is_video,
        tokens,
        is_pad=is_pad,
        is_marker=is_marker,
        frames_per_group=frames_per_group,
        frame_times=frame_times,
    )


def grid_tokens(segment: str, rows: int, cols: int, *, frame: int = -1) -> list[VisionToken]:
    """A rows×cols grid of tokens, row-major."""
    return [VisionToken(segment, frame, r, c) for r in range(rows) for c in range(cols)]


def anyres_image_tokens(
    hf_config, image_size: Sequence[int], *, patched: bool, max_patches: int | None
) -> list[VisionToken]:
    """The tokens of one LLaVA-NeXT/OneVision "anyres" image in the order HF packs them
    (`pack_image_features`): the base tile's g×g grid, then — when the image is split into
    tiles — the unpadded high-resolution grid row by row, each row closed by an `image_newline`
    (row r, col −1); an unsplit image is its base grid and one newline (row −1, col −1).

    Row/col are within the token's own grid (base tile, or the high-resolution grid).
    `max_patches` is OneVision's anyres_max_N (the grid is shrunk as HF does when larger).
    """
    import math

    from transformers.models.llava_next.modeling_llava_next import (
        get_anyres_image_grid_shape,
        unpad_image,
    )

    v = hf_config.vision_config
    g = v.image_size // v.patch_size
    base = grid_tokens("image", g, g)
    if not patched:
        return [*base, VisionToken("image")]
    nph, npw = get_anyres_image_grid_shape(list(image_size), hf_config.image_grid_pinpoints, v.image_size)
    shape = unpad_image(torch.empty(1, nph * g, npw * g), torch.as_tensor(list(image_size))).shape
    h, w = int(shape[1]), int(shape[2])
    if max_patches is not None:
        ratio = math.sqrt(h * w / (max_patches * g**2))
        if ratio > 1.1:
            h, w = int(h // ratio), int(w // ratio)
    hi = []
    for r in range(h):
        hi += [VisionToken("image", -1, r, c) for c in range(w)] + [VisionToken("image", -1, r, -1)]
    return base + hi


def layouts_for(family, hf_config, tensors: dict, videos: Sequence) -> list[VideoLayout]:
    """One layout per row of a batch of HF kwargs (`videos`: the row's SampledVideo or None).

    Families whose features HF places (`hf_merge`) and that describe their media
    (`media_tokens`) are laid out here, images and videos in any mix; the others (the released
    formats, InternVL's frame-labelled videos) by their own `layout` rules, row by row, each row
    given its share of the tensors (the family's `row_inputs` where a tensor is not one entry per
    row).
    """
    ids, mask = tensors["input_ids"], tensors.get("attention_mask")
    if (
        getattr(family, "hf_merge", False)
        and hasattr(family, "media_tokens")
        and getattr(family, "media_layout_applies", lambda t, c: True)(tensors, hf_config)
    ):
        images, vids = family.media_tokens(hf_config, tensors)
        image_id, video_id = family.media_ids(hf_config)
        image_rows = assign_to_rows(ids, image_id, [len(t) for t in images], "image")
        video_rows = assign_to_rows(ids, video_id, [len(t) for t in vids], "video")
        fpg = getattr(family, "frames_per_group", lambda c: 1)(hf_config)
        layouts = []
        for i in range(ids.shape[0]):
            markers = family.markers(ids[i], hf_config) if hasattr(family, "markers") else None
            times = videos[i].timestamps if videos[i] is not None and len(video_rows[i]) == 1 else None
            layouts.append(
                row_layout(
                    ids[i],
                    mask[i] if mask is not None else None,
                    image_id=image_id,
                    video_id=video_id,
                    images=[images[k] for k in image_rows[i]],
                    videos=[vids[k] for k in video_rows[i]],
                    is_marker=markers,
                    frames_per_group=fpg,
                    frame_times=times,
                )
            )
        return layouts
    B = ids.shape[0]
    if hasattr(family, "row_inputs"):  # tensors not one entry per row (VideoLLaMA3's per-token mask)
        rows = family.row_inputs(hf_config, tensors)
    else:
        rows = [
            {k: (v[i : i + 1] if isinstance(v, Tensor) and v.shape[:1] == (B,) else v) for k, v in tensors.items()}
            for i in range(B)
        ]
    return [
        family.layout(ids[i], mask[i] if mask is not None else None, videos[i], hf_config, rows[i]) for i in range(B)
    ]
