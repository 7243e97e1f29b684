"""GLM-4.1V (HF `Glm4vForConditionalGeneration`): sandwich norms, a fused MLP, partial M-RoPE and
per-frame timestamps.

Vision path: a ViT (2-D rotary, learned position embeddings interpolated to the frame's grid)
patchifies every 2 consecutive frames together (a temporal group; an odd last frame is repeated,
a single frame is refused by the video processor), a 2×2 conv merges patches into one token and
a SwiGLU merger projects them to the LM width — all of it HF's own modules (`get_video_features`).

Prompt: the template writes `<|begin_of_video|><|video|><|end_of_video|>` and the processor
expands `<|video|>` into, for every temporal group g,

    <|begin_of_image|><|image|>×(H/2p·W/2p)<|end_of_image|>{int(t_g)}

where t_g is the time of the group's first frame (frame index / fps, from `video_metadata`,
which vlens fills with the sampled frames' real indices and the clip's frame rate), written as
whole seconds *after* the group. The video's tokens are `<|image|>` (HF tells images from videos
by the enclosing `<|begin_of_video|>`, `mm_token_type_ids`). Layout: the `<|image|>`s of group g
are `video` positions of frame g; the group's `<|begin_of_image|>`, `<|end_of_image|>` and its
timestamp digits are `marker`s whose `layout.frame` is g; `<|begin_of_video|>` and
`<|end_of_video|>` are markers of no frame (−1). Markers are never knockout keys, nor VT/VS
queries; those after the last video token (the last group's `<|end_of_image|>` and timestamp,
`<|end_of_video|>`) are LV queries like every text position after the video (docs/knockouts.md).

LM: GLM-4 with q/k/v biases; RMSNorm also on the attention and MLP outputs before they join the
residual stream (`blocks.{l}.ln1_post`, `ln2_post`; HF `post_self_attn_layernorm`,
`post_mlp_layernorm`); one `gate_up_proj` (gate rows first) shared with HF as it is. M-RoPE turns
only the first `partial_rotary_factor`·d_head dims of a head (the rest pass unchanged), adjacent
dims (2i, 2i+1) as a pair, with the checkpoint's contiguous `mrope_section` chunks; every temporal
group is its own grid of temporal size 1 (HF's `get_rope_index`, which vlens calls), so time is
carried by the order and the timestamp text, not by a time axis.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any

import torch
from torch import Tensor, nn

from vlens.components.rotary import MRotary
from vlens.config import HookedVideoLLMConfig
from vlens.families.base import decoder_config, decoder_weight_table
from vlens.families.qwen2_5_vl import Qwen25VL
from vlens.families.timestamps import text_ids, video_metadata
from vlens.inputs.layout import LayoutError, VideoLayout, VisionToken


def group_seconds(indices, fps: float, temporal_patch: int) -> list[int]:
    """The whole seconds HF's Glm4vProcessor writes after every temporal group: the time of the
    group's first frame (index / fps), truncated."""
    idx = list(indices)
    return [int(i / fps) for i in idx[::temporal_patch]]


