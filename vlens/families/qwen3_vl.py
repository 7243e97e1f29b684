"""Qwen3-VL (HF `Qwen3VLForConditionalGeneration`): DeepStack and textual timestamps.

Vision path: a ViT with learned (interpolated) position embeddings patchifies every 2 consecutive
frames together (a temporal group, as Qwen2.5-VL), merges 2×2 patches into one token, and the
merger projects them to the LM width. The layers listed in `deepstack_visual_indexes` feed their
own mergers: those **DeepStack** features, one set per index, are added to the residual stream at
the vision positions *after* LM blocks 0, 1, … (HF `Qwen3VLTextModel._deepstack_process`). vlens
adds them inside block l, after its MLP, through `blocks.{l}.hook_deepstack` ([batch, pos,
d_model], zero outside vision positions), so `hook_resid_post` of block l (= `hook_resid_pre` of
block l+1) equals HF's hidden state; `model(inputs, deepstack=False)` leaves them out.

Prompt: the processor writes, in place of the template's `<|video_pad|>` (which the template
itself wraps in `<|vision_start|>`…`<|vision_end|>`), for every temporal group g

    <{t_g:.1f} seconds><|vision_start|><|video_pad|>×(H/2p·W/2p)<|vision_end|>

where t_g is the mean time of the group's two frames (frame index / fps, from `video_metadata`,
which vlens fills with the sampled frames' real indices and the clip's frame rate). Layout: the
pads are `video` positions of group g; the group's timestamp text and its own vision start/end are
`marker` positions whose `layout.frame` is g (the frame they announce); the template's outer
start/end, where the processor keeps them, are markers of no frame (−1) — transformers 5.25's
processor collapses that outer wrapper, since every group carries its own. Markers are never knockout queries or keys of VT/VS, and
under LV-K they stay readable by the question (docs/knockouts.md).

LM: Qwen3 (q/k RMSNorm per head before RoPE, no biases, explicit head_dim) with *interleaved*
M-RoPE (`vlens.components.rotary.MRotary(..., interleaved=True)`); each group is its own grid of temporal
size 1, so time is carried by the sequence order and the timestamp text, not by a time axis
(positions from the HF model's own `get_rope_index`).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import field
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor, nn

from vlens.components.rotary import MRotary
from vlens.config import HookedVideoLLMConfig
from vlens.families.base import decoder_config, decoder_weight_table, per_row
from vlens.families.qwen2_5_vl import Qwen25VL
from vlens.families.timestamps import text_ids, video_metadata
from vlens.inputs.layout import LayoutError, VideoLayout, VisionToken

if TYPE_CHECKING:  # pragma: no cover
    from transformers import Qwen3VLForConditionalGeneration, Qwen3VLMoeForConditionalGeneration

# what Qwen3VLProcessor writes before every group, "<1.2 seconds>", compared without whitespace
# (decoders differ in the spaces they put back between pieces)
TIMESTAMP = re.compile(r"<\d+(\.\d+)?seconds>")


def group_times(indices, fps: float, temporal_patch: int) -> list[float]:
    """The time HF's Qwen3VLProcessor writes for every temporal group: the mean of the first and
    last frame time of the group (index / fps), the last index repeated to fill the last group."""
    idx = list(indices)
    if len(idx) % temporal_patch:
        idx += [idx[-1]] * (temporal_patch - len(idx) % temporal_patch)
    t = [i / fps for i in idx]
    return [(t[i] + t[i + temporal_patch - 1]) / 2 for i in range(0, len(t), temporal_patch)]


class Qwen3VL(Qwen25VL):
    name = "qwen3-vl"
    architectures = ("Qwen3VLForConditionalGeneration",)
    title = "Qwen3-VL"
    # features and DeepStack placed by HF's own forward (vlens.model.hf_merge); prompts in the
    # processor's timestamped format take the family's layout rules below, anything else (images,
    # HF's tester videos) the media layout (vlens.inputs.media_layout)
    hf_merge = True
    hf_inputs = ("pixel_values", "pixel_values_videos", "image_grid_thw", "video_grid_thw", "mm_token_type_ids")
    tokenizer: Any = None  # set by bind(): the timestamps are checked token by token with it
    _text_memo: dict = field(default_factory=dict, compare=False, repr=False)

    def config(self, hf_config) -> HookedVideoLLMConfig:
        t = hf_config.text_config
        section = (getattr(t, "rope_parameters", None) or {}).get("mrope_section")
        if not section or len(section) != 3:
            raise NotImplementedError(f"{self.title} text config without a 3-part mrope_section: {section!r}")
        cfg = decoder_config(self, t, qkv_bias=False, mrope_section=list(section))
        # HF adds set l after layer l for l < n_layers: sets beyond the LM's depth are never used
        n_deep = min(len(hf_config.vision_config.deepstack_visual_indexes), cfg.n_layers)
        return dataclasses.replace(cfg, qk_norm=True, deepstack_layers=n_deep)

    def weight_table(self, cfg: HookedVideoLLMConfig) -> dict[str, str]:
        table = decoder_weight_table(cfg)
        for l in range(cfg.n_layers):
            for p in ("q", "k"):
                table[f"blocks.{l}.attn.{p}_norm.w"] = f"model.language_model.layers.{l}.self_attn.{p}_norm.weight"
        return table

    def rotary(self, cfg: HookedVideoLLMConfig) -> nn.Module:
        """Interleaved M-RoPE (HF's Qwen3VLTextRotaryEmbedding interleaves whatever the config says)."""
        return MRotary(cfg.d_head, cfg.rope_theta, cfg.extra["mrope_section"], interleaved=True)

    def vision_outputs(self, hf_model: nn.Module, inputs) -> tuple[Tensor, list[Tensor]]:
        # this family's HF class and Qwen3-VL-MoE's
        hf = cast("Qwen3VLForConditionalGeneration | Qwen3VLMoeForConditionalGeneration", hf_model)
        out = hf.model.get_video_features(inputs["pixel_values_videos"], inputs["video_grid_thw"], return_dict=True)
        # return_dict=True: the output (HF types it as a tuple or the output, fields optional)
        assert not isinstance(out, tuple) and out.pooler_output is not None and out.deepstack_features is not None
        batch = inputs["input_ids"].shape[0]
        feats = per_row(torch.cat(list(out.pooler_output), dim=0)[None], batch)
        deep = [per_row(torch.cat(list(d), dim=0)[None], batch) for d in out.deepstack_features]
        return feats, deep

    def video_features(self, hf_model: nn.Module, inputs) -> Tensor:
        return self.vision_outputs(hf_model, inputs)[0]

    # prompt -----------------------------------------------------------------------------------
    def bind(self, processor) -> Qwen3VL:
        return dataclasses.replace(self, tokenizer=getattr(processor, "tokenizer", None), _text_memo={})

    def processor_kwargs(self, videos) -> dict:
        """The sampled frames' real indices and the clip's frame rate: the processor writes the
        groups' timestamps from them (index / fps)."""
        return video_metadata(videos, self.title)

    def _text_ids(self, text: str) -> tuple[int, ...]:
        return text_ids(self._text_memo, self.tokenizer, text)

    def _timestamp_start(self, ids: Tensor, s: int) -> int:
        """Where the `<t seconds>` text that ends right before position `s` starts (read with the
        tokenizer: raw kwargs carry no frame times to rebuild it from)."""
        if self.tokenizer is not None:
            for first in range(s - 1, max(s - 16, 0) - 1, -1):
                if TIMESTAMP.fullmatch("".join(self.tokenizer.decode(ids[first:s].tolist()).split())):
                    return first
        raise LayoutError(
            "no <|vision_start|> and no '<t seconds>' text before the first group: cannot tell where its "
            "timestamp starts (pass the checkpoint's processor, or build the inputs with model.to_inputs)"
        )

    # layout -------------------------------------------------------------------------------------
    def media_layout_applies(self, inputs: dict, hf_config) -> bool:
        """A video in the processor's format (every group's pads closed by `<|vision_end|>`,
        timestamps between groups) takes the timestamp rules of `layout`; images, and videos
        without those markers (HF's own tester inputs), the media layout."""
        if inputs.get("video_grid_thw") is None:
            return True
        c = hf_config
        ids = inputs["input_ids"]
        is_video = ids == c.video_token_id
        closes = torch.zeros_like(is_video)
        closes[:, :-1] = is_video[:, :-1] & ~is_video[:, 1:]  # the last pad of every block
        after = torch.zeros_like(is_video)
        after[:, 1:] = closes[:, :-1]
        return not bool(closes.any()) or not bool((ids[after] == c.vision_end_token_id).all())

    def layout(self, input_ids: Tensor, attention_mask: Tensor | None, video, hf_config, inputs: dict) -> VideoLayout:
        tp = hf_config.vision_config.temporal_patch_size
        t, gh, gw = self.video_grid(inputs, video, hf_config)
        k = gh * gw
        ids = input_ids.cpu()
        start_id, end_id = hf_config.vision_start_token_id, hf_config.vision_end_token_id
        is_vision = ids == hf_config.video_token_id
        vis = is_vision.nonzero().flatten()
        if len(vis) != t * k:
            raise LayoutError(f"{len(vis)} <|video_pad|> tokens, expected {t} groups of {gh}x{gw} = {t * k}")
        times = group_times(video.indices, video.fps, tp) if video is not None and video.fps else None
        if times is not None and self.tokenizer is None:
            raise LayoutError("Qwen3-VL layouts need the checkpoint's processor (its tokenizer reads the timestamps)")
        is_marker = torch.zeros_like(is_vision)
        marker_frame = torch.full(ids.shape, -1, dtype=torch.long)
        group_spans = []  # (first marker, last marker) of every group
        for g in range(t):
            lo, hi = int(vis[g * k]), int(vis[(g + 1) * k - 1])
            if hi - lo + 1 != k or ids[lo - 1] != start_id or hi + 1 >= len(ids) or ids[hi + 1] != end_id:
                raise LayoutError(
                    f"group {g}'s {k} video tokens are not one block between <|vision_start|> "
                    f"and <|vision_end|> (positions {lo}..{hi})"
                )
            s = lo - 1
            if times is not None:  # the processor's timestamp text, checked token by token
                text = self._text_ids(f"<{times[g]:.1f} seconds>")
                first = s - len(text)
                if first < 0 or tuple(ids[first:s].tolist()) != text:
                    raise LayoutError(f"group {g} is not preceded by its timestamp '<{times[g]:.1f} seconds>'")
            elif g > 0:
                first = group_spans[-1][1] + 1
            else:  # no frame times: the first timestamp runs from the template's outer <|vision_start|>
                outer = (ids[:s] == start_id).nonzero().flatten()
                if len(outer):
                    first = int(outer[-1]) + 1
                else:  # transformers ≥ 5.25 drops the outer wrapper: read the timestamp's text
                    first = self._timestamp_start(ids, s)
            if g > 0 and first != group_spans[-1][1] + 1:
                raise LayoutError(f"text between group {g - 1} and group {g} other than group {g}'s timestamp")
            if first >= s:
                raise LayoutError(f"group {g} has no timestamp before its <|vision_start|>")
            is_marker[first : s + 1] = True
            is_marker[hi + 1] = True
            marker_frame[first : s + 1] = g
            marker_frame[hi + 1] = g
            group_spans.append((first, hi + 1))
        # the template's own <|vision_start|>/<|vision_end|> around the whole video: markers of no frame
        for tok in (start_id, end_id):
            for p in (ids == tok).nonzero().flatten().tolist():
                if is_marker[p]:
                    continue
                outer_ok = (tok == start_id and group_spans and p == group_spans[0][0] - 1) or (
                    tok == end_id and group_spans and p == group_spans[-1][1] + 1
                )
                if not outer_ok:
                    raise LayoutError(
                        f"a stray vision start/end token at position {p} (one video per row is supported)"
                    )
                is_marker[p] = True
        tokens = [VisionToken("video", g, r, c) for g in range(t) for r in range(gh) for c in range(gw)]
        is_pad = attention_mask.cpu() == 0 if attention_mask is not None else None
        lay = VideoLayout.build(
            is_vision,
            tokens,
            is_pad=is_pad,
            is_marker=is_marker,
            frames_per_group=tp,
            frame_times=video.timestamps if video is not None else None,
        )
        frame = torch.where(lay.mask("marker"), marker_frame, lay.frame)  # a timestamp belongs to its group
        return VideoLayout(lay.segment, frame, lay.row, lay.col, lay.frames_per_group, lay.frame_times)
