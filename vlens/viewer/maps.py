"""Attention maps for the viewer: from chosen query rows to every key, per layer and head, reduced
as the pattern hook runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from jaxtyping import Float

if TYPE_CHECKING:
    from vlens.inputs.video_inputs import VideoInputs
    from vlens.model.hooked_video_llm import HookedVideoLLM


QUERIES = ("answer", "question")


class ViewError(ValueError):
    """The inputs or run directory cannot be shown (names what is missing and what to pass)."""


@dataclass
class AttentionMaps:
    """Attention from query positions to every frame's patches, per layer and head.

    Attributes:
        maps: `[query, layer, head, frame, row, col]` attention weight to each patch position;
            the head axis has `n_heads + 1` entries, the last being the mean over heads.
        mass: `[query, layer, head, frame]` total attention to each frame's video positions
            (per-frame extra tokens such as a CLS token included), same head axis.
        queries: names of the query axis (`"answer"`, and `"question"` when the prompt has text
            after the video besides the answer position).
        layers: the model layers of the layer axis.
    """

    maps: Float[np.ndarray, "query layer head frame row col"]
    mass: Float[np.ndarray, "query layer head frame"]
    queries: tuple[str, ...]
    layers: list[int]


def _query_rows(layout) -> dict[str, torch.Tensor]:
    n = len(layout.segment)
    rows = {"answer": torch.tensor([n - 1])}
    after = [i for i in layout.positions("text").tolist() if layout.last_vision < i < n - 1]
    if after:
        rows["question"] = torch.tensor(after)
    return rows


@torch.no_grad()
def attention_maps(
    model: HookedVideoLLM,
    inputs: VideoInputs,
    *,
    layers: Sequence[int] | None = None,
    row: int = 0,
    fwd_hooks: Sequence = (),
) -> AttentionMaps:
    """Attention from the answer position and from the question to each frame's patches.

    Args:
        model: a `HookedVideoLLM`.
        inputs: `VideoInputs` from `model.to_inputs`; `row` picks the batch row.
        layers: layers to read (default: all).
        row: batch row.
        fwd_hooks: extra hooks to run with (e.g. a knockout's `spec.hooks(...)`), so the maps show
            attention under that intervention.

    Returns:
        `AttentionMaps` with maps `[query, layer, n_heads + 1, frame, row, col]`.

    Raises:
        ViewError: the row has no video positions with patch coordinates, or a layer is out of range.
    """
    if not 0 <= row < inputs.batch_size:
        raise ViewError(
            f"row={row} is out of range for a batch of {inputs.batch_size}; pass 0 ≤ row < {inputs.batch_size}"
        )
    layout = inputs.layouts[row]
    L, H = model.cfg.n_layers, model.cfg.n_heads
    layers = list(range(L)) if layers is None else [int(x) for x in layers]
    bad = [x for x in layers if not 0 <= x < L]
    if bad or not layers:
        raise ViewError(f"layers {bad or '[]'} are not layers of this {L}-layer model; pass layers within 0..{L - 1}")
    video = layout.is_video
    patch = video & (layout.row >= 0) & (layout.col >= 0)
    if not bool(patch.any()):
        raise ViewError(
            "these inputs have no video patch positions (layout.row/col ≥ 0); pass inputs built from a video"
        )
    F = layout.n_frames
    R, C = int(layout.row[patch].max()) + 1, int(layout.col[patch].max()) + 1
    keys = patch.nonzero().flatten()
    cell = (layout.frame[keys] * R + layout.row[keys]) * C + layout.col[keys]  # flat [frame, row, col]
    frame_of = torch.nn.functional.one_hot(layout.frame[video.nonzero().flatten()], F).float()  # [video pos, frame]
    vid = video.nonzero().flatten()
    q_rows = _query_rows(layout)
    queries = tuple(q for q in QUERIES if q in q_rows)
    maps = torch.zeros(len(queries), len(layers), H + 1, F * R * C)
    mass = torch.zeros(len(queries), len(layers), H + 1, F)
    where = {layer: i for i, layer in enumerate(layers)}

    def read(pattern, hook):
        i = where[hook.layer()]
        for qi, q in enumerate(queries):
            p = pattern[row][:, q_rows[q].to(pattern.device)].float().mean(1).cpu()  # [head, key]
            m = torch.zeros(H, F * R * C).index_add_(1, cell, p[:, keys])
            maps[qi, i, :H], maps[qi, i, H] = m, m.mean(0)
            fm = p[:, vid] @ frame_of
            mass[qi, i, :H], mass[qi, i, H] = fm, fm.mean(0)

    hooks = list(fwd_hooks) + [(f"blocks.{layer}.attn.hook_pattern", read) for layer in layers]
    model.run_with_hooks(inputs, fwd_hooks=hooks, logits_to_keep=1)
    return AttentionMaps(maps.reshape(len(queries), len(layers), H + 1, F, R, C).numpy(), mass.numpy(), queries, layers)
