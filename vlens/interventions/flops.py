"""FLOPs by formula from the config and the layout: clean vs efficient inference.

"Attention FLOPs" are the QKᵀ and AV products only (docs/efficient.md; the study's 37.5% counts these):
a query row that sees K keys costs 2·K·d_head for QKᵀ and 2·K·d_head for AV, per head. Linear
FLOPs (q/k/v/o projections and the SwiGLU MLP) are 2·d_in·d_out per row. A multiply-add is 2 FLOPs
(torch.utils.flop_counter's convention).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vlens.inputs.layout import VideoLayout
from vlens.interventions.efficient import EfficientConfig


@dataclass
class LayerFlops:
    """FLOPs of one decoder layer for one sequence (a multiply-add counts 2).

    Attributes:
        attention: the QKᵀ and AV products only.
        linear: the Q/K/V/O projections and the gated MLP.
    """

    attention: float  # QKᵀ + AV
    linear: float  # projections + MLP


def linear_per_row(cfg) -> float:
    """q/k/v/o projections and the SwiGLU MLP of one row in one layer."""
    H, Hkv, d, D = cfg.n_heads, cfg.n_key_value_heads, cfg.d_head, cfg.d_model
    return 2 * D * (2 * H * d + 2 * Hkv * d) + 2 * 3 * D * cfg.d_mlp


def attention_per_key(cfg) -> float:
    """QKᵀ and AV of one query row against one key, all heads."""
    return 4 * cfg.n_heads * cfg.d_head


def suffix_layer_flops(cfg, seq_len: int, first_row: int = 0) -> LayerFlops:
    """One layer computing rows first_row..seq_len−1 causally (row i reads i+1 keys, the rows
    before `first_row` as cached keys): a clean layer (first_row=0) or a sweep's suffix."""
    n = seq_len - first_row
    keys = n * (first_row + 1) + n * (n - 1) / 2
    return LayerFlops(attention_per_key(cfg) * keys, n * linear_per_row(cfg))


def unembed_per_row(cfg) -> float:
    """FLOPs of unembedding one position: 2 · d_model · d_vocab (a multiply-add per weight)."""
    return 2 * cfg.d_model * cfg.d_vocab


def clean_flops(cfg, layout: VideoLayout) -> list[LayerFlops]:
    """FLOPs of every layer of the full (clean) forward.

    Args:
        cfg: the model's config (`n_layers`, `n_heads`, `n_key_value_heads`, `d_head`, `d_model`, `d_mlp`).
        layout: the sequence's layout (its length is what counts).

    Returns:
        One `LayerFlops` per layer.
    """
    return [suffix_layer_flops(cfg, len(layout)) for _ in range(cfg.n_layers)]


def efficient_flops(cfg, layout: VideoLayout, config: EfficientConfig) -> list[LayerFlops]:
    """FLOPs of every layer of the efficient forward: layers ≥ `exit_layer` run only the non-vision
    positions; the first `temporal_prune_layers` (below the exit) attend block-diagonally by frame.

    Args:
        cfg: the model's config, as for `clean_flops`.
        layout: the sequence's layout.
        config: exit and pruning layers.

    Returns:
        One `LayerFlops` per layer.
    """
    n = len(layout)
    video = layout.is_video
    per_key = attention_per_key(cfg)
    lin = linear_per_row(cfg)
    kept = int((~layout.is_vision).sum())
    prune = min(config.temporal_prune_layers, config.exit_layer)
    # block-diagonal keys: a video row sees the non-video positions before its frame + its frame up to itself
    non_video_before = torch.cumsum((~video & ~layout.mask("pad")).long(), 0)
    pruned_keys = 0.0
    for f in sorted(set(layout.frame[video].tolist())):
        rows = layout.frame_positions(f)
        before = int(non_video_before[int(rows[0])])
        pruned_keys += sum(before + i + 1 for i in range(len(rows)))
    pruned_keys += float(sum(int(i) + 1 for i in (~video).nonzero().flatten()))
    out = []
    for l in range(cfg.n_layers):
        if l >= config.exit_layer:
            out.append(LayerFlops(per_key * kept * (kept + 1) / 2, kept * lin))
        elif l < prune:
            out.append(LayerFlops(per_key * pruned_keys, n * lin))
        else:
            out.append(LayerFlops(per_key * n * (n + 1) / 2, n * lin))
    return out


def summary(cfg, layout: VideoLayout, config: EfficientConfig) -> dict:
    """Efficient vs clean FLOPs for one sequence.

    Args:
        cfg: the model's config, as for `clean_flops`.
        layout: the sequence's layout.
        config: exit and pruning layers.

    Returns:
        `attention_fraction` and `total_fraction` (efficient / clean), and the four totals
        `clean_attention`, `efficient_attention`, `clean_total`, `efficient_total`.
    """
    clean, eff = clean_flops(cfg, layout), efficient_flops(cfg, layout, config)
    ca, ea = sum(x.attention for x in clean), sum(x.attention for x in eff)
    ct, et = sum(x.attention + x.linear for x in clean), sum(x.attention + x.linear for x in eff)
    return {
        "attention_fraction": ea / ca,
        "total_fraction": et / ct,
        "clean_attention": ca,
        "efficient_attention": ea,
        "clean_total": ct,
        "efficient_total": et,
    }
