"""Token embedding and unembedding with TransformerLens' names (W_E, W_U)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from vlens.components.attention import meta_linear
from vlens.config import HookedVideoLLMConfig


class Embed(nn.Module):
    """The token embedding `W_E` [d_vocab, d_model] (the checkpoint's own tensor, shared with HF)."""

    def __init__(self, cfg: HookedVideoLLMConfig):
        super().__init__()
        self.W_E = nn.Parameter(torch.empty(cfg.d_vocab, cfg.d_model, device="meta"))  # [d_vocab, d_model]

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        """Embed token ids [batch, pos] into the residual stream [batch, pos, d_model]."""
        return F.embedding(tokens, self.W_E)


class Unembed(nn.Module):
    """The LM head (no bias in the supported families; `b_U` is zeros for TransformerLens)."""

    def __init__(self, cfg: HookedVideoLLMConfig):
        super().__init__()
        self.cfg = cfg
        self.lm_head = meta_linear(cfg.d_model, cfg.d_vocab, False)

    @property
    def W_U(self) -> Float[Tensor, "d_model d_vocab"]:
        """Unembedding weights [d_model, d_vocab]: a view of the LM head's weight."""
        return self.lm_head.weight.T

    @property
    def b_U(self) -> Float[Tensor, " d_vocab"]:
        """Unembedding bias [d_vocab]: zeros (the LM heads have no bias)."""
        return torch.zeros(self.cfg.d_vocab, device=self.lm_head.weight.device, dtype=self.lm_head.weight.dtype)

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_vocab"]:
        """Logits [batch, pos, d_vocab] of the final residual stream [batch, pos, d_model]."""
        return self.lm_head(x)
