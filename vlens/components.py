"""The hooked decoder: RMSNorm, rotary grouped-query attention, SwiGLU MLP, blocks.

Modelled on TransformerLens 2.x `components/`: every intermediate a researcher may want is a
`HookPoint` with TransformerLens' name and shape. Two things differ, both for real checkpoints:

* Weights are kept in the checkpoint's own layout (`q_proj.weight` is [n_heads*d_head, d_model])
  and *shared* with the HF model, so a 7B model is not held twice; TransformerLens' views
  (`W_Q` [n_heads, d_model, d_head], `W_O`, `W_in`, ...) are properties over that storage.
* Attention has two paths. The explicit path computes softmax(QKᵀ/√d + M)V with `hook_attn_scores`
  and `hook_pattern`; it runs whenever a hook sits on either. Otherwise the fast path calls SDPA
  and never builds the N×N pattern; knockouts (vlens.knockout) are folded into its mask there.
  On CUDA the fast path hands knockout masks to FlexAttention instead ("flex"): its block mask
  skips the key blocks a knockout removes whole (video keys for question rows under LV-K, other
  frames under VT-K) rather than reading a dense N×N mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

from vlens.config import HookedVideoLLMConfig

if TYPE_CHECKING:  # pragma: no cover
    from vlens.knockout import KnockoutHook

AttentionPath = Literal["auto", "explicit", "fast", "flex"]

# When FlexAttention runs compiled: "cuda" (default: the fused block-sparse kernel), "always" (also
# on the CPU through inductor's C++ backend: slow to compile, used by the slow tests), "never".
FLEX_COMPILE: Literal["cuda", "always", "never"] = "cuda"
_compiled_flex = None


def _flex_attention(q: Tensor, k: Tensor, v: Tensor, block_mask, scale: float, enable_gqa: bool) -> Tensor:
    """FlexAttention, compiled on CUDA (the fused block-sparse kernel). Elsewhere it runs torch's
    unfused reference implementation: exact, but only a correctness path (forced with
    `model.attention_path_as("flex")`; tests use it on CPU). See FLEX_COMPILE."""
    global _compiled_flex
    from torch.nn.attention.flex_attention import flex_attention

    if FLEX_COMPILE == "always" or (FLEX_COMPILE == "cuda" and q.is_cuda):
        if _compiled_flex is None:
            _compiled_flex = torch.compile(flex_attention, dynamic=False)
        return _compiled_flex(q, k, v, block_mask=block_mask, scale=scale, enable_gqa=enable_gqa)
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
        return flex_attention(q, k, v, block_mask=block_mask, scale=scale, enable_gqa=enable_gqa)


def _meta_linear(d_in: int, d_out: int, bias: bool) -> nn.Linear:
    # Parameters are replaced by the checkpoint's own tensors at load time (storage shared with
    # HF), so nothing is allocated here.
    return nn.Linear(d_in, d_out, bias=bias, device="meta")


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x²) + eps) * w, computed in fp32 like HF's Qwen2/Llama RMSNorm.

    `hook_scale` is sqrt(mean(x²) + eps) [batch, pos, 1] (what TransformerLens' `apply_ln_to_stack`
    divides by). `hook_normalized` is the norm's *output*, weight included: HF's last hidden
    state is that output, and the weight is not folded into the next matrix (the weights are
    shared with the HF model, so folding would need a copy).
    """

    def __init__(self, cfg: HookedVideoLLMConfig, d: int | None = None):
        super().__init__()
        self.eps = cfg.eps
        self.w = nn.Parameter(torch.empty(d or cfg.d_model, device="meta"))
        self.hook_scale = HookPoint()
        self.hook_normalized = HookPoint()

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        dtype = x.dtype
        x32 = x.float()
        scale = self.hook_scale((x32.pow(2).mean(-1, keepdim=True) + self.eps).sqrt())
        return self.hook_normalized(self.w * (x32 / scale).to(dtype))


