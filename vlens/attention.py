"""Rotary grouped-query attention with a table of backends and one mask per forward.

softmax(QKᵀ/√d + M)V, where M is causal, hides padded keys, and removes the edges of this call's
interventions (vlens.interventions). How it is computed is a backend, picked per layer:

| backend     | when                                                              | materialises   |
|-------------|-------------------------------------------------------------------|----------------|
| `explicit`  | something hooks `attn_scores`/`pattern`, or forced                | scores, pattern [batch, head, q, k] |
| `fast`      | SDPA: the causal kernel when nothing is removed; else a bool mask, with rows before the first edited row run causally | a bool mask only |
| `flex`      | FlexAttention with a block mask (auto on CUDA when edges are removed) | a block mask |
| `per_frame` | temporal pruning (vlens.efficient): video rows attend within their frame, frames batched | per-frame masks |

Every backend computes the same function (tested to 1e-4 in fp32 against each other and HF). The
mask of a layer is built once per forward and shared by every layer with the same interventions.

Rows that may attend to nothing (a padded query row: HF's SDPA masks pad keys, so a left-pad row
sees no key) have one defined outcome on every backend and dtype: their attention output is 0,
as torch's SDPA gives for a fully masked row. No NaN.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

from vlens.config import HookedVideoLLMConfig
from vlens.interventions import Interventions, index_rows
from vlens.kv_cache import KVCache
from vlens.norm import RMSNorm

AttentionPath = Literal["auto", "explicit", "fast", "flex"]

# When FlexAttention runs compiled: "cuda" (default: the fused block-sparse kernel), "always" (also
# on the CPU through inductor's C++ backend: slow to compile, used by the slow tests), "never".
FLEX_COMPILE: Literal["cuda", "always", "never"] = "cuda"
_compiled_flex = None


def apply_rotary(
    x: Float[Tensor, "batch pos head d_head"], cos: Float[Tensor, "batch pos d_rot"], sin: Float[Tensor, "batch pos d_rot"],
    *, adjacent_pairs: bool = False,
) -> Float[Tensor, "batch pos head d_head"]:
    """HF's rotary embedding of the first d_rot = cos.shape[-1] dims of every head (all of them
    unless the rotary is partial, GLM-4.1V); the other dims pass unchanged.

    `adjacent_pairs=False`: rotate_half (Qwen2, Llama), dim i turns with dim i + d_rot/2.
    `adjacent_pairs=True`: dims 2i and 2i+1 turn together (GLM's rotate_half_llm; the tables
    then hold each frequency twice in a row)."""
    d_rot = cos.shape[-1]
    if d_rot < x.shape[-1]:  # partial rotary: as HF, rotate the head's first d_rot dims, keep the rest
        rot = apply_rotary(x[..., :d_rot], cos, sin, adjacent_pairs=adjacent_pairs)
        return torch.cat((rot, x[..., d_rot:]), dim=-1)
    if adjacent_pairs:
        pairs = einops.rearrange(x, "... (half two) -> ... half two", two=2)
        rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
    else:
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos[:, :, None, :] + rotated * sin[:, :, None, :]


# ------------------------------------------------------------------------------------------------
# One forward's state and the layer masks built from it
# ------------------------------------------------------------------------------------------------
@dataclass
class LayerMask:
    """What a layer's attention may read, for this call's rows and keys.

    `allowed` is None for plain causal attention over a contiguous unpadded sequence (the causal
    kernel needs no mask). `base` is causal + padding; `blocked` the interventions' removed edges
    by hook site (the explicit path applies them where a hook would see them)."""

    allowed: Bool[Tensor, "batch q k"] | None
    base: Bool[Tensor, "batch q k"] | None = None
    blocked: dict[str, Bool[Tensor, "batch q k"]] = field(default_factory=dict)
    first_row: int = 0  # rows before it are plain causal over a prefix (the SDPA split)
    empty: Bool[Tensor, "batch q"] | None = None  # rows with no allowed key: output 0
    frame_blocks: object | None = None  # temporal pruning's per-frame blocks (vlens.efficient)
    block_mask: object | None = None  # FlexAttention's, made once from this mask (see _flex)
    dense: Bool[Tensor, "batch q k"] | None = None  # `base`, materialised once for plain causal rows

    @property
    def edited(self) -> bool:
        return bool(self.blocked)

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
    the sequence, see vlens.efficient); `key_padding` marks real keys over all `n_pos` sequence
    positions. `masks` memoises layer masks for the length of one forward."""

    n_pos: int
    q_start: int
    q_index: Int[Tensor, "q"]
    key_padding: Bool[Tensor, "batch n_pos"] | None = None
    interventions: Interventions = field(default_factory=Interventions)
    path: AttentionPath = "auto"
    kv_cache: KVCache | None = None
    rows_version: int = 0  # bumped when rows leave the sequence
    masks: dict = field(default_factory=dict)
    paths_taken: set = field(default_factory=set)

    def drop_rows(self, q_index: Int[Tensor, "q"]) -> None:
        self.q_index = q_index
        self.rows_version += 1

    def layer_mask(self, layer: int, k_index: Int[Tensor, "k"], k_contiguous: bool, device: torch.device) -> LayerMask:
        """The mask of `layer` for the current rows and keys `k_index` (`k_contiguous`: they are
        0..K−1): the one place where causality, padding and the union of a layer's
        interventions are combined."""
        edits = self.interventions.at(layer)
        Q, K = len(self.q_index), len(k_index)
        q0 = self.q_start
        q_contiguous = self.rows_version == 0  # rows are q_start..q_start+Q until some leave
        key = (tuple(e.mask_key(layer) for e in edits), Q, K, self.rows_version, k_contiguous or id(k_index), str(device))
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
            blocked: dict[str, Tensor] = {}
            for e in edits:
                b = index_rows(index_rows(e.blocked(layer, self.n_pos, device), 1, q_sel), 2, k_sel)
                blocked[e.site] = b if e.site not in blocked else blocked[e.site] | b
            allowed = base
            for b in blocked.values():
                allowed = allowed & ~b
            first = 0
            if blocked and self.key_padding is None and q0 == 0 and Q == K and q_contiguous:
                rows = torch.stack(list(blocked.values())).any(dim=(0, 1, 3)).nonzero()
                first = int(rows[0]) if len(rows) else Q
            empty = ~allowed.any(-1)
            frame_blocks = edits[0].per_frame_blocks(device) if per_frame else None
            mask = LayerMask(allowed, base, blocked, first, empty if bool(empty.any()) else None, frame_blocks)
        self.masks[key] = mask
        return mask


