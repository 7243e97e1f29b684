"""The language model's shape, in the field names TransformerLens reads.

`ActivationCache` methods and `transformer_lens.patching` read `model.cfg.<field>`; the names below
are TransformerLens' own (`n_layers`, `d_model`, `n_key_value_heads`, `normalization_type`, ...), so
those tools work on a `HookedVideoLLM` unchanged. Family files build this from the checkpoint's HF
config; nothing here is specific to one family.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class MoEConfig:
    """A sparse mixture-of-experts MLP (vlens.moe.SparseMoE) in the blocks `layers`."""

    n_experts: int
    top_k: int
    d_expert: int
    layers: tuple[int, ...]


@dataclass
class HookedVideoLLMConfig:
    n_layers: int
    d_model: int
    n_heads: int
    d_head: int
    d_mlp: int
    d_vocab: int
    n_ctx: int
    n_key_value_heads: int | None = None
    eps: float = 1e-6
    rope_theta: float = 10000.0
    qkv_bias: bool = True  # Qwen2 has q/k/v biases, Llama does not
    act_fn: str = "silu"
    qk_norm: bool = False  # Qwen3: RMSNorm over d_head on every query and key head before RoPE
    deepstack_layers: int = 0  # Qwen3-VL: vision features are added after blocks 0..deepstack_layers-1
    moe: MoEConfig | None = None  # Qwen3-VL-MoE: sparse MLPs in moe.layers, dense ones elsewhere
    family: str = ""
    original_architecture: str = ""
    model_name: str = ""
    # Fixed by the architectures we support; TransformerLens reads them.
    normalization_type: str = "RMS"
    positional_embedding_type: str = "rotary"
    attn_only: bool = False
    gated_mlp: bool = True
    use_attn_result: bool = False
    final_rms: bool = True
    default_prepend_bos: bool = False
    device: torch.device | str = "cpu"
    dtype: torch.dtype = torch.float32
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.n_key_value_heads is None:
            self.n_key_value_heads = self.n_heads
        if self.n_heads % self.n_key_value_heads:
            raise ValueError(
                f"n_heads={self.n_heads} is not a multiple of n_key_value_heads="
                f"{self.n_key_value_heads}; grouped-query attention needs whole groups."
            )

    @property
    def n_groups(self) -> int:
        """Query heads per key/value head (grouped-query attention)."""
        return self.n_heads // self.n_key_value_heads

    @property
    def d_vocab_out(self) -> int:
        return self.d_vocab