class RotaryEmbedding(nn.Module):
    """cos/sin tables for rotary positions, computed in fp32 as HF does.

    1-D RoPE takes positions [batch, pos]. With `cfg.extra["mrope_section"]` (Qwen2.5-VL's
    multimodal RoPE) it takes [3, batch, pos] (temporal, height, width; [batch, pos] means all
    three equal, i.e. text): the d_head/2 frequencies are split into the three sections and
    section i rotates by axis i % 3, exactly as HF's `Qwen2_5_VLRotaryEmbedding`."""

    def __init__(self, cfg: HookedVideoLLMConfig):
        super().__init__()
        d = cfg.d_head
        inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, d, 2, dtype=torch.float) / d))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        section = (cfg.extra or {}).get("mrope_section")
        self.mrope_section = tuple(int(s) for s in section) if section else None
        if self.mrope_section is not None and sum(self.mrope_section) != d // 2:
            raise ValueError(f"mrope_section {self.mrope_section} must sum to d_head/2 = {d // 2}")

    def forward(
        self, position_ids: Tensor, dtype: torch.dtype
    ) -> tuple[Float[Tensor, "batch pos d_head"], Float[Tensor, "batch pos d_head"]]:
        if self.mrope_section is None:
            if position_ids.ndim != 2:
                raise ValueError(f"1-D RoPE takes positions [batch, pos], got shape {tuple(position_ids.shape)}")
            freqs = position_ids[..., None].float() * self.inv_freq.float()
        else:
            if position_ids.ndim == 2:
                position_ids = position_ids[None].expand(3, -1, -1)
            freqs = position_ids[..., None].float() * self.inv_freq.float()  # [3, batch, pos, d_head/2]
            parts = freqs.split(self.mrope_section, dim=-1)
            freqs = torch.cat([part[i % 3] for i, part in enumerate(parts)], dim=-1)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rotary(
    x: Float[Tensor, "batch pos head d_head"], cos: Tensor, sin: Tensor
) -> Float[Tensor, "batch pos head d_head"]:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos[:, :, None, :] + rotated * sin[:, :, None, :]


@dataclass
class AttentionContext:
    """What every layer's attention needs to know about this forward besides its input.

    `key_padding` marks real (non-pad) key positions; `q_start` is the absolute position of the
    first query (non-zero when decoding with a KV cache). `mask_cache` memoises knockout masks,
    which are shared by the layers a knockout covers, for the length of one forward.
    """

    key_padding: Bool[Tensor, "batch key"] | None
    q_start: int = 0
    path: AttentionPath = "auto"
    kv_cache: list | None = None
    mask_cache: dict = field(default_factory=dict)
    paths_taken: set = field(default_factory=set)


