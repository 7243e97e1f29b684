"""Efficient inference from the study's findings: visual early exit + temporal pruning.

`EfficientConfig(exit_layer=E, temporal_prune_layers=P)`:

* layers ≥ E run **without the vision positions** (`video` and `separator`): their residual rows
  are dropped from the sequence (no projections, no MLP), their keys/values are no longer read.
  The remaining positions keep their original rotary positions (the family's own: 3-D for M-RoPE).
* layers < P: video tokens attend **block-diagonally** — each frame's video tokens see the
  non-video positions before that frame (system prompt, markers) and their own frame, causally —
  computed per frame (frames batched as one SDPA call), never as a masked N×N.

These are real savings with an exact equivalent through knockout hooks (`equivalent_hooks`):
from E on, every non-vision query may not see any vision key (LV-K extended to all non-vision
queries, covering markers between frames); below P, VT-K. The efficient run's logits at the
non-vision positions equal that knockout run's (tested to 1e-4 in fp32), which proves the savings
change nothing else. Depth scaling (DESIGN.md): E = round(18/28·L), P = round(8/28·L).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from vlens import knockout as ko
from vlens.components import apply_rotary
from vlens.layout import VideoLayout


@dataclass(frozen=True)
class EfficientConfig:
    exit_layer: int
    temporal_prune_layers: int = 0

    @classmethod
    def scaled(cls, n_layers: int) -> EfficientConfig:
        """The paper's E=18, P=8 of 28 layers, scaled to `n_layers`."""
        return cls(round(18 / 28 * n_layers), round(8 / 28 * n_layers))

    def check(self, n_layers: int) -> None:
        if not 0 <= self.exit_layer <= n_layers:
            raise ValueError(f"exit_layer={self.exit_layer} must be in 0..{n_layers} (the model has {n_layers} layers; {n_layers} = no exit)")
        if not 0 <= self.temporal_prune_layers <= n_layers:
            raise ValueError(f"temporal_prune_layers={self.temporal_prune_layers} must be in 0..{n_layers}")


def _non_vision_queries(layout: VideoLayout) -> Tensor:
    q = ~layout.is_vision & ~layout.mask("pad")
    return q[:, None] & layout.is_vision[None, :] & torch.ones(len(layout), len(layout), dtype=torch.bool).tril(-1)


def equivalent_hooks(inputs, config: EfficientConfig, n_layers: int) -> list:
    """Knockout hooks whose logits (at non-vision positions) equal the efficient run's."""
    config.check(n_layers)
    hooks = []
    if config.exit_layer < n_layers:
        exit_spec = ko.Custom(_non_vision_queries, "non-vision queries → vision")
        hooks += exit_spec.hooks(inputs, layers=ko.from_layer(config.exit_layer))
    prune = min(config.temporal_prune_layers, config.exit_layer)
    if prune > 0:
        hooks += ko.VT().hooks(inputs, layers=ko.layers(range(prune)))
    return hooks


@dataclass
class EfficientOutput:
    logits: Float[Tensor, "batch kept d_vocab"]
    positions: Int[Tensor, "batch kept"]  # original positions of the kept (non-vision) rows


def _frame_blocks(layout: VideoLayout) -> tuple[Tensor, Tensor, Tensor]:
    """Per frame: query positions [F, n], key positions [F, K] (padded with 0) and key mask
    [F, n, K] for block-diagonal attention (non-video positions before the frame + own frame)."""
    video = layout.is_video
    frames = sorted(set(layout.frame[video].tolist()))
    queries = [layout.frame_positions(f) for f in frames]
    n = max(len(q) for q in queries)
    if any(len(q) != n for q in queries):
        raise ValueError("temporal pruning needs frames with equal token counts")
    keep_before = (~video & ~layout.mask("pad")).nonzero().flatten()
    keys = [torch.cat([keep_before[keep_before < int(q[0])], q]) for q in queries]
    K = max(len(k) for k in keys)
    key_pos = torch.zeros(len(frames), K, dtype=torch.long)
    mask = torch.zeros(len(frames), n, K, dtype=torch.bool)
    for i, (q, k) in enumerate(zip(queries, keys)):
        key_pos[i, : len(k)] = k
        mask[i, :, : len(k)] = k[None, :] <= q[:, None]
    return torch.stack(queries), key_pos, mask


def _attention(attn, x: Tensor, cos: Tensor, sin: Tensor, positions: Tensor, key_padding: Tensor | None,
               blocks: tuple | None, kv_out: list | None) -> Tensor:
    """One attention layer over the rows `x` (original `positions`, increasing). With `blocks`
    (batch of one), video rows attend per frame and the other rows causally over everything."""
    B, N, _ = x.shape
    H, Hkv, d = attn.cfg.n_heads, attn.cfg.n_key_value_heads, attn.cfg.d_head
    q = apply_rotary(attn.q_proj(x).view(B, N, H, d), cos, sin).transpose(1, 2)
    k = apply_rotary(attn.k_proj(x).view(B, N, Hkv, d), cos, sin).transpose(1, 2)
    v = attn.v_proj(x).view(B, N, Hkv, d).transpose(1, 2)
    if kv_out is not None:
        kv_out.append((k, v))
    gqa = attn.cfg.n_groups > 1
    if blocks is None:
        if key_padding is None:
            z = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=attn.scale, enable_gqa=gqa)
        else:
            idx = torch.arange(N, device=x.device)
            allowed = (idx[None, :] <= idx[:, None])[None] & (key_padding[:, None, :] | (idx[None, :] == idx[:, None])[None])
            z = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None], scale=attn.scale, enable_gqa=gqa)
    else:
        q_pos, key_pos, mask, other = blocks
        Fr, n = q_pos.shape
        z = torch.empty_like(q)
        # video rows: frames as a batch, keys = earlier non-video positions + own frame
        qf = q[0][:, q_pos.flatten()].view(H, Fr, n, d).transpose(0, 1)
        kf = k[0][:, key_pos.flatten()].view(Hkv, Fr, -1, d).transpose(0, 1)
        vf = v[0][:, key_pos.flatten()].view(Hkv, Fr, -1, d).transpose(0, 1)
        zf = F.scaled_dot_product_attention(qf, kf, vf, attn_mask=mask[:, None], scale=attn.scale, enable_gqa=gqa)
        z[0][:, q_pos.flatten()] = zf.transpose(0, 1).reshape(H, Fr * n, d)
        # other rows (system, separator, question): causal over all keys
        rows = other
        allowed = torch.arange(N, device=x.device)[None, :] <= rows[:, None]
        z[0][:, rows] = F.scaled_dot_product_attention(q[0][:, rows][None], k, v, attn_mask=allowed[None, None], scale=attn.scale, enable_gqa=gqa)[0]
    return attn.o_proj(z.transpose(1, 2).reshape(B, N, H * d))


