"""The parity oracle for knockouts and scalings: the HF model itself, with a custom attention
function (registered through transformers.AttentionInterface) that adds the knockout mask in the
chosen layers only (by module.layer_idx); every other computation is HF's own.

Scalings (`hf_scaling`): renormalised, log α is added to HF's float mask on the chosen edges and
HF's SDPA runs; not renormalised, an eager attention (HF's eager_attention_forward with one line
more) multiplies the fp32 softmax by α on the chosen edges.

A call with Q queries over K keys reads rows K−Q … K−1 of the mask: a decoding step's query is
position K−1, so one mask built over the prompt and every generated token serves HF's `generate`."""

from __future__ import annotations

import contextlib

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

_ACTIVE: dict = {}


def _heads_axis(blocked: torch.Tensor) -> torch.Tensor:
    """[batch, q, k] (every head) or [batch, head, q, k] (per query head) as 4-D."""
    return blocked[:, None] if blocked.dim() == 3 else blocked


def _eager_post_scale(module, query, key, value, attention_mask, factor, scaling=None, **kwargs):
    """HF's eager attention with the softmax multiplied by `factor` [batch, head, q, k]."""
    groups = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1)
    weights = torch.matmul(query, key.transpose(2, 3)) * (module.scaling if scaling is None else scaling)
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = torch.softmax(weights, dim=-1, dtype=torch.float32) * factor
    out = torch.matmul(weights.to(query.dtype), value)
    return out.transpose(1, 2).contiguous(), weights


def _float_mask(query, key, attention_mask):
    Q, K = query.shape[2], key.shape[2]
    if attention_mask is None:  # HF dropped the mask (no padding): make the causal one explicit
        attention_mask = torch.ones(Q, K, dtype=torch.bool, device=query.device).tril(K - Q)[None, None]
    if attention_mask.dtype == torch.bool:
        attention_mask = torch.zeros(attention_mask.shape, dtype=query.dtype, device=query.device).masked_fill(
            ~attention_mask, float("-inf")
        )
    return attention_mask


def _knockout_attention(module, query, key, value, attention_mask, **kwargs):
    scaled = _ACTIVE.get("scaled", {}).get(module.layer_idx)
    if scaled is not None:
        alpha, renormalise = _ACTIVE["alpha"], _ACTIVE["renormalise"]
        Q, K = query.shape[2], key.shape[2]
        chosen = _heads_axis(scaled)[:, :, K - Q : K, :K].to(query.device)
        attention_mask = _float_mask(query, key, attention_mask)
        kwargs["is_causal"] = False
        if not renormalise:
            factor = torch.where(chosen, alpha, 1.0)
            return _eager_post_scale(module, query, key, value, attention_mask, factor, **kwargs)
        log_alpha = torch.where(chosen, torch.tensor(alpha).log(), torch.tensor(0.0)).to(query.dtype)
        return sdpa_attention_forward(module, query, key, value, attention_mask + log_alpha, **kwargs)
    blocked = _ACTIVE.get("by_layer", {}).get(module.layer_idx)
    if blocked is not None:
        Q, K = query.shape[2], key.shape[2]
        if attention_mask is None:  # HF dropped the mask (no padding): make the causal one explicit
            attention_mask = torch.ones(Q, K, dtype=torch.bool, device=query.device).tril(K - Q)[None, None]
        if attention_mask.dtype == torch.bool:
            attention_mask = attention_mask & ~_heads_axis(blocked)[:, :, K - Q : K, :K].to(query.device)
        else:
            attention_mask = attention_mask.masked_fill(
                _heads_axis(blocked)[:, :, K - Q : K, :K].to(query.device), float("-inf")
            )
        kwargs["is_causal"] = False
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


AttentionInterface.register("vlens_knockout_reference", _knockout_attention)
# The 4-D float mask HF builds for eager attention (causal + padding), so padding is honoured.
ALL_MASK_ATTENTION_FUNCTIONS.register("vlens_knockout_reference", eager_mask)


@contextlib.contextmanager
def hf_knockout(hf_model, blocked_by_layer: dict[int, torch.Tensor]):
    """Run `hf_model` with bool masks [batch, pos, pos] of removed edges added in given layers.

    Works for every family: it switches the attention implementation of the language model's
    config (which builds the mask) and of every decoder attention module's config (which picks
    the attention function); the vision tower is left alone."""
    configs = {id(c): c for c in _lm_configs(hf_model)}.values()
    old = [(c, c._attn_implementation) for c in configs]
    _ACTIVE["by_layer"] = blocked_by_layer
    for c in configs:
        c._attn_implementation = "vlens_knockout_reference"
    try:
        yield
    finally:
        for c, impl in old:
            c._attn_implementation = impl
        _ACTIVE.clear()


@contextlib.contextmanager
def hf_scaling(hf_model, chosen_by_layer: dict[int, torch.Tensor], alpha: float, renormalise: bool):
    """Run `hf_model` with the weights of chosen edges (bool [batch, (head,) pos, pos] per layer)
    multiplied by α: renormalised (log α added to the scores, HF's SDPA) or not (α times HF's eager
    softmax)."""
    with hf_knockout(hf_model, {}):
        _ACTIVE.update(scaled=chosen_by_layer, alpha=float(alpha), renormalise=renormalise)
        yield


def _lm_configs(hf_model) -> list:
    inner = getattr(hf_model, "model", hf_model)
    lm = getattr(inner, "language_model", None)
    if lm is None:
        lm = hf_model.get_decoder()
    layers = getattr(lm, "layers", None)
    if layers is None:
        raise TypeError(f"cannot find the decoder layers of {type(hf_model).__name__}'s language model")
    return [lm.config] + [layer.self_attn.config for layer in layers]
