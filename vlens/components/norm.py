"""RMSNorm with TransformerLens' hooks (used by the blocks, the final norm and Qwen3's q/k norm)."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

from vlens.config import HookedVideoLLMConfig


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
        self.hook_scale = HookPoint()  # [batch, pos, 1]
        self.hook_normalized = HookPoint()  # [batch, pos, d_model]

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        dtype = x.dtype
        x32 = x.float()
        scale = self.hook_scale((x32.pow(2).mean(-1, keepdim=True) + self.eps).sqrt())
        return self.hook_normalized(self.w * (x32 / scale).to(dtype))
