"""Rotary position embeddings: the cos/sin tables a family's attention rotates queries and keys by.

A family chooses its module (`Family.rotary(cfg)`); shared components never ask which one runs.

* `Rotary`: 1-D RoPE (Qwen2, Llama). Positions [batch, pos].
* `MRotary`: multimodal RoPE. Positions [3, batch, pos] (temporal, height, width; [batch, pos]
  means all three equal, i.e. text). The d_head/2 frequencies are shared out among the three axes
  by `sections` (summing to d_head/2):
  - contiguous (`interleaved=False`, Qwen2-VL / Qwen2.5-VL): frequencies are cut into three
    consecutive chunks, chunk i rotates by axis i;
  - interleaved (`interleaved=True`, Qwen3-VL): frequency j rotates by axis j % 3 while that
    axis still has frequencies of its section left (H and W take indices 1, 4, 7, … and 2, 5,
    8, … up to 3·section), every other frequency by the temporal axis.

Both return cos/sin [batch, pos, d_rot], computed in fp32 and cast to `dtype`, exactly as HF's
`Qwen2_5_VLRotaryEmbedding` / `Qwen3VLTextRotaryEmbedding` (default rope type, scaling 1). d_rot is
the rotary width the module is built with: d_head, or `cfg.rotary_dim` where only part of every
head rotates (GLM-4.1V: half; vlens.components.attention.apply_rotary leaves the rest as it is). The tables
hold each frequency twice: over the two halves (rotate_half pairing, the default) or twice in a
row (`adjacent_pairs=True`, GLM's pairing of dims 2i and 2i+1, as `Glm4vTextRotaryEmbedding`).
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn


def inverse_frequencies(d_head: int, theta: float) -> Float[Tensor, " half"]:
    """1 / theta^(2i/d_head) for i < d_head/2, in fp32 (HF's default RoPE)."""
    return 1.0 / (theta ** (torch.arange(0, d_head, 2, dtype=torch.float) / d_head))


def tables(freqs: Float[Tensor, "... half"], dtype: torch.dtype, adjacent_pairs: bool) -> tuple[Tensor, Tensor]:
    """cos and sin of the angles, every frequency written twice: [f0..fh, f0..fh] (rotate_half)
    or [f0, f0, f1, f1, ...] (adjacent pairs)."""
    emb = freqs.repeat_interleave(2, dim=-1) if adjacent_pairs else torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


class Rotary(nn.Module):
    """1-D RoPE: position p rotates frequency i by p·inv_freq[i].

    Args:
        d_head: the rotary width (even): the head dimension, or `cfg.rotary_dim` (partial rotary).
        theta: the RoPE base (`rope_theta`).
        adjacent_pairs: tables for dims (2i, 2i+1) turning together (see the module docstring).
    """

    inv_freq: Tensor  # buffers (register_buffer in __init__), declared for the type checker

    def __init__(self, d_head: int, theta: float = 10000.0, *, adjacent_pairs: bool = False):
        super().__init__()
        if d_head % 2:
            raise ValueError(f"rotary embeddings need an even d_head, got {d_head}")
        self.adjacent_pairs = adjacent_pairs
        self.register_buffer("inv_freq", inverse_frequencies(d_head, theta), persistent=False)

    def forward(
        self, position_ids: Int[Tensor, "batch pos"], dtype: torch.dtype
    ) -> tuple[Float[Tensor, "batch pos d_rot"], Float[Tensor, "batch pos d_rot"]]:
        """cos and sin of every position's angles, duplicated over the two halves of d_head.

        Raises:
            ValueError: positions that are not [batch, pos].
        """
        if position_ids.ndim != 2:
            raise ValueError(f"1-D RoPE takes positions [batch, pos], got shape {tuple(position_ids.shape)}")
        freqs = position_ids[..., None].float() * self.inv_freq.float()
        return tables(freqs, dtype, self.adjacent_pairs)


class MRotary(nn.Module):
    """Multimodal RoPE over (temporal, height, width) positions (see the module docstring).

    Args:
        d_head: the rotary width (even): the head dimension, or `cfg.rotary_dim` (partial rotary).
        theta: the RoPE base (`rope_theta`).
        sections: frequencies per axis (temporal, height, width), summing to d_head/2 (the
            checkpoint's `mrope_section`).
        interleaved: Qwen3-VL's interleaved assignment instead of Qwen2/2.5-VL's chunks. HF
            assigns height to frequencies 1, 4, … < 3·sections[1] and width to 2, 5, … <
            3·sections[2], clipped at d_head/2, and checks no sum: sections summing to more
            (HF's own tester: [16, 8, 8] at head_dim 8) give HF's clipped pattern here too.
        adjacent_pairs: tables for dims (2i, 2i+1) turning together (GLM-4.1V; see the module
            docstring). Which axis turns which frequency does not change.

    Raises:
        ValueError: sections that are not three non-negative numbers summing to d_head/2.
    """

    inv_freq: Tensor  # buffers (register_buffer in __init__), declared for the type checker
    axis_of: Tensor

    def __init__(self, d_head: int, theta: float, sections, *, interleaved: bool = False, adjacent_pairs: bool = False):
        super().__init__()
        self.adjacent_pairs = adjacent_pairs
        sections = tuple(int(s) for s in sections)
        half = d_head // 2
        if len(sections) != 3 or min(sections) < 0 or (sum(sections) != half and not interleaved):
            raise ValueError(f"mrope_section must be 3 numbers summing to d_head/2 = {half}, got {list(sections)}")
        if interleaved and sum(sections) < half:  # HF would leave the last frequencies on the time axis
            raise ValueError(
                f"interleaved mrope_section {list(sections)} covers {sum(sections)} of the d_head/2 = {half} "
                "frequencies; HF's Qwen3-VL checkpoints cover all of them"
            )
        self.sections, self.interleaved = sections, interleaved
        self.register_buffer("inv_freq", inverse_frequencies(d_head, theta), persistent=False)
        # axis_of[j]: which position axis rotates frequency j
        axis = torch.zeros(half, dtype=torch.long)
        if interleaved:
            for a in (1, 2):  # as HF's Qwen3VLTextRotaryEmbedding.recomposition_frequencies
                axis[a : sections[a] * 3 : 3] = a
        else:
            axis = torch.cat([torch.full((s,), i % 3, dtype=torch.long) for i, s in enumerate(sections)])
        self.register_buffer("axis_of", axis, persistent=False)

    def forward(
        self, position_ids: Int[Tensor, "*axes batch pos"], dtype: torch.dtype
    ) -> tuple[Float[Tensor, "batch pos d_rot"], Float[Tensor, "batch pos d_rot"]]:
        """cos and sin [batch, pos, d_rot] for positions [3, batch, pos] (or [batch, pos]: text).

        Raises:
            ValueError: positions of another shape.
        """
        if position_ids.ndim == 2:
            position_ids = position_ids[None].expand(3, -1, -1)
        if position_ids.ndim != 3 or position_ids.shape[0] != 3:
            raise ValueError(
                f"M-RoPE takes positions [3, batch, pos] (or [batch, pos] for text), got {tuple(position_ids.shape)}"
            )
        freqs = position_ids[..., None].float() * self.inv_freq.float()  # [3, batch, pos, d_head/2]
        index = self.axis_of.to(freqs.device)[None, None, None].expand(1, *freqs.shape[1:])
        freqs = freqs.gather(0, index)[0]
        return tables(freqs, dtype, self.adjacent_pairs)