# ------------------------------------------------------------------------------------------------
# Backends: fn(q, k, v, mask, attn) -> z [batch, head, q, d_head]
# ------------------------------------------------------------------------------------------------
QKV = Float[Tensor, "batch head pos d_head"]


def _sdpa(q: QKV, k: QKV, v: QKV, mask: LayerMask, attn: Attention) -> QKV:
    """torch's SDPA: the causal kernel where possible; a boolean mask only for edited rows."""
    gqa, scale = attn.cfg.n_groups > 1, attn.scale
    Q, K = q.shape[2], k.shape[2]
    if mask.allowed is None:
        if Q == 1:  # one new token against the cache sees every key
            return F.scaled_dot_product_attention(q, k, v, scale=scale, enable_gqa=gqa)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=gqa)
    first = mask.first_row
    if mask.edited and first == Q:  # the interventions remove no edge in these rows
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=gqa)
    if first == 0:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask.allowed[:, None], scale=scale, enable_gqa=gqa)
    # Rows before the first edited row are plain causal attention over the prefix: run them with
    # the causal kernel and only the rest with a mask (for LV-K: the question rows).
    head = F.scaled_dot_product_attention(
        q[:, :, :first], k[:, :, :first], v[:, :, :first], is_causal=True, scale=scale, enable_gqa=gqa
    )
    tail = F.scaled_dot_product_attention(
        q[:, :, first:], k, v, attn_mask=mask.allowed[:, None, first:], scale=scale, enable_gqa=gqa
    )
    return torch.cat([head, tail], dim=2)


