"""The hooked decoder's parts besides attention: embedding, RMSNorm, SwiGLU MLP,
blocks, unembedding (attention and its backends: vlens.attention; rotary tables: vlens.rotary,
chosen by the family).

Modelled on TransformerLens 2.x `components/`: every intermediate a researcher may want is a
`HookPoint` with TransformerLens' name and shape. Weights are kept in the checkpoint's own layout
and *shared* with the HF model, so a 7B model is not held twice; TransformerLens' views (`W_in`,
`W_out`, `W_U`, ...) are properties over that storage.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

from vlens.attention import Attention, AttentionContext, meta_linear
from vlens.norm import RMSNorm
from vlens.config import HookedVideoLLMConfig


class Embed(nn.Module):
    def __init__(self, cfg: HookedVideoLLMConfig):
        super().__init__()
        self.W_E = nn.Parameter(torch.empty(cfg.d_vocab, cfg.d_model, device="meta"))  # [d_vocab, d_model]

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        return F.embedding(tokens, self.W_E)


class GatedMLP(nn.Module):
    """SwiGLU: down(act(gate(x)) * up(x)). TransformerLens names: hook_pre (gate pre-activation),
    hook_pre_linear (up), hook_post (the product).

    With `cfg.fused_gate_up` (GLM-4.1V) the gate and up projections are one matrix
    `gate_up_proj.weight` [2·d_mlp, d_model], gate rows first, the checkpoint's own tensor;
    `W_gate`/`W_in` are views of its two halves (no copy)."""

    def __init__(self, cfg: HookedVideoLLMConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.fused_gate_up:
            self.gate_up_proj = meta_linear(cfg.d_model, 2 * cfg.d_mlp, False)
        else:
            self.gate_proj = meta_linear(cfg.d_model, cfg.d_mlp, False)
            self.up_proj = meta_linear(cfg.d_model, cfg.d_mlp, False)
        self.down_proj = meta_linear(cfg.d_mlp, cfg.d_model, False)
        self.act = {"silu": F.silu, "gelu": F.gelu}[cfg.act_fn]
        self.hook_pre = HookPoint()  # [batch, pos, d_mlp]
        self.hook_pre_linear = HookPoint()  # [batch, pos, d_mlp]
        self.hook_post = HookPoint()  # [batch, pos, d_mlp]

    @property
    def W_gate(self) -> Float[Tensor, "d_model d_mlp"]:
        if self.cfg.fused_gate_up:
            return self.gate_up_proj.weight[: self.cfg.d_mlp].T
        return self.gate_proj.weight.T

    @property
    def W_in(self) -> Float[Tensor, "d_model d_mlp"]:
        if self.cfg.fused_gate_up:
            return self.gate_up_proj.weight[self.cfg.d_mlp :].T
        return self.up_proj.weight.T

    @property
    def W_out(self) -> Float[Tensor, "d_mlp d_model"]:
        return self.down_proj.weight.T

    @property
    def b_in(self) -> Float[Tensor, "d_mlp"]:
        w = self.down_proj.weight
        return torch.zeros(self.cfg.d_mlp, device=w.device, dtype=w.dtype)

    @property
    def b_out(self) -> Float[Tensor, "d_model"]:
        return torch.zeros(self.cfg.d_model, device=self.down_proj.weight.device, dtype=self.down_proj.weight.dtype)

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        if self.cfg.fused_gate_up:  # one matmul, split as HF's Glm4vTextMLP does
            gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        else:
            gate, up = self.gate_proj(x), self.up_proj(x)
        pre = self.hook_pre(gate)
        pre_linear = self.hook_pre_linear(up)
        return self.down_proj(self.hook_post(self.act(pre) * pre_linear))


class TransformerBlock(nn.Module):
    """Pre-norm block: resid + attn(ln1(resid)), then + mlp(ln2(·)).

    With `cfg.use_normalization_before_and_after` (GLM-4.1V's "sandwich" norms) the attention and
    MLP outputs are normalised too before they join the residual stream: resid +
    ln1_post(attn(ln1(resid))), then + ln2_post(mlp(ln2(·))). As in TransformerLens (Gemma 2),
    `hook_attn_out` / `hook_mlp_out` are the normalised outputs, what the residual stream adds."""

    def __init__(self, cfg: HookedVideoLLMConfig, layer: int):
        super().__init__()
        self.layer = layer
        self.ln1 = RMSNorm(cfg)
        self.attn = Attention(cfg, layer)
        self.ln2 = RMSNorm(cfg)
        self.sandwich = cfg.use_normalization_before_and_after
        if self.sandwich:
            self.ln1_post = RMSNorm(cfg)
            self.ln2_post = RMSNorm(cfg)
        if cfg.moe is not None and layer in cfg.moe.layers:  # a sparse MoE MLP (vlens.moe)
            from vlens.moe import SparseMoE

            self.mlp = SparseMoE(cfg)
        else:
            self.mlp = GatedMLP(cfg)
        self.hook_resid_pre = HookPoint()  # [batch, pos, d_model]
        self.hook_attn_out = HookPoint()  # [batch, pos, d_model]
        self.hook_resid_mid = HookPoint()  # [batch, pos, d_model]
        self.hook_mlp_out = HookPoint()  # [batch, pos, d_model]
        if layer < cfg.deepstack_layers:  # Qwen3-VL: this block's output gets vision features added
            self.hook_deepstack = HookPoint()  # [batch, pos, d_model], zero outside vision positions
        self.hook_resid_post = HookPoint()  # [batch, pos, d_model]

    def forward(
        self, resid: Float[Tensor, "batch pos d_model"], rope: tuple[Tensor, Tensor], ctx: AttentionContext,
        deepstack: Float[Tensor, "batch pos d_model"] | None = None,
    ) -> Float[Tensor, "batch pos d_model"]:
        resid = self.hook_resid_pre(resid)
        attn_out = self.attn(self.ln1(resid), rope, ctx)
        if self.sandwich:
            attn_out = self.ln1_post(attn_out)
        resid = self.hook_resid_mid(resid + self.hook_attn_out(attn_out))
        mlp_out = self.mlp(self.ln2(resid))
        if self.sandwich:
            mlp_out = self.ln2_post(mlp_out)
        resid = resid + self.hook_mlp_out(mlp_out)
        if deepstack is not None:  # DeepStack: added after the MLP, inside resid_post (= next resid_pre)
            resid = resid + self.hook_deepstack(deepstack)
        return self.hook_resid_post(resid)


class Unembed(nn.Module):
    """The LM head (no bias in the supported families; `b_U` is zeros for TransformerLens)."""

    def __init__(self, cfg: HookedVideoLLMConfig):
        super().__init__()
        self.cfg = cfg
        self.lm_head = meta_linear(cfg.d_model, cfg.d_vocab, False)

    @property
    def W_U(self) -> Float[Tensor, "d_model d_vocab"]:
        return self.lm_head.weight.T

    @property
    def b_U(self) -> Float[Tensor, "d_vocab"]:
        return torch.zeros(self.cfg.d_vocab, device=self.lm_head.weight.device, dtype=self.lm_head.weight.dtype)

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_vocab"]:
        return self.lm_head(x)