class Attention(nn.Module):
    """Rotary grouped-query attention with optional q/k/v biases (Qwen2, Llama)."""

    def __init__(self, cfg: HookedVideoLLMConfig, layer: int):
        super().__init__()
        self.cfg = cfg
        self.layer = layer
        H, K, d, D = cfg.n_heads, cfg.n_key_value_heads, cfg.d_head, cfg.d_model
        self.q_proj = _meta_linear(D, H * d, cfg.qkv_bias)
        self.k_proj = _meta_linear(D, K * d, cfg.qkv_bias)
        self.v_proj = _meta_linear(D, K * d, cfg.qkv_bias)
        self.o_proj = _meta_linear(H * d, D, False)
        self.scale = d**-0.5
        if cfg.qk_norm:  # Qwen3: per-head RMSNorm on q and k (after hook_q/hook_k, before RoPE)
            self.q_norm = RMSNorm(cfg, d)
            self.k_norm = RMSNorm(cfg, d)
        # Knockouts folded in by HookedVideoLLM.hooks(); see vlens.knockout.
        self.knockouts: list[KnockoutHook] = []
        for name in ("q", "k", "v", "rot_q", "rot_k", "attn_scores", "pattern", "z"):
            setattr(self, f"hook_{name}", HookPoint())

    # TransformerLens' weight views (read by ActivationCache and by users) ------------------------
    def _heads_in(self, w: Tensor, n: int) -> Tensor:
        return einops.rearrange(w, "(head d_head) d_model -> head d_model d_head", head=n)

    @property
    def W_Q(self) -> Float[Tensor, "head d_model d_head"]:
        return self._heads_in(self.q_proj.weight, self.cfg.n_heads)

    @property
    def _W_K(self) -> Float[Tensor, "kv_head d_model d_head"]:
        return self._heads_in(self.k_proj.weight, self.cfg.n_key_value_heads)

    @property
    def _W_V(self) -> Float[Tensor, "kv_head d_model d_head"]:
        return self._heads_in(self.v_proj.weight, self.cfg.n_key_value_heads)

    @property
    def W_K(self) -> Float[Tensor, "head d_model d_head"]:
        return self._W_K.repeat_interleave(self.cfg.n_groups, dim=0)

    @property
    def W_V(self) -> Float[Tensor, "head d_model d_head"]:
        return self._W_V.repeat_interleave(self.cfg.n_groups, dim=0)

    @property
    def W_O(self) -> Float[Tensor, "head d_head d_model"]:
        return einops.rearrange(
            self.o_proj.weight, "d_model (head d_head) -> head d_head d_model", head=self.cfg.n_heads
        )

    def _bias(self, lin: nn.Linear, n: int) -> Tensor:
        if lin.bias is None:
            return torch.zeros(n, self.cfg.d_head, device=lin.weight.device, dtype=lin.weight.dtype)
        return lin.bias.view(n, self.cfg.d_head)

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
    def forward(
        self,
        x: Float[Tensor, "batch pos d_model"],
        rope: tuple[Tensor, Tensor],
        ctx: AttentionContext,
    ) -> Float[Tensor, "batch pos d_model"]:
        B, Q, _ = x.shape
        H, Hkv, d = self.cfg.n_heads, self.cfg.n_key_value_heads, self.cfg.d_head
        q = self.hook_q(self.q_proj(x).view(B, Q, H, d))
        k = self.hook_k(self.k_proj(x).view(B, Q, Hkv, d))
        v = self.hook_v(self.v_proj(x).view(B, Q, Hkv, d))
        if self.cfg.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        cos, sin = rope
        q = self.hook_rot_q(apply_rotary(q, cos, sin))
        k = self.hook_rot_k(apply_rotary(k, cos, sin))
        # [batch, head, pos, d_head] for the products
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if ctx.kv_cache is not None:
            past = ctx.kv_cache[self.layer]
            if past is not None:
                k = torch.cat([past[0], k], dim=2)
                v = torch.cat([past[1], v], dim=2)
            ctx.kv_cache[self.layer] = (k, v)

        if self._explicit(ctx):
            ctx.paths_taken.add("explicit")
            z = self._explicit_attention(q, k, v, ctx)
        elif self._flex(ctx, q):
            ctx.paths_taken.add("flex")
            z = self._flex_path(q, k, v, ctx)
        else:
            ctx.paths_taken.add("fast")
            z = self._fast_attention(q, k, v, ctx)
        z = self.hook_z(z.transpose(1, 2))  # [batch, pos, head, d_head]
        return self.o_proj(z.reshape(B, Q, H * d))

    def _explicit(self, ctx: AttentionContext) -> bool:
        if ctx.path != "auto":
            return ctx.path == "explicit"
        # Any hook (user's, or run_with_cache caching the pattern) needs the real N×N tensors.
        return bool(self.hook_attn_scores._forward_hooks or self.hook_pattern._forward_hooks)

    def _flex(self, ctx: AttentionContext, q: Tensor) -> bool:
        if ctx.path == "flex":
            return True
        # auto: FlexAttention pays off where its fused kernel exists (CUDA) and there is a
        # knockout mask to exploit; plain causal attention stays on SDPA's causal kernel.
        return ctx.path == "auto" and q.is_cuda and bool(self.knockouts) and q.shape[2] > 1

    def _flex_path(self, q: Tensor, k: Tensor, v: Tensor, ctx: AttentionContext) -> Tensor:
        B, _, Q, _ = q.shape
        K = k.shape[2]
        key = ("flex", B, Q, K, tuple(ko.mask_key(self.layer) for ko in self.knockouts))
        if key not in ctx.mask_cache:  # one block mask per distinct knockout set, shared by layers
            from torch.nn.attention.flex_attention import create_block_mask

            allowed = self._allowed(ctx, Q, K, q.device)
            blocked = self._blocked(ctx, Q, K, q.device)
            if blocked is not None:
                allowed = allowed & ~blocked
            allowed = allowed.expand(B, Q, K).contiguous()

            def mask_mod(b, h, q_idx, kv_idx):
                return allowed[b, q_idx, kv_idx]

            ctx.mask_cache[key] = create_block_mask(mask_mod, B, None, Q, K, device=q.device)
        return _flex_attention(q, k, v, ctx.mask_cache[key], self.scale, self.cfg.n_groups > 1)

    def _allowed(self, ctx: AttentionContext, Q: int, K: int, device) -> Bool[Tensor, "batch query key"]:
        """Causal + padding mask. The diagonal is always allowed, so a pad query never has an
        empty row (no NaN anywhere); real queries never see pad keys."""
        key = ("allowed", Q, K)
        if key not in ctx.mask_cache:
            q_pos = torch.arange(ctx.q_start, ctx.q_start + Q, device=device)
            k_pos = torch.arange(K, device=device)
            allowed = k_pos[None, :] <= q_pos[:, None]
            allowed = allowed[None]
            if ctx.key_padding is not None:
                diag = k_pos[None, :] == q_pos[:, None]
                allowed = allowed & (ctx.key_padding[:, None, :K] | diag[None])
            ctx.mask_cache[key] = allowed
        return ctx.mask_cache[key]

    def _explicit_attention(self, q: Tensor, k: Tensor, v: Tensor, ctx: AttentionContext) -> Tensor:
        B, H, Q, d = q.shape
        K = k.shape[2]
        G = self.cfg.n_groups
        qg = q.reshape(B, H // G, G, Q, d)
        scores = torch.matmul(qg, k[:, :, None].transpose(-1, -2)).reshape(B, H, Q, K) * self.scale
        allowed = self._allowed(ctx, Q, K, q.device)
        scores = scores.masked_fill(~allowed[:, None], float("-inf"))
        for ko in self.knockouts:
            if ko.on == "attn_scores":
                scores = ko.apply_to_scores(scores, ctx.q_start, self.layer)
        scores = self.hook_attn_scores(scores)
        pattern = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        for ko in self.knockouts:
            if ko.on == "pattern":
                pattern = ko.apply_to_pattern(pattern, ctx.q_start, self.layer)
        pattern = self.hook_pattern(pattern)
        out = torch.matmul(pattern.reshape(B, H // G, G, Q, K), v[:, :, None])
        return out.reshape(B, H, Q, d)

    def _fast_attention(self, q: Tensor, k: Tensor, v: Tensor, ctx: AttentionContext) -> Tensor:
        Q, K = q.shape[2], k.shape[2]
        gqa = self.cfg.n_groups > 1
        plain = ctx.key_padding is None and not self.knockouts
        if plain and Q == K and ctx.q_start == 0:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale, enable_gqa=gqa)
        if plain and Q == 1:  # one new token with a KV cache sees every key
            return F.scaled_dot_product_attention(q, k, v, scale=self.scale, enable_gqa=gqa)
        first_row, mask = self._fused_mask(ctx, Q, K, q.device)
        if first_row == Q:  # the knockouts remove no edge in these rows
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale, enable_gqa=gqa)
        if first_row == 0:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale, enable_gqa=gqa)
        # Rows before the first knocked-out row are plain causal attention over the prefix: run
        # them with the causal kernel and only the rest with a mask (for LV-K: the question rows).
        head = F.scaled_dot_product_attention(
            q[:, :, :first_row], k[:, :, :first_row], v[:, :, :first_row], is_causal=True, scale=self.scale, enable_gqa=gqa
        )
        tail = F.scaled_dot_product_attention(
            q[:, :, first_row:], k, v, attn_mask=mask, scale=self.scale, enable_gqa=gqa
        )
        return torch.cat([head, tail], dim=2)

    def _blocked(self, ctx: AttentionContext, Q: int, K: int, device) -> Bool[Tensor, "batch query key"] | None:
        """The union of this layer's knockouts' removed edges for these rows (None: no knockout)."""
        blocked = None
        for ko in self.knockouts:
            b = ko.blocked_rows(ctx.q_start, Q, K, device, self.layer)
            blocked = b if blocked is None else blocked | b
        return blocked

    def _fused_mask(self, ctx: AttentionContext, Q: int, K: int, device) -> tuple[int, Tensor]:
        """(first row that differs from plain causal, allowed mask [batch, 1, Q - first, K])."""
        key = ("fused", Q, K, tuple(ko.mask_key(self.layer) for ko in self.knockouts))
        if key not in ctx.mask_cache:
            allowed = self._allowed(ctx, Q, K, device)
            blocked = self._blocked(ctx, Q, K, device)
            if blocked is not None:
                allowed = allowed & ~blocked
            first = 0
            splittable = ctx.key_padding is None and ctx.q_start == 0 and Q == K and blocked is not None
            if splittable:
                rows = blocked.any(dim=(0, 2)).nonzero()
                first = int(rows[0]) if len(rows) else Q
            ctx.mask_cache[key] = (first, allowed[:, None, first:, :])
        return ctx.mask_cache[key]