def _flex_attention(q: QKV, k: QKV, v: QKV, block_mask, scale: float, enable_gqa: bool) -> QKV:
    """FlexAttention, compiled on CUDA (the fused block-sparse kernel). Elsewhere it runs torch's
    unfused reference implementation: exact, but only a correctness path (forced with
    `model.attention_path_as("flex")`; tests use it on CPU). See FLEX_COMPILE."""
    global _compiled_flex
    from torch.nn.attention.flex_attention import flex_attention

    if FLEX_COMPILE == "always" or (FLEX_COMPILE == "cuda" and q.is_cuda):
        if _compiled_flex is None:
            _compiled_flex = torch.compile(flex_attention, dynamic=False)
        return _compiled_flex(q, k, v, block_mask=block_mask, scale=scale, enable_gqa=enable_gqa)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
        return flex_attention(q, k, v, block_mask=block_mask, scale=scale, enable_gqa=enable_gqa)


def _flex(q: QKV, k: QKV, v: QKV, mask: LayerMask, attn: Attention) -> QKV:
    """FlexAttention with a block mask made from the layer mask (memoised on it, so layers that
    share a mask share one block mask): key blocks a knockout removes whole are skipped."""
    from torch.nn.attention.flex_attention import create_block_mask

    B, _, Q, _ = q.shape
    K = k.shape[2]
    if mask.block_mask is None:
        allowed = mask.causal_or_base(Q, K, q.device) if mask.allowed is None else mask.allowed
        allowed = allowed.expand(B, Q, K).contiguous()

        def mask_mod(b, h, q_idx, kv_idx):
            return allowed[b, q_idx, kv_idx]

        mask.block_mask = create_block_mask(mask_mod, B, None, Q, K, device=q.device)
    return _flex_attention(q, k, v, mask.block_mask, attn.scale, attn.cfg.n_groups > 1)


def _per_frame(q: QKV, k: QKV, v: QKV, mask: LayerMask, attn: Attention) -> QKV:
    """Temporal pruning (batch of one): each frame's video rows attend to the non-video positions
    before the frame and to their own frame, causally — frames batched as one SDPA call, never a
    masked N×N; the other rows attend causally over everything. Equals VT-K's mask."""
    q_pos, key_pos, fmask, other = mask.frame_blocks
    H, d, Hkv = q.shape[1], q.shape[3], k.shape[1]
    gqa, scale = attn.cfg.n_groups > 1, attn.scale
    n_frames, n = q_pos.shape
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


def _explicit(q: QKV, k: QKV, v: QKV, mask: LayerMask, attn: Attention) -> QKV:
    """softmax(QKᵀ/√d + M)V with the N×N scores and pattern through their hook points.

    Edits on `attn_scores` are written (−∞) before `hook_attn_scores`; edits on `pattern` after
    it, as −∞ on a copy of the hooked scores, so `hook_pattern` sees the renormalised pattern and
    the renormalisation happens inside the fp32 softmax: exact in every dtype, never 0/0."""
    B, H, Q, d = q.shape
    K, G = k.shape[2], attn.cfg.n_groups
    qg = einops.rearrange(q, "batch (kv_head group) q d -> batch kv_head group q d", group=G)
    scores = torch.matmul(qg, k[:, :, None].transpose(-1, -2)) * attn.scale
    scores = einops.rearrange(scores, "batch kv_head group q k -> batch (kv_head group) q k")
    base = mask.causal_or_base(Q, K, q.device)
    scores = scores.masked_fill(~base[:, None], float("-inf"))
    if "attn_scores" in mask.blocked:
        scores = scores.masked_fill(mask.blocked["attn_scores"][:, None], float("-inf"))
    scores = attn.hook_attn_scores(scores)
    for_softmax = scores
    if "pattern" in mask.blocked:
        for_softmax = scores.masked_fill(mask.blocked["pattern"][:, None], float("-inf"))
    pattern = torch.softmax(for_softmax, dim=-1, dtype=torch.float32)
    if mask.empty is not None:  # a row with no key: its weights are 0, not 0/0
        pattern = pattern.masked_fill(mask.empty[:, None, :, None], 0.0)
    pattern = attn.hook_pattern(pattern.to(q.dtype))
    pg = einops.rearrange(pattern, "batch (kv_head group) q k -> batch kv_head group q k", group=G)
    z = torch.matmul(pg, v[:, :, None])
    return einops.rearrange(z, "batch kv_head group q d -> batch (kv_head group) q d")


