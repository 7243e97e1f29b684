"""Rotary grouped-query attention with a table of backends and one mask per forward.

softmax(QKᵀ/√d + M)V, where M is causal, hides padded keys, and removes the edges of this call's
interventions (vlens.components.per_call). How it is computed is a backend, picked per layer:

| backend     | when                                                              | materialises   |
|-------------|-------------------------------------------------------------------|----------------|
| `explicit`  | something hooks `attn_scores`/`pattern`, a scaling without renormalising, or forced | scores, pattern [batch, head, q, k] |
| `fast`      | SDPA: the causal kernel when nothing is removed; else a mask (float with log α for a scaling), rows before the first edit causal | a mask only |
| `flex`      | FlexAttention with a block mask (auto on CUDA when edges are removed) | a block mask |
| `per_frame` | temporal pruning (vlens.interventions.efficient): video rows attend within their frame, frames batched | per-frame masks |
| `chunked`   | forced (`attention_path_as("chunked", chunk=…)`): long videos (attention_chunked) | a chunk's mask [batch, head, chunk, k] |

Every backend computes the same function (tested to 1e-4 in fp32 against each other and HF). The
mask of a layer is built once per forward and shared by every layer with the same interventions.

Rows that may attend to nothing (a padded query row: HF's SDPA masks pad keys, so a left-pad row
sees no key) have one defined outcome on every backend and dtype: their attention output is 0,
as torch's SDPA gives for a fully masked row. No NaN.
"""

from __future__ import annotations

import einops
import torch
from jaxtyping import Float
from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

from vlens.components.attention_backends import BACKENDS
from vlens.components.attention_chunked import chunked_attention
from vlens.components.attention_mask import AttentionContext, LayerMask
from vlens.components.norm import RMSNorm
from vlens.components.per_call import InterventionError
from vlens.config import HookedVideoLLMConfig


