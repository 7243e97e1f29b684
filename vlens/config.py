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
    """A sparse mixture-of-experts MLP (vlens.components.moe.SparseMoE) in the blocks `layers`."""

    n_experts: int
    top_k: int
    d_expert: int
    layers: tuple[int, ...]


@dataclass(frozen=True)
class HookedVideoLLMConfig:
    """Frozen: a model's shape never changes after loading (`dataclasses.replace` makes a new one)."""

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
    # GLM-4.1V: RMSNorm also on the attention and MLP outputs before they join the residual stream
    # ("sandwich" norms; TransformerLens' name, as for Gemma 2: blocks.{l}.ln1_post / ln2_post)
    use_normalization_before_and_after: bool = False
    fused_gate_up: bool = False  # GLM-4.1V: one gate_up_proj [2·d_mlp, d_model] (gate rows first)
    # Rotary (TransformerLens' names): only the first rotary_dim dims of a head rotate (None: all,
    # d_head; GLM-4.1V: d_head/2); adjacent pairs (2i, 2i+1) rotate together (GPT-J/GLM) instead
    # of (i, i + rotary_dim/2) (rotate_half: Qwen2, Llama)
    rotary_dim: int | None = None
    rotary_adjacent_pairs: bool = False
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
            object.__setattr__(self, "n_key_value_heads", self.n_heads)  # frozen: set once, here
        rotary_dim = self.d_head if self.rotary_dim is None else self.rotary_dim
        object.__setattr__(self, "rotary_dim", rotary_dim)
        if rotary_dim % 2 or not 0 < rotary_dim <= self.d_head:
            raise ValueError(f"rotary_dim must be even and in (0, d_head={self.d_head}], got {rotary_dim}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"n_heads={self.n_heads} is not a multiple of n_key_value_heads="
                f"{self.n_key_value_heads}; grouped-query attention needs whole groups."
            )

    @property
    def n_kv_heads(self) -> int:
        """Key/value heads: `n_key_value_heads`, which `__post_init__` fills with `n_heads` when None."""
        return self.n_heads if self.n_key_value_heads is None else self.n_key_value_heads

    @property
    def n_groups(self) -> int:
        """Query heads per key/value head (grouped-query attention)."""
        return self.n_heads // self.n_kv_heads

    @property
    def d_vocab_out(self) -> int:
        return self.d_vocab
