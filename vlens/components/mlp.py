"""The SwiGLU MLP with TransformerLens' hooks (`mlp.hook_pre`, `mlp.hook_post`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

from vlens.components.attention import meta_linear
from vlens.config import HookedVideoLLMConfig


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
        """Gate weights [d_model, d_mlp] (a view of `gate_proj`, or of the first half of a fused `gate_up_proj`)."""
        if self.cfg.fused_gate_up:
            return self.gate_up_proj.weight[: self.cfg.d_mlp].T
        return self.gate_proj.weight.T

    @property
    def W_in(self) -> Float[Tensor, "d_model d_mlp"]:
        """Up-projection weights [d_model, d_mlp] (a view of `up_proj`, or of the second half of a fused `gate_up_proj`)."""
        if self.cfg.fused_gate_up:
            return self.gate_up_proj.weight[self.cfg.d_mlp :].T
        return self.up_proj.weight.T

    @property
    def W_out(self) -> Float[Tensor, "d_mlp d_model"]:
        """Down-projection weights [d_mlp, d_model]: a view of `down_proj.weight`."""
        return self.down_proj.weight.T

    @property
    def b_in(self) -> Float[Tensor, " d_mlp"]:
        """Input bias [d_mlp]: zeros (the gated MLPs have no bias)."""
        w = self.down_proj.weight
        return torch.zeros(self.cfg.d_mlp, device=w.device, dtype=w.dtype)

    @property
    def b_out(self) -> Float[Tensor, " d_model"]:
        """Output bias [d_model]: zeros."""
        return torch.zeros(self.cfg.d_model, device=self.down_proj.weight.device, dtype=self.down_proj.weight.dtype)

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        """act(x W_gate) ⊙ (x W_in), then W_out: [batch, pos, d_model] → [batch, pos, d_model] (hook_pre, hook_pre_linear, hook_post fire on the way)."""
        if self.cfg.fused_gate_up:  # one matmul, split as HF's Glm4vTextMLP does
            gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        else:
            gate, up = self.gate_proj(x), self.up_proj(x)
        pre = self.hook_pre(gate)
        pre_linear = self.hook_pre_linear(up)
        return self.down_proj(self.hook_post(self.act(pre) * pre_linear))
