"""VideoLLaMA3 (HF `VideoLlama3ForConditionalGeneration`): per-frame timestamps and differential
frame pruning.

Vision path (HF `VideoLlama3Model.get_video_features`, run as it is): a SigLIP-style ViT with 2-D
axial RoPE encodes every frame on its own (each frame's patches attend only within the frame),
`pixel_unshuffle` downsamples the patch grid 2× (`video_merge_sizes`; bilinear, i.e. the mean of
every 2×2 block), and the projector (Linear–GELU–Linear) maps each token to the LM width: frame f
gives (H/2p)×(W/2p) tokens, row-major.

**Token compression.** VideoLLaMA3's video processor prunes tokens by content
(`use_token_compression`, on by default): a token of frame f > 0 whose pixels differ from the same
token of frame f−1 by at most 0.1/255 on average is dropped (every frame keeps at least its first
token). The processor returns the kept set as `video_compression_mask` and writes only the kept
tokens' placeholders; HF's forward drops the pruned features with the same mask. vlens lets HF
place the features (`hf_merge`) and builds the layout from that mask, so every kept token has its
own frame, row and column and a frame holds only what survived (frames may differ in size).

Prompt: the processor writes, in place of the template's `<|video_pad|>`,

    Time 0.0s:<|video_pad|>×k_0,Time 0.5s:<|video_pad|>×k_1,…

one `Time {t:.1f}s:` per frame (t = frame index / fps, from the `video_metadata` vlens passes)
before the frame's k_f kept tokens, frames joined by ",". Layout: the kept tokens are the `video`
positions of frame f; the text between frame f−1 and frame f (",Time t_f s:") and frame 0's
"Time t_0 s:" are `marker`s of frame f (`layout.frame` = f, the frame they announce). Markers
are never knockout queries or keys of VT/VS, and under LV-K the question still reads them
(docs/knockouts.md).

LM: Qwen2 (q/k/v biases) with plain 1-D RoPE over sequence positions: time reaches the LM only
through the order of the frames and the timestamp text.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor, nn

from vlens.config import HookedVideoLLMConfig
from vlens.families.base import Family, decoder_config, decoder_weight_table, pooler_output
from vlens.families.timestamps import video_metadata
from vlens.inputs.layout import LayoutError, VideoLayout, VisionToken
from vlens.inputs.media_layout import assign_to_rows

if TYPE_CHECKING:  # pragma: no cover
    from transformers import VideoLlama3ForConditionalGeneration

STAMP = re.compile(r",?Time(\d+\.\d)s:")  # one frame's announcement, whitespace removed


class VideoLlama3(Family):
    name = "videollama3"
    architectures = ("VideoLlama3ForConditionalGeneration",)
    title = "VideoLLaMA3"
    # HF's own merge places the features: it applies video_compression_mask exactly as HF does
    hf_merge = True
    hf_inputs = ("pixel_values_videos", "video_grid_thw", "video_merge_sizes", "video_compression_mask")
    per_row_frame_counts = True  # every video has its own grid
    tokenizer: Any = None  # set by bind(): the timestamps are read with it

    def config(self, hf_config) -> HookedVideoLLMConfig:
        t = hf_config.text_config
        if getattr(t, "model_type", "qwen2") != "qwen2":
            raise NotImplementedError(f"{self.title} with a {t.model_type!r} language model (only Qwen2)")
        return decoder_config(self, t, qkv_bias=True)

    def weight_table(self, cfg: HookedVideoLLMConfig) -> dict[str, str]:
        return decoder_weight_table(cfg)

    def vision_modules(self, hf_model: nn.Module) -> dict[str, nn.Module]:
        return {n: hf_model.get_submodule(f"model.{n}") for n in ("vision_model", "projector")}

    def video_token_id(self, hf_config) -> int:
        return hf_config.video_token_id

    def video_features(self, hf_model: nn.Module, inputs) -> Tensor:
        """The kept tokens' features [batch, n_vision, d_model] (rows must keep equal counts;
        the hooked model itself places features with HF's merge, which has no such limit)."""
        hf = cast("VideoLlama3ForConditionalGeneration", hf_model)  # this family's one HF class
        out = hf.model.get_video_features(
            inputs["pixel_values_videos"], inputs["video_grid_thw"], inputs["video_merge_sizes"], return_dict=True
        )
        feats = torch.cat(list(pooler_output(out)), dim=0)
        keep = inputs.get("video_compression_mask")
        if keep is not None:
            feats = feats[keep.to(feats.device)]
        batch = inputs["input_ids"].shape[0]
        if feats.shape[0] % batch:
            raise ValueError(
                f"{feats.shape[0]} kept video tokens cannot be split into {batch} equal rows "
                "(token compression kept different counts per row)"
            )
        return feats.reshape(batch, -1, feats.shape[-1])

    # prompt -----------------------------------------------------------------------------------
    def bind(self, processor) -> VideoLlama3:
        return dataclasses.replace(self, tokenizer=getattr(processor, "tokenizer", None))

    def processor_kwargs(self, videos) -> dict:
        """The sampled frames' real indices and the clip's frame rate: the processor writes every
        frame's time (index / fps) into the prompt (HF would assume 1 fps without them)."""
        return video_metadata(videos, self.title, unit="frame's", hf_default="1 fps")

    # layout -------------------------------------------------------------------------------------
    def row_inputs(self, hf_config, tensors: dict) -> list[dict]:
        """Each row's share of a batch's video tensors (vlens.inputs.media_layout): the grids are one row
        per video and `video_compression_mask` one entry per token of every video, so a row's
        videos are found by counting its placeholders against each video's kept tokens."""
        ids = tensors["input_ids"]
        mask = tensors.get("attention_mask")
        rows = [
            {"input_ids": ids[i : i + 1], **({"attention_mask": mask[i : i + 1]} if mask is not None else {})}
            for i in range(ids.shape[0])
        ]
        grid = tensors.get("video_grid_thw")
        if grid is None:
            return rows
        if tensors.get("video_merge_sizes") is None:
            raise LayoutError("video_grid_thw without video_merge_sizes: VideoLLaMA3 needs every video's merge size")
        merge = tensors["video_merge_sizes"].tolist()
        sizes = [int(t * h * w) // int(m) ** 2 for (t, h, w), m in zip(grid.tolist(), merge)]
        keep = tensors.get("video_compression_mask")
        if keep is None:
            keep = torch.ones(sum(sizes), dtype=torch.bool)
        if keep.numel() != sum(sizes):
            raise LayoutError(f"video_compression_mask has {keep.numel()} entries, the grids hold {sum(sizes)} tokens")
        keeps = list(keep.cpu().bool().split(sizes))
        owned = assign_to_rows(ids.cpu(), hf_config.video_token_id, [int(k.sum()) for k in keeps], "video")
        for row, mine in zip(rows, owned):
            if mine:
                row.update(
                    video_grid_thw=grid[mine],
                    video_merge_sizes=torch.tensor([merge[k] for k in mine]),
                    video_compression_mask=torch.cat([keeps[k] for k in mine]),
                )
        return rows

    def layout(self, input_ids: Tensor, attention_mask: Tensor | None, video, hf_config, inputs: dict) -> VideoLayout:
        ids = input_ids.cpu()
        if bool((ids == hf_config.image_token_id).any()):
            raise LayoutError(f"{self.title} rows with images are not supported yet (video only): drop images=")
        if "video_grid_thw" not in inputs:
            raise LayoutError(f"no video_grid_thw in the inputs: {self.title} layouts need a video")
        if self.tokenizer is None:
            raise LayoutError(
                f"{self.title} layouts need the checkpoint's processor (its tokenizer reads the timestamps)"
            )
        grid = inputs["video_grid_thw"]
        if grid.shape[0] != 1:
            raise LayoutError(f"one video per row is supported, this row has {grid.shape[0]}")
        t, h, w = (int(x) for x in grid[0])
        if "video_merge_sizes" not in inputs:
            raise LayoutError("video_grid_thw without video_merge_sizes: VideoLLaMA3 needs every video's merge size")
        m = int(inputs["video_merge_sizes"][0])
        gh, gw = h // m, w // m
        k = gh * gw
        if video is not None and t != len(video):
            raise LayoutError(
                f"{len(video)} frames should make {len(video)} frames of tokens (VideoLLaMA3 has no "
                f"temporal patches), the processor made {t}"
            )
        keep = inputs.get("video_compression_mask")
        keep = torch.ones(t * k, dtype=torch.bool) if keep is None else keep.cpu().bool()
        if keep.numel() != t * k:
            raise LayoutError(f"video_compression_mask has {keep.numel()} entries, expected {t} frames of {gh}x{gw}")
        kept = keep.view(t, k)
        is_vision = ids == hf_config.video_token_id
        vis = is_vision.nonzero().flatten()
        if len(vis) != int(kept.sum()):
            raise LayoutError(
                f"{len(vis)} <|video_pad|> tokens, but video_compression_mask keeps {int(kept.sum())} "
                f"of {t} frames of {gh}x{gw}"
            )
        times = video.timestamps if video is not None and video.fps is not None else None
        decode = lambda a, b: re.sub(r"\s+", "", self.tokenizer.decode(ids[a:b].tolist()))  # noqa: E731
        is_marker = torch.zeros_like(is_vision)
        frame = torch.full(ids.shape, -1, dtype=torch.long)
        tokens: list[VisionToken] = []
        start, prev_hi = 0, None
        for f in range(t):
            n_f = int(kept[f].sum())
            if n_f == 0:  # the processor keeps >= 1 token a frame; a hand-made mask may not
                raise LayoutError(
                    f"video_compression_mask keeps no token of frame {f} (the processor keeps at least one)"
                )
            lo, hi = int(vis[start]), int(vis[start + n_f - 1])
            start += n_f
            if hi - lo + 1 != n_f:
                raise LayoutError(f"frame {f}'s {n_f} kept video tokens are not one block (positions {lo}..{hi})")
            if prev_hi is not None:  # exactly the text between the previous frame and this one
                first = prev_hi + 1
            else:  # the shortest run of tokens before the first frame that reads "Time …s:"
                first = next((j for j in range(lo - 1, max(lo - 33, -1), -1) if STAMP.fullmatch(decode(j, lo))), lo)
            text = decode(first, lo)
            stamp = STAMP.fullmatch(text) if first < lo else None
            if stamp is None or text.startswith(",") != (f > 0):
                want = "'Time t s:'" if f == 0 else "',Time t s:' after the previous frame"
                raise LayoutError(
                    f"frame {f} is not preceded by the processor's {want} text "
                    f"(found {self.tokenizer.decode(ids[first:lo].tolist())!r})"
                )
            if times is not None and stamp.group(1) != f"{times[f]:.1f}":
                raise LayoutError(f"frame {f} is announced as {stamp.group(1)}s but its time is {times[f]:.1f}s")
            is_marker[first:lo] = True
            frame[first:lo] = f
            prev_hi = hi
            tokens += [VisionToken("video", f, j // gw, j % gw) for j in kept[f].nonzero().flatten().tolist()]
        is_pad = attention_mask.cpu() == 0 if attention_mask is not None else None
        lay = VideoLayout.build(
            is_vision,
            tokens,
            is_pad=is_pad,
            is_marker=is_marker,
            frame_times=video.timestamps if video is not None else None,
        )
        frame = torch.where(lay.mask("marker"), frame, lay.frame)  # a timestamp belongs to its frame
        return VideoLayout(lay.segment, frame, lay.row, lay.col, lay.frames_per_group, lay.frame_times)