def apply_rotary(
    x: Float[Tensor, "batch pos head d_head"],
    cos: Float[Tensor, "batch pos d_rot"],
    sin: Float[Tensor, "batch pos d_rot"],
    *,
    adjacent_pairs: bool = False,
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
# The module
# ------------------------------------------------------------------------------------------------
def meta_linear(d_in: int, d_out: int, bias: bool) -> nn.Linear:
    """An `nn.Linear(d_in, d_out)` on the meta device: its parameters are replaced by the
    checkpoint's own tensors at load time (storage shared with HF), so nothing is allocated here."""
    return nn.Linear(d_in, d_out, bias=bias, device="meta")


class Attention(nn.Module):
    """Rotary grouped-query attention with optional q/k/v biases (Qwen2, Llama).

    Weights stay in the checkpoint's layout (`q_proj.weight` is [head*d_head, d_model]) and are
    shared with the HF model; TransformerLens' W_Q … W_O are views over them."""

    def __init__(self, cfg: HookedVideoLLMConfig, layer: int):
        super().__init__()
        self.cfg = cfg
        self.layer = layer
        H, K, d, D = cfg.n_heads, cfg.n_kv_heads, cfg.d_head, cfg.d_model
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
        """Query weights [head, d_model, d_head]: a view of `q_proj.weight` (TransformerLens' layout)."""
        return self._heads_in(self.q_proj.weight, self.cfg.n_heads)

    @property
    def W_K(self) -> Float[Tensor, "head d_model d_head"]:
        """Key weights [head, d_model, d_head], each key/value head repeated over its query group (as TransformerLens reads grouped-query attention)."""
        return self._heads_in(self.k_proj.weight, self.cfg.n_kv_heads).repeat_interleave(self.cfg.n_groups, dim=0)

    @property
    def W_V(self) -> Float[Tensor, "head d_model d_head"]:
        """Value weights [head, d_model, d_head], each key/value head repeated over its query group."""
        return self._heads_in(self.v_proj.weight, self.cfg.n_kv_heads).repeat_interleave(self.cfg.n_groups, dim=0)

    @property
    def W_O(self) -> Float[Tensor, "head d_head d_model"]:
        """Output weights [head, d_head, d_model]: a view of `o_proj.weight`."""
        return einops.rearrange(
            self.o_proj.weight, "d_model (head d_head) -> head d_head d_model", head=self.cfg.n_heads
        )

    def _bias(self, lin: nn.Linear, n: int) -> Tensor:
        if lin.bias is None:
            return torch.zeros(n, self.cfg.d_head, device=lin.weight.device, dtype=lin.weight.dtype)
        return einops.rearrange(lin.bias, "(head d_head) -> head d_head", head=n)

    @property
    def b_Q(self) -> Float[Tensor, "head d_head"]:
        """Query bias [head, d_head] (zeros when the family has no q bias)."""
        return self._bias(self.q_proj, self.cfg.n_heads)

    @property
    def b_K(self) -> Float[Tensor, "head d_head"]:
        """Key bias [head, d_head], repeated over each query group (zeros without a k bias)."""
        return self._bias(self.k_proj, self.cfg.n_kv_heads).repeat_interleave(self.cfg.n_groups, 0)

    @property
    def b_V(self) -> Float[Tensor, "head d_head"]:
        """Value bias [head, d_head], repeated over each query group (zeros without a v bias)."""
        return self._bias(self.v_proj, self.cfg.n_kv_heads).repeat_interleave(self.cfg.n_groups, 0)

    @property
    def b_O(self) -> Float[Tensor, " d_model"]:
        """Output bias [d_model]: zeros (the supported families have none)."""
        return torch.zeros(self.cfg.d_model, device=self.o_proj.weight.device, dtype=self.o_proj.weight.dtype)

    # forward ----------------------------------------------------------------------------------
    def backend(self, ctx: AttentionContext, mask: LayerMask, q: Tensor) -> str:
        """Which entry of BACKENDS runs this layer (see the module docstring).

        Raises:
            InterventionError: a scaling without renormalising (it multiplies the softmax, which
                only the explicit path has) on a forced fused path."""
        if mask.post_scale is not None:
            if ctx.path in ("fast", "flex"):
                raise InterventionError(
                    f"layer {self.layer}: a scaling with renormalise=False multiplies the attention pattern after the "
                    f"softmax, which the {ctx.path!r} path never materialises; run it on the 'explicit' or 'auto' path "
                    "(model.attention_path_as('auto')), or use renormalise=True (log α on the scores: every path)"
                )
            return "explicit"
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
        """One attention layer over this call's rows.

        Args:
            x: the normalised residual stream [batch, pos, d_model].
            rope: (cos, sin) tables [batch, pos, d_rot] for these positions.
            ctx: the call's attention context: positions, KV cache and the per-call interventions
                whose mask this layer reads.

        Returns:
            The attention output [batch, pos, d_model] (before it is added to the residual stream)."""
        H, Hkv = self.cfg.n_heads, self.cfg.n_kv_heads
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
        if ctx.path == "chunked":  # no [pos, pos] mask: each query chunk's is built on the fly
            ctx.paths_taken.add("chunked")
            z = chunked_attention(q, k, v, ctx, self.layer, k_index, k_contiguous, self)
        else:
            mask = ctx.layer_mask(self.layer, k_index, k_contiguous, q.device, n_heads=self.cfg.n_heads)
            backend = self.backend(ctx, mask, q)
            ctx.paths_taken.add(backend)
            z = BACKENDS[backend](q, k, v, mask, self)
            if mask.empty is not None and backend != "explicit":  # one outcome for rows with no key
                z = z.masked_fill(mask.empty[..., None], 0.0)
        z = self.hook_z(z.transpose(1, 2))
        return self.o_proj(einops.rearrange(z, "batch pos head d_head -> batch pos (head d_head)"))
