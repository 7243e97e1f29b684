"""One decoder block: ln1 → attention → + → ln2 → MLP (or sparse MoE) → +, with TransformerLens'
residual hooks (and the sandwich norms some families add, read from the config).
"""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

from vlens.components.attention import Attention
from vlens.components.attention_mask import AttentionContext
from vlens.components.mlp import GatedMLP
from vlens.components.norm import RMSNorm
from vlens.config import HookedVideoLLMConfig


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
        if cfg.moe is not None and layer in cfg.moe.layers:  # a sparse MoE MLP (vlens.components.moe)
            from vlens.components.moe import SparseMoE

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
        self,
        resid: Float[Tensor, "batch pos d_model"],
        rope: tuple[Tensor, Tensor],
        ctx: AttentionContext,
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
