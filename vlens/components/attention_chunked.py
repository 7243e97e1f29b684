"""Query-chunked attention: softmax(QKᵀ/√d + M)V for long sequences without any [pos, pos] tensor.

On the "chunked" path (`model.attention_path_as("chunked", chunk=1024)`) every layer runs SDPA
once per block of `chunk` query rows. The block's mask [batch, head, chunk, k] — causal ∧ padding
∧ ¬(the edges this layer's interventions remove from those rows) — is built for that block only
and dropped after it. Interventions that are `BlockedRows` (vlens.components.per_call) build the
rows from the layout's structure: the knockout specs LV, VT, VS, `Edges`, their unions and
`KeepOnly` of them, on every head or chosen ones, and their renormalised scalings. So the memory
of a layer's mask is chunk × pos, not pos². Keys after a block's last row are causally masked for
every row of it and are not read.

It computes the same function as the other paths (tests/test_chunked.py: ≤ 1e-5 on logits in
fp32). What it cannot do is refused before the forward (`check_chunked`), never run differently:

- hooks on `attn.hook_attn_scores` / `attn.hook_pattern` (they need the [batch, head, pos, pos]
  tensors this path exists not to build: cache or hook them on the "explicit" path, at a length
  where they fit);
- scalings with `renormalise=False` (they multiply the pattern after the softmax).

Interventions that are not structural (`ko.Custom`, `RandomEdges`, the sweep engine's rows, the
efficient plan's pruning) give their rows from their dense mask, which they build once: the
results are the same, but that one [batch, pos, pos] tensor exists.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from vlens.components.attention_backends import HookedAttention
from vlens.components.attention_mask import AttentionContext, combine_edits
from vlens.components.per_call import InterventionError, Interventions, blocked_rows, index_rows

QKV = Float[Tensor, "batch head pos d_head"]


def check_chunked(blocks: Iterable[nn.Module], interventions: Interventions, chunk: int) -> None:
    """Refuse, before a forward on the chunked path, what that path cannot compute.

    Args:
        blocks: the decoder's blocks (each with an `attn`).
        interventions: the call's interventions.
        chunk: query rows per chunk.

    Raises:
        InterventionError: a hook on `attn_scores`/`pattern`, or a scaling with renormalise=False.
    """
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise InterventionError(f"chunk must be an int ≥ 1 (query rows per chunk), got {chunk!r}")
    for layer, block in enumerate(blocks):
        for name in ("hook_attn_scores", "hook_pattern"):
            point = getattr(block.attn, name)
            if point._forward_hooks or point._backward_hooks:
                raise InterventionError(
                    f"blocks.{layer}.attn.{name} is hooked, but the 'chunked' attention path never builds the "
                    "[batch, head, pos, pos] scores/pattern it would see; hook or cache it on the 'explicit' path "
                    "(model.attention_path_as('explicit')) at a length where it fits, or leave it out of the "
                    f"hooks/names_filter (e.g. {_NO_NXN})"
                )
    for edit in interventions.all_edits():
        if getattr(edit, "alpha", None) is not None and not getattr(edit, "renormalise", True):
            raise InterventionError(
                f"{edit!r}: a scaling with renormalise=False multiplies the attention pattern after the softmax, "
                "which the 'chunked' path never materialises; use renormalise=True (log α on the scores) or the "
                "'explicit' path"
            )


_NO_NXN = 'names_filter=lambda name: not name.endswith(("hook_attn_scores", "hook_pattern"))'


def chunked_attention(
    q: QKV,
    k: QKV,
    v: QKV,
    ctx: AttentionContext,
    layer: int,
    k_index: Int[Tensor, " k"],
    k_contiguous: bool,
    attn: HookedAttention,
) -> QKV:
    """softmax(QKᵀ/√d + M)V, `ctx.chunk` query rows at a time, each chunk's M built on the fly.

    Args:
        q: queries [batch, head, q, d_head] of the rows `ctx.q_index`.
        k: keys [batch, kv_head, k, d_head] at sequence indices `k_index`.
        v: values, as `k`.
        ctx: the forward's attention context (rows, padding, interventions, chunk size).
        layer: the layer (whose interventions apply).
        k_index: the keys' sequence indices.
        k_contiguous: the keys are 0..K−1 (then keys after a chunk's last row are not read).
        attn: the calling module (scale, grouped-query config).

    Returns:
        z [batch, head, q, d_head]; rows that may read no key get 0 (as on every path)."""
    _, H, Q, _ = q.shape
    edits = ctx.interventions.at(layer)
    q_index, k_index = ctx.q_index.to(q.device), k_index.to(q.device)
    padding = None if ctx.key_padding is None else ctx.key_padding.to(q.device)
    gqa = attn.cfg.n_groups > 1
    key = tuple(e.mask_key(layer) for e in edits)
    out, start = [], 0
    if padding is None and k_contiguous and ctx.q_start == 0 and ctx.rows_version == 0 and len(k_index) == Q:
        # rows 0..start−1 lose no edge (LV-K: up to the question): one causal kernel call, no mask
        start = _untouched_prefix(ctx, layer, key, Q, q.device)
        if start:
            out.append(
                F.scaled_dot_product_attention(
                    q[:, :, :start], k[:, :, :start], v[:, :, :start], is_causal=True, scale=attn.scale, enable_gqa=gqa
                )
            )
    for i0 in range(start, Q, ctx.chunk):
        rows = q_index[i0 : i0 + ctx.chunk]
        first, last = int(rows[0]), int(rows[-1])
        n_keys = min(len(k_index), last + 1) if k_contiguous else len(k_index)
        k_sel = slice(0, n_keys) if k_contiguous else k_index
        qc, kc, vc = q[:, :, i0 : i0 + ctx.chunk], k[:, :, :n_keys], v[:, :, :n_keys]
        # rows first..last against keys 0..last, unpadded: plain causal is the lower-right triangle
        triangle = padding is None and n_keys == last + 1 and last + 1 - first == len(rows) and k_contiguous
        untouched = ("chunk untouched", key, ctx.rows_version, first, n_keys)  # memo for the next layers
        if triangle and ctx.masks.get(untouched):
            out.append(_causal(qc, kc, vc, attn.scale, gqa))
            continue
        touched = []
        for e in edits:
            b = blocked_rows(e, layer, slice(first, last + 1), ctx.n_pos, q.device)
            if last + 1 - first != len(rows):  # rows left the sequence (vlens.interventions.efficient)
                b = b.index_select(1, rows - first)
            touched.append(index_rows(b, 2, k_sel))
        if triangle and not any(bool(b.any()) for b in touched):  # no edit in these rows: no mask at all
            ctx.masks[untouched] = True
            out.append(_causal(qc, kc, vc, attn.scale, gqa))
            continue
        base = (k_index[:n_keys][None, :] <= rows[:, None])[None]  # causal by sequence index
        if padding is not None:
            base = base & index_rows(padding, 1, k_sel)[:, None, :]
        allowed, _, bias, post = combine_edits(base, edits, touched, H)
        if post is not None:  # check_chunked refuses these before the forward
            raise InterventionError("a scaling with renormalise=False cannot run on the 'chunked' path")
        mask = allowed if not bias else torch.where(allowed, sum(bias.values()), float("-inf")).to(q.dtype)
        z = F.scaled_dot_product_attention(qc, kc, vc, attn_mask=mask, scale=attn.scale, enable_gqa=gqa)
        empty = ~allowed.any(-1)
        if bool(empty.any()):  # one outcome for rows with no key: 0
            z = z.masked_fill(empty[..., None], 0.0)
        out.append(z)
    return torch.cat(out, dim=2)


def _causal(q: QKV, k: QKV, v: QKV, scale: float, gqa: bool) -> QKV:
    """The last q rows of causal attention over k keys (the lower-right triangle): the fused
    kernels without a materialised mask."""
    from torch.nn.attention.bias import causal_lower_right

    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=causal_lower_right(q.shape[2], k.shape[2]), scale=scale, enable_gqa=gqa
    )


def _untouched_prefix(ctx: AttentionContext, layer: int, key: tuple, Q: int, device: torch.device) -> int:
    """The rows 0..p−1 in which no intervention of `layer` removes or scales an edge, remembered
    for the layers with the same interventions (`key`): from an intervention's
    `first_touched_row(layer, n_pos)` when it can tell from the layout's vectors (LV-K), else read
    chunk by chunk (p a multiple of the chunk)."""
    memo = ("untouched prefix", key, Q)
    if memo not in ctx.masks:
        prefix = Q
        for e in ctx.interventions.at(layer):
            first = getattr(e, "first_touched_row", lambda layer, n: None)(layer, ctx.n_pos)
            if first is None:
                first = Q
                for i0 in range(0, min(Q, prefix), ctx.chunk):
                    if bool(blocked_rows(e, layer, slice(i0, min(Q, i0 + ctx.chunk)), ctx.n_pos, device).any()):
                        first = i0
                        break
            prefix = min(prefix, first)
        ctx.masks[memo] = prefix
    return ctx.masks[memo]