class GatedMLP(nn.Module):
    """SwiGLU: down(act(gate(x)) * up(x)). TransformerLens names: hook_pre (gate pre-activation),
    hook_pre_linear (up), hook_post (the product)."""

    def __init__(self, cfg: HookedVideoLLMConfig):
        super().__init__()
        self.cfg = cfg
        self.gate_proj = _meta_linear(cfg.d_model, cfg.d_mlp, False)
        self.up_proj = _meta_linear(cfg.d_model, cfg.d_mlp, False)
        self.down_proj = _meta_linear(cfg.d_mlp, cfg.d_model, False)
        self.act = {"silu": F.silu, "gelu": F.gelu}[cfg.act_fn]
        self.hook_pre = HookPoint()
        self.hook_pre_linear = HookPoint()
        self.hook_post = HookPoint()

    @property
    def W_gate(self) -> Float[Tensor, "d_model d_mlp"]:
        return self.gate_proj.weight.T

    @property
    def W_in(self) -> Float[Tensor, "d_model d_mlp"]:
        return self.up_proj.weight.T

    @property
    def W_out(self) -> Float[Tensor, "d_mlp d_model"]:
        return self.down_proj.weight.T

    @property
    def b_in(self) -> Float[Tensor, "d_mlp"]:
        return torch.zeros(self.cfg.d_mlp, device=self.up_proj.weight.device, dtype=self.up_proj.weight.dtype)

    @property
    def b_out(self) -> Float[Tensor, "d_model"]:
        return torch.zeros(self.cfg.d_model, device=self.down_proj.weight.device, dtype=self.down_proj.weight.dtype)

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        pre = self.hook_pre(self.gate_proj(x))
        pre_linear = self.hook_pre_linear(self.up_proj(x))
        return self.down_proj(self.hook_post(self.act(pre) * pre_linear))


