"""How softmax(QKᵀ/√d + M)V is computed: the table of backends `Attention` picks from per layer
(see vlens.components.attention for when each runs). Every backend computes the same function.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Literal, Protocol, cast

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from vlens.components.attention_mask import LayerMask
from vlens.config import HookedVideoLLMConfig

# When FlexAttention runs compiled: "cuda" (default: the fused block-sparse kernel), "always" (also
# on the CPU through inductor's C++ backend: slow to compile, used by the slow tests), "never".
FLEX_COMPILE: Literal["cuda", "always", "never"] = "cuda"


_compiled_flex = None


# ------------------------------------------------------------------------------------------------
# Backends: fn(q, k, v, mask, attn) -> z [batch, head, q, d_head]
# ------------------------------------------------------------------------------------------------
QKV = Float[Tensor, "batch head pos d_head"]


class HookedAttention(Protocol):
    """What a backend reads from the `Attention` module that calls it (vlens.components.attention)."""

    cfg: HookedVideoLLMConfig
    scale: float
    hook_attn_scores: Callable[[Tensor], Tensor]  # [batch, head, q, k]
    hook_pattern: Callable[[Tensor], Tensor]  # [batch, head, q, k]


def _sdpa(q: QKV, k: QKV, v: QKV, mask: LayerMask, attn: HookedAttention) -> QKV:
    """torch's SDPA: the causal kernel where possible; a boolean mask only for edited rows (a float
    one, −∞ and log α, when a renormalised scaling is among the edits)."""
    gqa, scale = attn.cfg.n_groups > 1, attn.scale
    Q = q.shape[2]
    if mask.allowed is None:
        if Q == 1:  # one new token against the cache sees every key
            return F.scaled_dot_product_attention(q, k, v, scale=scale, enable_gqa=gqa)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=gqa)
    first = mask.first_row
    if mask.edited and first == Q:  # the interventions remove no edge in these rows
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=gqa)
    attn_mask = mask.additive(q.dtype)  # bool, or float with the renormalised scalings' log α
    if first == 0:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale, enable_gqa=gqa)
    # Rows before the first edited row are plain causal attention over the prefix: run them with
    # the causal kernel and only the rest with a mask (for LV-K: the question rows).
    head = F.scaled_dot_product_attention(
        q[:, :, :first], k[:, :, :first], v[:, :, :first], is_causal=True, scale=scale, enable_gqa=gqa
    )
    tail = F.scaled_dot_product_attention(
        q[:, :, first:], k, v, attn_mask=attn_mask[:, :, first:], scale=scale, enable_gqa=gqa
    )
    return torch.cat([head, tail], dim=2)


def _flex_attention(q: QKV, k: QKV, v: QKV, block_mask, scale: float, enable_gqa: bool, score_mod=None) -> QKV:
    """FlexAttention, compiled on CUDA (the fused block-sparse kernel). Elsewhere it runs torch's
    unfused reference implementation: exact, but only a correctness path (forced with
    `model.attention_path_as("flex")`; tests use it on CPU). See FLEX_COMPILE."""
    global _compiled_flex
    from torch.nn.attention.flex_attention import flex_attention

    if FLEX_COMPILE == "always" or (FLEX_COMPILE == "cuda" and q.is_cuda):
        if _compiled_flex is None:
            _compiled_flex = torch.compile(flex_attention, dynamic=False)
        return _compiled_flex(q, k, v, score_mod=score_mod, block_mask=block_mask, scale=scale, enable_gqa=enable_gqa)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
        return flex_attention(q, k, v, score_mod=score_mod, block_mask=block_mask, scale=scale, enable_gqa=enable_gqa)


def _flex(q: QKV, k: QKV, v: QKV, mask: LayerMask, attn: HookedAttention) -> QKV:
    """FlexAttention with a block mask made from the layer mask (memoised on it, so layers that
    share a mask share one block mask): key blocks a knockout removes whole are skipped. A
    renormalised scaling's log α is a score_mod (added to the scaled scores)."""
    from torch.nn.attention.flex_attention import create_block_mask

    B, _, Q, _ = q.shape
    K = k.shape[2]
    if mask.block_mask is None:
        allowed = mask.causal_or_base(Q, K, q.device)[:, None] if mask.allowed is None else mask.allowed
        n_head_masks = allowed.shape[1]  # 1, or the query heads (an intervention on chosen heads)
        allowed = allowed.expand(B, n_head_masks, Q, K).contiguous()
        if n_head_masks == 1:
            shared = allowed[:, 0]

            def mask_mod(b, h, q_idx, kv_idx):
                return shared[b, q_idx, kv_idx]

        else:

            def mask_mod(b, h, q_idx, kv_idx):
                return allowed[b, h, q_idx, kv_idx]

        heads = None if n_head_masks == 1 else n_head_masks
        mask.block_mask = create_block_mask(mask_mod, B, heads, Q, K, device=q.device)
    score_mod = None
    if mask.bias:
        bias = cast(Tensor, sum(mask.bias.values())).to(q.dtype)  # a non-empty sum of tensors
        bias = bias.expand(B, bias.shape[1], Q, K).contiguous()
        per_head = bias.shape[1] > 1

        def renormalised(score, b, h, q_idx, kv_idx):
            return score + bias[b, h if per_head else 0, q_idx, kv_idx]

        score_mod = renormalised

    return _flex_attention(q, k, v, mask.block_mask, attn.scale, attn.cfg.n_groups > 1, score_mod)


