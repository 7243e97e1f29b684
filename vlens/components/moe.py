"""A sparse mixture-of-experts MLP as a hooked component (Qwen3-VL-MoE, Qwen3-MoE).

Per position: router logits over the experts, softmax (fp32), the top-k experts, their
probabilities renormalised to sum to one; the output is Σ_k weight_k · expert_k(x), each expert a
SwiGLU MLP. Equal to HF's `Qwen3VLMoeTextSparseMoeBlock` (≤ 1e-6 in fp32: only the order of the
final sum over the k experts differs).

The computation *reads the hooked tensors*, so a hook can reroute as well as read:
`hook_topk_experts` (replace the chosen experts), `hook_topk_weights` (zero an expert's weight:
ablate it), `hook_expert_out` (patch one expert's output). Weights are the HF tensors (shared):
`router.weight` [n_experts, d_model], `gate_up_proj` [n_experts, 2·d_expert, d_model],
`down_proj` [n_experts, d_model, d_expert].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

from vlens.config import HookedVideoLLMConfig


class SparseMoE(nn.Module):
    """Top-k routed SwiGLU experts (see the module docstring)."""

    def __init__(self, cfg: HookedVideoLLMConfig):
        super().__init__()
        moe = cfg.moe
        assert moe is not None, "SparseMoE needs cfg.moe"
        self.n_experts, self.top_k, self.d_expert = moe.n_experts, moe.top_k, moe.d_expert
        E, D, d = moe.n_experts, cfg.d_model, moe.d_expert
        self.router = nn.Linear(D, E, bias=False, device="meta")
        self.gate_up_proj = nn.Parameter(torch.empty(E, 2 * d, D, device="meta"))
        self.down_proj = nn.Parameter(torch.empty(E, D, d, device="meta"))
        self.act = {"silu": F.silu, "gelu": F.gelu}[cfg.act_fn]
        self.hook_router_logits = HookPoint()  # [batch, pos, expert]
        self.hook_topk_experts = HookPoint()  # [batch, pos, k] (long): the chosen experts, best first
        self.hook_topk_weights = HookPoint()  # [batch, pos, k]: their renormalised probabilities
        self.hook_expert_out = HookPoint()  # [batch, pos, k, d_model]: each chosen expert's output, unweighted

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        B, P, D = x.shape
        logits = self.hook_router_logits(self.router(x))
        probs = torch.softmax(logits, dim=-1, dtype=torch.float)
        top_p, top_i = torch.topk(probs, self.top_k, dim=-1)
        top_i: Int[Tensor, "batch pos k"] = self.hook_topk_experts(top_i)
        weights = self.hook_topk_weights((top_p / top_p.sum(-1, keepdim=True)).to(logits.dtype))
        flat, idx = x.reshape(-1, D), top_i.reshape(-1, self.top_k)
        if bool(((idx < 0) | (idx >= self.n_experts)).any()):
            raise ValueError(f"hook_topk_experts holds expert indices outside 0..{self.n_experts - 1}")
        out = flat.new_zeros(flat.shape[0], self.top_k, D)
        for e in idx.unique().tolist():  # only the experts some position chose
            token, slot = (idx == e).nonzero(as_tuple=True)
            gate, up = F.linear(flat[token], self.gate_up_proj[e]).chunk(2, dim=-1)
            out[token, slot] = F.linear(self.act(gate) * up, self.down_proj[e])
        out = self.hook_expert_out(out.view(B, P, self.top_k, D))
        return (out * weights[..., None]).sum(-2)