Backend = Callable[[Tensor, Tensor, Tensor, LayerMask, "Attention"], Tensor]
BACKENDS: dict[str, Backend] = {"explicit": _explicit, "fast": _sdpa, "flex": _flex, "per_frame": _per_frame}


# ------------------------------------------------------------------------------------------------
# The module
# ------------------------------------------------------------------------------------------------
def meta_linear(d_in: int, d_out: int, bias: bool) -> nn.Linear:
    # Parameters are replaced by the checkpoint's own tensors at load time (storage shared with
    # HF), so nothing is allocated here.
    return nn.Linear(d_in, d_out, bias=bias, device="meta")


class Attention(nn.Module):
    """Rotary grouped-query attention with optional q/k/v biases (Qwen2, Llama).

    Weights stay in the checkpoint's layout (`q_proj.weight` is [head*d_head, d_model]) and are
    shared with the HF model; TransformerLens' W_Q … W_O are views over them."""

    def __init__(self, cfg: HookedVideoLLMConfig, layer: int):
        super().__init__()
        self.cfg = cfg
        self.layer = layer
        H, K, d, D = cfg.n_heads, cfg.n_key_value_heads, cfg.d_head, cfg.d_model
        self.q_proj = meta_linear(D, H * d, cfg.qkv_bias)
        self.k_proj = meta_linear(D, K * d, cfg.qkv_bias)
        self.v_proj = meta_linear(D, K * d, cfg.qkv_bias)
        self.o_proj = meta_linear(H * d, D, False)
        self.scale = d**-0.5
        if cfg.qk_norm:  # Qwen3: per-head RMSNorm on q and k (after hook_q/hook_k, before RoPE)
            self.q_norm = RMSNorm(cfg, d)
            self.k_norm = RMSNorm(cfg, d)
        self.hook_q = HookPoint()  # [batch, pos, head, d_head]
        self.hook_k = HookPoint()  # [batch, pos, kv_head, d_head]
        self.hook_v = HookPoint()  # [batch, pos, kv_head, d_head]
        self.hook_rot_q = HookPoint()  # [batch, pos, head, d_head]
        self.hook_rot_k = HookPoint()  # [batch, pos, kv_head, d_head]
        self.hook_attn_scores = HookPoint()  # [batch, head, query_pos, key_pos] (explicit path)
        self.hook_pattern = HookPoint()  # [batch, head, query_pos, key_pos] (explicit path)
        self.hook_z = HookPoint()  # [batch, pos, head, d_head]

    # TransformerLens' weight views (read by ActivationCache and by users) ------------------------
    def _heads_in(self, w: Tensor, n: int) -> Tensor:
        return einops.rearrange(w, "(head d_head) d_model -> head d_model d_head", head=n)

    @property
    def W_Q(self) -> Float[Tensor, "head d_model d_head"]:
        return self._heads_in(self.q_proj.weight, self.cfg.n_heads)

    @property
    def W_K(self) -> Float[Tensor, "head d_model d_head"]:
        return self._heads_in(self.k_proj.weight, self.cfg.n_key_value_heads).repeat_interleave(self.cfg.n_groups, dim=0)

    @property
    def W_V(self) -> Float[Tensor, "head d_model d_head"]:
        return self._heads_in(self.v_proj.weight, self.cfg.n_key_value_heads).repeat_interleave(self.cfg.n_groups, dim=0)

    @property
    def W_O(self) -> Float[Tensor, "head d_head d_model"]:
        return einops.rearrange(self.o_proj.weight, "d_model (head d_head) -> head d_head d_model", head=self.cfg.n_heads)

    def _bias(self, lin: nn.Linear, n: int) -> Tensor:
        if lin.bias is None:
            return torch.zeros(n, self.cfg.d_head, device=lin.weight.device, dtype=lin.weight.dtype)
        return einops.rearrange(lin.bias, "(head d_head) -> head d_head", head=n)

    @property
    def b_Q(self) -> Float[Tensor, "head d_head"]:
        return self._bias(self.q_proj, self.cfg.n_heads)

    @property
    def b_K(self) -> Float[Tensor, "head d_head"]:
        return self._bias(self.k_proj, self.cfg.n_key_value_heads).repeat_interleave(self.cfg.n_groups, 0)

    @property
    def b_V(self) -> Float[Tensor, "head d_head"]:
        return self._bias(self.v_proj, self.cfg.n_key_value_heads).repeat_interleave(self.cfg.n_groups, 0)

    @property
    def b_O(self) -> Float[Tensor, "d_model"]:
        return torch.zeros(self.cfg.d_model, device=self.o_proj.weight.device, dtype=self.o_proj.weight.dtype)

    # forward ----------------------------------------------------------------------------------
    def backend(self, ctx: AttentionContext, mask: LayerMask, q: Tensor) -> str:
        """Which entry of BACKENDS runs this layer (see the module docstring)."""
        if ctx.path == "explicit" or (
            ctx.path == "auto" and (self.hook_attn_scores._forward_hooks or self.hook_pattern._forward_hooks)
        ):
            return "explicit"  # the N×N tensors are asked for
        if ctx.path == "flex":
            return "flex"
        if mask.frame_blocks is not None and q.shape[0] == 1 and q.shape[2] == len(ctx.q_index) == ctx.n_pos:
            return "per_frame"
        if ctx.path == "auto" and q.is_cuda and mask.edited and q.shape[2] > 1:
            # FlexAttention pays off where its fused kernel exists and there is an edit to exploit
            return "flex"
        return "fast"

    def forward(
        self,
        x: Float[Tensor, "batch pos d_model"],
        rope: tuple[Float[Tensor, "batch pos d_rot"], Float[Tensor, "batch pos d_rot"]],
        ctx: AttentionContext,
    ) -> Float[Tensor, "batch pos d_model"]:
        H, Hkv = self.cfg.n_heads, self.cfg.n_key_value_heads
        q = self.hook_q(einops.rearrange(self.q_proj(x), "batch pos (head d_head) -> batch pos head d_head", head=H))
        k = self.hook_k(einops.rearrange(self.k_proj(x), "batch pos (head d_head) -> batch pos head d_head", head=Hkv))
        v = self.hook_v(einops.rearrange(self.v_proj(x), "batch pos (head d_head) -> batch pos head d_head", head=Hkv))
        if self.cfg.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        cos, sin = rope
        assert cos.shape[-1] == self.cfg.rotary_dim, "the family's rotary module must be cfg.rotary_dim wide"
        pairs = self.cfg.rotary_adjacent_pairs
        q = self.hook_rot_q(apply_rotary(q, cos, sin, adjacent_pairs=pairs))
        k = self.hook_rot_k(apply_rotary(k, cos, sin, adjacent_pairs=pairs))
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [batch, head, pos, d_head] for the products
        k_index, k_contiguous = ctx.q_index.to(q.device), ctx.rows_version == 0 and ctx.q_start == 0
        if ctx.kv_cache is not None:
            k, v, k_index = ctx.kv_cache.update(self.layer, k, v, k_index, contiguous=ctx.rows_version == 0)
            k_contiguous = ctx.kv_cache.is_contiguous(self.layer)
        mask = ctx.layer_mask(self.layer, k_index, k_contiguous, q.device)
        backend = self.backend(ctx, mask, q)
        ctx.paths_taken.add(backend)
        z = BACKENDS[backend](q, k, v, mask, self)
        if mask.empty is not None and backend != "explicit":  # one outcome for rows with no key
            z = z.masked_fill(mask.empty[:, None, :, None], 0.0)
        z = self.hook_z(z.transpose(1, 2))
        return self.o_proj(einops.rearrange(z, "batch pos head d_head -> batch pos (head d_head)"))
