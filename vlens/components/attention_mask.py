"""One forward's attention masks: causal ∧ padding ∧ ¬(this layer's removed edges), built once per
forward and shared by every layer with the same interventions (`AttentionContext.layer_mask`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from vlens.components.kv_cache import KVCache
from vlens.components.per_call import EdgeRemoval, Interventions, PerFrameBlocks, index_rows

AttentionPath = Literal["auto", "explicit", "fast", "flex", "chunked"]
ATTENTION_PATHS: tuple[str, ...] = ("auto", "explicit", "fast", "flex", "chunked")
DEFAULT_CHUNK = 1024  # query rows per chunk on the "chunked" path (vlens.components.attention_chunked)


# ------------------------------------------------------------------------------------------------
# One forward's state and the layer masks built from it
# ------------------------------------------------------------------------------------------------
@dataclass
class LayerMask:
    """What a layer's attention may read, for this call's rows and keys.

    `allowed` is None for plain causal attention over a contiguous unpadded sequence (the causal
    kernel needs no mask). `base` is causal + padding; `blocked` the interventions' removed edges
    by hook site (the explicit path applies them where a hook would see them). `allowed`,
    `blocked` and `empty` carry a head axis: 1 (every head alike) or the query heads, when an
    intervention acts on chosen heads only (`heads=`).

    Scalings (vlens.interventions.scaling) keep their edges and change their weights: `bias` is
    the log α added to the scores of the renormalised ones, by hook site (an additive mask, so the
    fused paths take it); `post_scale` the factor the softmax is multiplied by for the others
    (only the explicit path, which has the pattern, can apply it)."""

    allowed: Bool[Tensor, "batch head q k"] | None
    base: Bool[Tensor, "batch q k"] | None = None
    blocked: dict[str, Bool[Tensor, "batch head q k"]] = field(default_factory=dict)
    first_row: int = 0  # rows before it are plain causal over a prefix (the SDPA split)
    empty: Bool[Tensor, "batch head q"] | None = None  # rows with no allowed key: output 0
    frame_blocks: tuple[Tensor, Tensor, Tensor, Tensor] | None = (
        None  # temporal pruning's per-frame blocks (vlens.interventions.efficient)
    )
    block_mask: object | None = None  # FlexAttention's, made once from this mask (see _flex)
    dense: Bool[Tensor, "batch q k"] | None = None  # `base`, materialised once for plain causal rows
    bias: dict[str, Float[Tensor, "batch head q k"]] = field(default_factory=dict)
    post_scale: Float[Tensor, "batch head q k"] | None = None

    @property
    def edited(self) -> bool:
        return bool(self.blocked) or bool(self.bias) or self.post_scale is not None

    def additive(self, dtype: torch.dtype) -> Float[Tensor, "batch head q k"] | Bool[Tensor, "batch head q k"]:
        """The mask for a fused kernel: `allowed` (bool) without scalings, else log α on the
        scaled edges and −∞ where nothing may be read (a float mask)."""
        assert self.allowed is not None, "additive(): a mask with edits (plain causal rows need none)"
        if not self.bias:
            return self.allowed
        bias = cast(Tensor, sum(self.bias.values()))  # a non-empty sum of tensors
        return torch.where(self.allowed, bias, float("-inf")).to(dtype)

    def causal_or_base(self, Q: int, K: int, device: torch.device) -> Bool[Tensor, "batch q k"]:
        """`base` as a tensor (plain causal rows: the last Q rows of a K×K triangle), built once
        per forward and shared by every layer using this mask."""
        if self.base is not None:
            return self.base
        if self.dense is None:
            self.dense = torch.ones(K, K, dtype=torch.bool, device=device).tril()[K - Q :][None]
        return self.dense


@dataclass
class AttentionContext:
    """What every layer's attention needs to know about this forward besides its input.

    `q_index` holds the sequence indices of the rows computed now (they change when rows leave
    the sequence, see vlens.interventions.efficient); `key_padding` marks real keys over all `n_pos` sequence
    positions. `masks` memoises layer masks for the length of one forward. `chunk`: query rows
    per chunk on the "chunked" path (no layer mask is built there)."""

    n_pos: int
    q_start: int
    q_index: Int[Tensor, " q"]
    key_padding: Bool[Tensor, "batch n_pos"] | None = None
    interventions: Interventions = field(default_factory=Interventions)
    path: AttentionPath = "auto"
    kv_cache: KVCache | None = None
    rows_version: int = 0  # bumped when rows leave the sequence
    masks: dict = field(default_factory=dict)
    paths_taken: set = field(default_factory=set)
    chunk: int = DEFAULT_CHUNK

    def drop_rows(self, q_index: Int[Tensor, " q"]) -> None:
        self.q_index = q_index
        self.rows_version += 1

    def layer_mask(
        self, layer: int, k_index: Int[Tensor, " k"], k_contiguous: bool, device: torch.device, n_heads: int = 1
    ) -> LayerMask:
        """The mask of `layer` for the current rows and keys `k_index` (`k_contiguous`: they are
        0..K−1): the one place where causality, padding and the union of a layer's
        interventions are combined. `n_heads` (query heads) shapes the masks of interventions
        restricted to some heads."""
        edits = self.interventions.at(layer)
        Q, K = len(self.q_index), len(k_index)
        q0 = self.q_start
        q_contiguous = self.rows_version == 0  # rows are q_start..q_start+Q until some leave
        key = (
            tuple(e.mask_key(layer) for e in edits),
            Q,
            K,
            self.rows_version,
            k_contiguous or id(k_index),
            str(device),
        )
        if key in self.masks:
            return self.masks[key]
        per_frame = bool(edits) and all(getattr(e, "per_frame_blocks", None) is not None for e in edits)
        plain = not edits and self.key_padding is None and q_contiguous and k_contiguous
        if plain and (Q == K or Q == 1):
            mask = LayerMask(None)
        else:
            q_sel = slice(q0, q0 + Q) if q_contiguous else self.q_index.to(device)
            k_sel = slice(0, K) if k_contiguous else k_index
            q_index = self.q_index.to(device)  # blocks of a split model run on several devices
            base = (k_index[None, :] <= q_index[:, None])[None]  # causal by sequence index
            if self.key_padding is not None:
                base = base & index_rows(self.key_padding.to(device), 1, k_sel)[:, None, :]
            touched = [  # every edit's edges, removed or scaled
                index_rows(index_rows(e.blocked(layer, self.n_pos, device), 1, q_sel), 2, k_sel) for e in edits
            ]
            allowed, blocked, bias, post = combine_edits(base, edits, touched, n_heads)
            first = 0
            if touched and self.key_padding is None and q0 == 0 and Q == K and q_contiguous:
                edited_rows = torch.zeros(Q, dtype=torch.bool, device=device)
                for b in touched:  # [batch, q, k]: any row an edit touches
                    edited_rows |= b.any(dim=(0, 2))
                rows = edited_rows.nonzero()
                first = int(rows[0]) if len(rows) else Q
            empty = ~allowed.any(-1)
            first_edit = edits[0] if per_frame else None
            frame_blocks = first_edit.per_frame_blocks(device) if isinstance(first_edit, PerFrameBlocks) else None
            mask = LayerMask(allowed, base, blocked, first, empty if bool(empty.any()) else None, frame_blocks)
            mask.bias, mask.post_scale = bias, post
        self.masks[key] = mask
        return mask


def combine_edits(
    base: Bool[Tensor, "batch q k"],
    edits: Sequence[EdgeRemoval],
    touched: Sequence[Bool[Tensor, "batch q k"]],
    n_heads: int,
) -> tuple[
    Bool[Tensor, "batch head q k"],
    dict[str, Bool[Tensor, "batch head q k"]],
    dict[str, Float[Tensor, "batch head q k"]],
    Float[Tensor, "batch head q k"] | None,
]:
    """Causal ∧ padding (`base`) and each edit's edges (`touched`, the same rows and keys) as
    (allowed, blocked by site, log α bias by site, post-softmax factor): knockouts and α = 0
    renormalised scalings remove their edges, renormalised scalings add log α, the others
    multiply the pattern. The dense layer mask and each chunk of the chunked path use it."""
    blocked: dict[str, Tensor] = {}
    bias: dict[str, Tensor] = {}
    post: Tensor | None = None
    for e, edges in zip(edits, touched):
        b = _on_heads(edges, getattr(e, "heads", None), n_heads)
        alpha = getattr(e, "alpha", None)  # a scaling keeps its edges (vlens.interventions.scaling)
        if alpha is None or (alpha == 0 and getattr(e, "renormalise", True)):  # α = 0 renormalised: the knockout
            blocked[e.site] = b if e.site not in blocked else blocked[e.site] | b
        elif getattr(e, "renormalise", True):  # α·w renormalised = softmax(s + log α): scalings multiply, logs add
            log_alpha = b.float() * math.log(alpha)
            bias[e.site] = log_alpha if e.site not in bias else bias[e.site] + log_alpha
        else:
            factor = torch.where(b, alpha, 1.0)
            post = factor if post is None else post * factor
    allowed = base[:, None]
    for b in blocked.values():
        allowed = allowed & ~b
    return allowed, blocked, bias, post


def _on_heads(
    blocked: Bool[Tensor, "batch q k"], heads: tuple[int, ...] | None, n_heads: int
) -> Bool[Tensor, "batch head q k"]:
    """An intervention's removed edges with a head axis: 1 (all heads) or `n_heads` with the
    edges only in `heads` (query heads; checked against the model before the forward)."""
    if heads is None:
        return blocked[:, None]
    out = torch.zeros(blocked.shape[0], n_heads, *blocked.shape[1:], dtype=torch.bool, device=blocked.device)
    out[:, list(heads)] = blocked[:, None]
    return out