class Glm4V(Qwen25VL):
    name = "glm4v"
    architectures = ("Glm4vForConditionalGeneration",)
    title = "GLM-4.1V"
    # features placed by HF's own forward (vlens.model.hf_merge); a video takes the family's own
    # layout rules below (its frames fill <|image|> tokens, told apart by the video markers),
    # images the media layout; every row of a batch has the same frame count and size
    hf_merge = True
    hf_inputs = ("pixel_values", "pixel_values_videos", "image_grid_thw", "video_grid_thw", "mm_token_type_ids")
    per_row_frame_counts = False
    tokenizer: Any = None  # set by bind(): the timestamps are checked token by token with it
    temporal_patch: int = 2  # set by bind(): frames a temporal group (the video processor needs one whole)
    _text_memo: dict = field(default_factory=dict, compare=False, repr=False)

    def config(self, hf_config) -> HookedVideoLLMConfig:
        t = hf_config.text_config
        rope = dict(getattr(t, "rope_parameters", None) or {})
        section = rope.get("mrope_section")
        if not section or len(section) != 3:
            raise NotImplementedError(f"{self.title} text config without a 3-part mrope_section: {section!r}")
        # HF's Glm4vTextAttention biases q/k/v always and o_proj never, whatever `attention_bias`
        # says (GLM-4 configs carry attention_bias=true): not Llama's flag, so not refused
        cfg = decoder_config(self, t, qkv_bias=True, attention_bias_biases_o_proj=False, mrope_section=list(section))
        if cfg.d_head != t.hidden_size // t.num_attention_heads:  # HF's attention uses hidden/heads
            raise NotImplementedError(f"{self.title} with head_dim {cfg.d_head} != hidden_size/num_heads")
        rotary_dim = int(cfg.d_head * rope.get("partial_rotary_factor", 1.0))  # as HF rounds it
        if rotary_dim % 2 or 2 * sum(section) != rotary_dim:
            raise NotImplementedError(
                f"{self.title}: mrope_section {list(section)} must cover the rotary width "
                f"{rotary_dim} = d_head·partial_rotary_factor in frequency pairs (sum {rotary_dim // 2})"
            )
        return dataclasses.replace(
            cfg,
            use_normalization_before_and_after=True,
            fused_gate_up=True,
            rotary_dim=rotary_dim,
            rotary_adjacent_pairs=True,
        )

    def weight_table(self, cfg: HookedVideoLLMConfig) -> dict[str, str]:
        table = decoder_weight_table(cfg)
        for l in range(cfg.n_layers):
            ours, hf = f"blocks.{l}", f"model.language_model.layers.{l}"
            del table[f"{ours}.mlp.gate_proj.weight"], table[f"{ours}.mlp.up_proj.weight"]
            table[f"{ours}.mlp.gate_up_proj.weight"] = f"{hf}.mlp.gate_up_proj.weight"
            table[f"{ours}.ln1_post.w"] = f"{hf}.post_self_attn_layernorm.weight"
            table[f"{ours}.ln2_post.w"] = f"{hf}.post_mlp_layernorm.weight"
        return table

    def rotary(self, cfg: HookedVideoLLMConfig) -> nn.Module:
        """M-RoPE over the first `rotary_dim` dims, contiguous sections, adjacent-pair tables
        (HF's Glm4vTextRotaryEmbedding: frequencies from the rotary width, repeat_interleave)."""
        assert cfg.rotary_dim is not None  # HookedVideoLLMConfig.__post_init__ fills it (d_head when unset)
        return MRotary(
            cfg.rotary_dim, cfg.rope_theta, cfg.extra["mrope_section"], interleaved=False, adjacent_pairs=True
        )

    def video_token_id(self, hf_config) -> int:
        """GLM-4.1V fills a video's frames into `<|image|>` tokens (HF's get_placeholder_mask)."""
        return hf_config.image_token_id

    # prompt -----------------------------------------------------------------------------------
    def bind(self, processor) -> Glm4V:
        tp = getattr(getattr(processor, "video_processor", None), "temporal_patch_size", self.temporal_patch)
        return dataclasses.replace(
            self, tokenizer=getattr(processor, "tokenizer", None), temporal_patch=int(tp), _text_memo={}
        )

    def processor_kwargs(self, videos) -> dict:
        """The sampled frames' real indices and the clip's frame rate: the processor writes the
        groups' timestamps from them (index / fps)."""
        for v in videos:
            if len(v) < self.temporal_patch:
                raise ValueError(
                    f"GLM-4.1V's video processor needs at least {self.temporal_patch} frames (one temporal patch), "
                    f"got {len(v)}: sample n_frames >= {self.temporal_patch}"
                )
        return video_metadata(videos, self.title, hf_default="24 fps")

    def _text_ids(self, text: str) -> tuple[int, ...]:
        return text_ids(self._text_memo, self.tokenizer, text)

    # layout -------------------------------------------------------------------------------------
    def media_layout_applies(self, inputs: dict, hf_config) -> bool:
        """Images alone take the media layout; a video (whose frames fill the same `<|image|>`
        tokens as images) the family's rules in `layout`."""
        return inputs.get("video_grid_thw") is None

    def media_ids(self, hf_config) -> tuple[int | None, int | None]:
        return hf_config.image_token_id, None  # only images reach the media layout (see above)

    def markers(self, input_ids: Tensor, hf_config) -> Tensor:
        """`<|begin_of_image|>`, `<|end_of_image|>` (and the video's begin/end) are template markers."""
        ids = input_ids.cpu()
        marks = torch.zeros_like(ids, dtype=torch.bool)
        for name in ("image_start_token_id", "image_end_token_id", "video_start_token_id", "video_end_token_id"):
            tok = getattr(hf_config, name, None)
            if tok is not None:
                marks |= ids == tok
        return marks

    def layout(self, input_ids: Tensor, attention_mask: Tensor | None, video, hf_config, inputs: dict) -> VideoLayout:
        tp = hf_config.vision_config.temporal_patch_size
        t, gh, gw = self.video_grid(inputs, video, hf_config)
        k = gh * gw
        ids = input_ids.cpu()
        c = hf_config
        is_vision = ids == c.image_token_id
        vis = is_vision.nonzero().flatten()
        if len(vis) != t * k:
            raise LayoutError(
                f"{len(vis)} <|image|> tokens, expected {t} groups of {gh}x{gw} = {t * k} "
                "(images besides the video are not supported)"
            )
        v_start = (ids == c.video_start_token_id).nonzero().flatten().tolist()
        v_end = (ids == c.video_end_token_id).nonzero().flatten().tolist()
        if len(v_start) != 1 or len(v_end) != 1 or not v_start[0] < int(vis[0]) <= int(vis[-1]) < v_end[0]:
            raise LayoutError(
                f"expected one <|begin_of_video|> before and one <|end_of_video|> after the video "
                f"tokens (positions {int(vis[0])}..{int(vis[-1])}), found {v_start} and {v_end}"
            )
        seconds = group_seconds(video.indices, video.fps, tp) if video is not None and video.fps else None
        if seconds is not None and self.tokenizer is None:
            raise LayoutError(
                f"{self.title} layouts need the checkpoint's processor (its tokenizer reads the timestamps)"
            )
        is_marker = torch.zeros_like(is_vision)
        marker_frame = torch.full(ids.shape, -1, dtype=torch.long)
        is_marker[v_start + v_end] = True
        nxt = v_start[0] + 1  # where group 0's <|begin_of_image|> must be
        for g in range(t):
            lo, hi = int(vis[g * k]), int(vis[(g + 1) * k - 1])
            if (
                hi - lo + 1 != k
                or lo - 1 != nxt
                or ids[lo - 1] != c.image_start_token_id
                or ids[hi + 1] != c.image_end_token_id
            ):
                raise LayoutError(
                    f"group {g}'s {k} video tokens are not one block between <|begin_of_image|> and "
                    f"<|end_of_image|> right after the previous group (positions {lo}..{hi})"
                )
            # the group's timestamp: everything up to the next group's <|begin_of_image|> (or <|end_of_video|>)
            stop = int(vis[(g + 1) * k]) - 1 if g + 1 < t else v_end[0]
            stamp = ids[hi + 2 : stop]
            if len(stamp) == 0:
                raise LayoutError(f"group {g} has no timestamp after its <|end_of_image|>")
            if seconds is not None and tuple(stamp.tolist()) != self._text_ids(str(seconds[g])):
                raise LayoutError(f"group {g} is not followed by its timestamp '{seconds[g]}'")
            for span in (slice(lo - 1, lo), slice(hi + 1, stop)):  # <|begin_of_image|>; <|end_of_image|> + stamp
                is_marker[span] = True
                marker_frame[span] = g
            nxt = stop
        tokens = [VisionToken("video", g, r, col) for g in range(t) for r in range(gh) for col in range(gw)]
        is_pad = attention_mask.cpu() == 0 if attention_mask is not None else None
        lay = VideoLayout.build(
            is_vision,
            tokens,
            is_pad=is_pad,
            is_marker=is_marker,
            frames_per_group=tp,
            frame_times=video.timestamps if video is not None else None,
        )
        frame = torch.where(lay.mask("marker"), marker_frame, lay.frame)  # a group's markers belong to it
        return VideoLayout(lay.segment, frame, lay.row, lay.col, lay.frames_per_group, lay.frame_times)