class TransformerBlock(nn.Module):
    def __init__(self, cfg: HookedVideoLLMConfig, layer: int):
        super().__init__()
        self.layer = layer
        self.ln1 = RMSNorm(cfg)
        self.attn = Attention(cfg, layer)
        self.ln2 = RMSNorm(cfg)
        if cfg.moe is not None and layer in cfg.moe.layers:  # a sparse MoE MLP (vlens.moe)
            from vlens.moe import SparseMoE

            self.mlp = SparseMoE(cfg)
        else:
            self.mlp = GatedMLP(cfg)
        for name in ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out"):
            setattr(self, f"hook_{name}", HookPoint())
        if layer < cfg.deepstack_layers:  # Qwen3-VL: this block's output gets vision features added
            self.hook_deepstack = HookPoint()  # [batch, pos, d_model], zero outside vision positions

    def forward(
        self, resid: Float[Tensor, "batch pos d_model"], rope: tuple[Tensor, Tensor], ctx: AttentionContext,
        deepstack: Float[Tensor, "batch pos d_model"] | None = None,
    ) -> Float[Tensor, "batch pos d_model"]:
        resid = self.hook_resid_pre(resid)
        resid = self.hook_resid_mid(resid + self.hook_attn_out(self.attn(self.ln1(resid), rope, ctx)))
        resid = resid + self.hook_mlp_out(self.mlp(self.ln2(resid)))
        if deepstack is not None:  # DeepStack: added after the MLP, inside resid_post (= next resid_pre)
            resid = resid + self.hook_deepstack(deepstack)
        return self.hook_resid_post(resid)


class Unembed(nn.Module):
    def __init__(self, cfg: HookedVideoLLMConfig):
        super().__init__()
        self.cfg = cfg
        self.lm_head = _meta_linear(cfg.d_model, cfg.d_vocab, False)

    @property
    def W_U(self) -> Float[Tensor, "d_model d_vocab"]:
        return self.lm_head.weight.T

    @property
    def b_U(self) -> Float[Tensor, "d_vocab"]:
        return torch.zeros(self.cfg.d_vocab, device=self.lm_head.weight.device, dtype=self.lm_head.weight.dtype)

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_vocab"]:
        return self.lm_head(x)