@torch.no_grad()
def efficient_forward(model, inputs, config: EfficientConfig, *, kv_cache: list | None = None) -> EfficientOutput:
    """Prefill with the savings of `config`; logits of the kept (non-vision) positions.

    With `kv_cache` (a list), each layer's (k, v) of the rows it computed is appended: all
    positions below E, non-vision positions from E on (what `generate_efficient` decodes with)."""
    L = model.cfg.n_layers
    config.check(L)
    if model.cfg.deepstack_layers:
        raise NotImplementedError(
            f"efficient inference is not available for {model.cfg.family}: its DeepStack adds vision features to "
            "the residual stream after the first blocks, which this prefill does not run; use the equivalent "
            "knockout hooks (vlens.efficient.equivalent_hooks) with model.run_with_hooks instead"
        )
    layouts = inputs.layouts
    x = model.hook_embed(model.embed_inputs(inputs))
    B, N, _ = x.shape
    device = x.device
    mask = inputs.get("attention_mask")
    key_padding = None if mask is None or bool(mask.all()) else mask.to(device).bool()
    positions = torch.arange(N, device=device)[None].expand(B, N)  # sequence order: causality, frames
    # rotary positions, [B, N] or [3, B, N] (M-RoPE): the family's own, carried along when rows leave
    rope_pos = model.position_ids(inputs).to(device)
    rope_pos = rope_pos.expand(*rope_pos.shape[:-2], B, N)
    prune = min(config.temporal_prune_layers, config.exit_layer)
    blocks = None
    if prune > 0:
        if B != 1:
            raise ValueError("temporal pruning runs one sample at a time (batch of 1); loop over samples")
        q_pos, key_pos, fmask = _frame_blocks(layouts[0])
        other = (~layouts[0].is_video).nonzero().flatten()
        blocks = (q_pos.to(device), key_pos.to(device), fmask.to(device), other.to(device))
    keep = torch.stack([~(l.is_vision) for l in layouts]).to(device)
    n_keep = keep.sum(-1)
    if not bool((n_keep == n_keep[0]).all()):
        raise ValueError("rows of the batch have different numbers of vision positions; use the same frames per row")
    for l, block in enumerate(model.blocks):
        if l == config.exit_layer:  # visual early exit: vision rows leave the sequence
            idx = keep.nonzero()[:, 1].view(B, -1)
            x = torch.gather(x, 1, idx[..., None].expand(-1, -1, x.shape[-1]))
            positions = torch.gather(positions, 1, idx)
            rope_pos = torch.gather(rope_pos, -1, idx.expand_as(rope_pos[..., : idx.shape[-1]]))
            if key_padding is not None:
                key_padding = torch.gather(key_padding, 1, idx)
        cos, sin = model.rotary(rope_pos, x.dtype)
        resid = block.hook_resid_pre(x)
        attn_out = _attention(block.attn, block.ln1(resid), cos, sin, positions, key_padding,
                              blocks if l < prune else None, kv_cache)
        resid = block.hook_resid_mid(resid + block.hook_attn_out(attn_out))
        x = block.hook_resid_post(resid + block.hook_mlp_out(block.mlp(block.ln2(resid))))
    if config.exit_layer == L:
        idx = keep.nonzero()[:, 1].view(B, -1)
        x = torch.gather(x, 1, idx[..., None].expand(-1, -1, x.shape[-1]))
        positions = torch.gather(positions, 1, idx)
    return EfficientOutput(model.unembed(model.ln_final(x)), positions)


@torch.no_grad()
def generate_efficient(model, inputs, config: EfficientConfig, max_new_tokens: int = 20) -> Tensor:
    """Greedy decoding with a KV cache after an efficient prefill: generated tokens are text, so
    from E on they read only the non-vision keys. Batch of one."""
    if inputs.batch_size != 1:
        raise ValueError("generate_efficient decodes one sample at a time")
    kv: list = []
    out = efficient_forward(model, inputs, config, kv_cache=kv)
    cache = list(kv)
    N = inputs.seq_len
    next_pos = int(model.position_ids(inputs).max()) + 1  # one past the prompt's largest (M-RoPE too)
    eos = model._eos_id()
    tokens = []
    logits = out.logits[:, -1]
    for t in range(max_new_tokens):
        tok = logits.argmax(-1)
        tokens.append(tok)
        if eos is not None and int(tok) == eos:
            break
        step = {"input_ids": tok[:, None], "position_ids": torch.tensor([[next_pos + t]], device=tok.device)}
        logits = model(step, kv_cache=cache, q_start=N + t)[:, -1]
    return torch.stack(tokens, dim=1)