def _per_frame(q: QKV, k: QKV, v: QKV, mask: LayerMask, attn: HookedAttention) -> QKV:
    """Temporal pruning (batch of one): each frame's video rows attend to the non-video positions
    before the frame and to their own frame, causally — frames batched as one SDPA call, never a
    masked N×N; the other rows attend causally over everything. Equals VT-K's mask."""
    if mask.frame_blocks is None:
        raise ValueError("the per-frame path needs the mask's frame_blocks (temporal pruning's, one row)")
    q_pos, key_pos, fmask, other = mask.frame_blocks
    gqa, scale = attn.cfg.n_groups > 1, attn.scale
    n_frames, _n = q_pos.shape
    z = torch.empty_like(q)
    qf = einops.rearrange(q[0][:, q_pos.flatten()], "head (frame q) d -> frame head q d", frame=n_frames)
    kf = einops.rearrange(k[0][:, key_pos.flatten()], "head (frame k) d -> frame head k d", frame=n_frames)
    vf = einops.rearrange(v[0][:, key_pos.flatten()], "head (frame k) d -> frame head k d", frame=n_frames)
    zf = F.scaled_dot_product_attention(qf, kf, vf, attn_mask=fmask[:, None], scale=scale, enable_gqa=gqa)
    z[0][:, q_pos.flatten()] = einops.rearrange(zf, "frame head q d -> head (frame q) d")
    allowed = torch.arange(k.shape[2], device=q.device)[None, :] <= other[:, None]
    z[0][:, other] = F.scaled_dot_product_attention(
        q[0][:, other][None], k, v, attn_mask=allowed[None, None], scale=scale, enable_gqa=gqa
    )[0]
    return z


def _explicit(q: QKV, k: QKV, v: QKV, mask: LayerMask, attn: HookedAttention) -> QKV:
    """softmax(QKᵀ/√d + M)V with the N×N scores and pattern through their hook points.

    Edits on `attn_scores` are written (−∞) before `hook_attn_scores`; edits on `pattern` after
    it, as −∞ on a copy of the hooked scores, so `hook_pattern` sees the renormalised pattern and
    the renormalisation happens inside the fp32 softmax: exact in every dtype, never 0/0. Scalings
    act at the same sites: log α added to the scores (renormalised), or the fp32 softmax
    multiplied by α (not renormalised; the one thing only this path can do)."""
    _B, _H, Q, _d = q.shape
    K, G = k.shape[2], attn.cfg.n_groups
    qg = einops.rearrange(q, "batch (kv_head group) q d -> batch kv_head group q d", group=G)
    scores = torch.matmul(qg, k[:, :, None].transpose(-1, -2)) * attn.scale
    scores = einops.rearrange(scores, "batch kv_head group q k -> batch (kv_head group) q k")
    base = mask.causal_or_base(Q, K, q.device)
    scores = scores.masked_fill(~base[:, None], float("-inf"))
    if "attn_scores" in mask.blocked:
        scores = scores.masked_fill(mask.blocked["attn_scores"], float("-inf"))
    if "attn_scores" in mask.bias:
        scores = scores + mask.bias["attn_scores"].to(scores.dtype)
    scores = attn.hook_attn_scores(scores)
    for_softmax = scores
    if "pattern" in mask.blocked:
        for_softmax = scores.masked_fill(mask.blocked["pattern"], float("-inf"))
    if "pattern" in mask.bias:
        for_softmax = for_softmax.float() + mask.bias["pattern"]
    pattern = torch.softmax(for_softmax, dim=-1, dtype=torch.float32)
    if mask.empty is not None:  # a row with no key: its weights are 0, not 0/0
        pattern = pattern.masked_fill(mask.empty[..., None], 0.0)
    if mask.post_scale is not None:  # scalings without renormalising: α·w, rows no longer sum to 1
        pattern = pattern * mask.post_scale
    pattern = attn.hook_pattern(pattern.to(q.dtype))
    pg = einops.rearrange(pattern, "batch (kv_head group) q k -> batch kv_head group q k", group=G)
    z = torch.matmul(pg, v[:, :, None])
    return einops.rearrange(z, "batch kv_head group q d -> batch (kv_head group) q d")


Backend = Callable[[Tensor, Tensor, Tensor, LayerMask, HookedAttention], Tensor]


BACKENDS: dict[str, Backend] = {"explicit": _explicit, "fast": _sdpa, "flex": _flex, "per_frame": _per_frame}
