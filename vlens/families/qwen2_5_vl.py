"""Qwen2.5-VL (HF `Qwen2_5_VLForConditionalGeneration`).

The ViT (window attention, 2-D rotary) patchifies every 2 consecutive frames together (a temporal
patch; an odd last frame is repeated by the processor), merges 2×2 patches into one token, and
emits the groups in order, each (H/2p)×(W/2p) tokens row-major, between the template's
`<|vision_start|>` and `<|vision_end|>` (`marker`s). So `layout.frame` is the temporal-group
index and `layout.frames_per_group` is 2.

The LM is Qwen2 with M-RoPE: every position has a (temporal, height, width) rotary position; text
has all three equal, the video tokens of group g have temporal position
start + ⌊g · tokens_per_second · second_per_grid⌋ and height/width start + row/col, where
second_per_grid = 2 / sampled_fps. vlens takes those positions from the HF model's own
`get_rope_index` and passes the frames' sampling rate to the processor (`video_metadata`), so
the time axis follows the real frame times. Frames without timestamps (an array without `fps=`)
are an error here: the time axis would be a guess.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import torch
from torch import Tensor, nn

from vlens.components.rotary import MRotary
from vlens.config import HookedVideoLLMConfig
from vlens.families.base import Family, decoder_config, decoder_weight_table, per_row, pooler_output
from vlens.inputs.layout import LayoutError, VideoLayout, VisionToken

if TYPE_CHECKING:  # pragma: no cover
    from transformers import (
        Glm4vForConditionalGeneration,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLForConditionalGeneration,
        Qwen3VLForConditionalGeneration,
        Qwen3VLMoeForConditionalGeneration,
    )

    # the HF classes position_ids runs on: this family's and its subclasses' (Qwen2-VL, Qwen3-VL(-MoE), GLM-4.1V)
    QwenVLFamilyModel = (
        Qwen2_5_VLForConditionalGeneration
        | Qwen2VLForConditionalGeneration
        | Qwen3VLForConditionalGeneration
        | Qwen3VLMoeForConditionalGeneration
        | Glm4vForConditionalGeneration
    )


class Qwen25VL(Family):
    name = "qwen2.5-vl"
    architectures = ("Qwen2_5_VLForConditionalGeneration",)
    title = "Qwen2.5-VL"  # the model's name in error messages (subclasses: Qwen2-VL)
    hf_merge = True  # features placed by HF's own forward (vlens.model.hf_merge); images supported
    hf_inputs = (
        "pixel_values",
        "pixel_values_videos",
        "image_grid_thw",
        "video_grid_thw",
        "second_per_grid_ts",
        "mm_token_type_ids",
    )
    per_row_frame_counts = True  # every video has its own grid: rows may differ in frames and size

    def config(self, hf_config) -> HookedVideoLLMConfig:
        t = hf_config.text_config
        section = (getattr(t, "rope_parameters", None) or {}).get("mrope_section")
        if not section or len(section) != 3:
            raise NotImplementedError(f"{self.title} text config without a 3-part mrope_section: {section!r}")
        cfg = decoder_config(self, t, qkv_bias=True, mrope_section=list(section))
        if cfg.d_head != t.hidden_size // t.num_attention_heads:  # HF's attention uses hidden/heads
            raise NotImplementedError(f"{self.title} with head_dim {cfg.d_head} != hidden_size/num_heads")
        return cfg

    def weight_table(self, cfg: HookedVideoLLMConfig) -> dict[str, str]:
        return decoder_weight_table(cfg)

    def rotary(self, cfg: HookedVideoLLMConfig) -> nn.Module:
        """M-RoPE with the checkpoint's `mrope_section`, frequencies cut into 3 chunks (t, h, w)."""
        return MRotary(cfg.d_head, cfg.rope_theta, cfg.extra["mrope_section"], interleaved=False)

    def vision_modules(self, hf_model: nn.Module) -> dict[str, nn.Module]:
        return {"visual": hf_model.get_submodule("model.visual")}

    def video_token_id(self, hf_config) -> int:
        return hf_config.video_token_id

    def video_features(self, hf_model: nn.Module, inputs) -> Tensor:
        # this family's HF class and its subclasses' that keep this method (Qwen2-VL, GLM-4.1V)
        hf = cast(
            "Qwen2_5_VLForConditionalGeneration | Qwen2VLForConditionalGeneration | Glm4vForConditionalGeneration",
            hf_model,
        )
        out = hf.model.get_video_features(inputs["pixel_values_videos"], inputs["video_grid_thw"], return_dict=True)
        feats = torch.cat(list(pooler_output(out)), dim=0)  # one [tokens, d] per video, in order
        return per_row(feats[None], inputs["input_ids"].shape[0])

    # prompt -----------------------------------------------------------------------------------
    def processor_kwargs(self, videos) -> dict:
        """The sampling rate of every clip, which sets M-RoPE's time axis (HF reads
        `video_metadata.sampled_fps`: second_per_grid_ts = temporal_patch_size / sampled_fps)."""
        meta = []
        for v in videos:
            if v.timestamps is None:
                raise ValueError(
                    "Qwen2.5-VL places frames on its M-RoPE time axis by their timestamps, and these frames "
                    "have none: pass fps= (the clip's frame rate) to to_inputs, or give a video file"
                )
            meta.append({"total_num_frames": len(v), "fps": sampled_fps(v), "frames_indices": list(range(len(v)))})
        return {"video_metadata": meta}

    # positions ----------------------------------------------------------------------------------
    def position_ids(self, hf_model: nn.Module, inputs: dict, *, batch: int, n: int, q_start: int, device) -> Tensor:
        """HF's positions for exactly these kwargs: 3-D M-RoPE positions from `get_rope_index`
        when `mm_token_type_ids` and a grid are given (what the processor returns), else plain
        positions 0..n−1 on all three axes — which is what HF's forward uses without
        `mm_token_type_ids` (`compute_3d_position_ids` returns None), padding or not."""
        ids = inputs["input_ids"]
        grids = inputs.get("image_grid_thw") is not None or inputs.get("video_grid_thw") is not None
        types = inputs.get("mm_token_type_ids")
        if not grids or types is None:
            if q_start > 0:
                raise ValueError(
                    f"{self.title} continues the 3-D positions of the prompt: a continuation (q_start > 0) "
                    "needs position_ids in its inputs (model.position_ids(prompt_inputs) gives the prompt's)"
                )
            return super().position_ids(hf_model, inputs, batch=batch, n=n, q_start=q_start, device=device)
        if q_start != 0 or n != ids.shape[1]:
            raise ValueError(f"{self.title}'s 3-D positions are computed for a whole prompt (q_start=0)")
        hf = cast("QwenVLFamilyModel", hf_model)  # this family's HF class or a subclass's
        pos, _ = hf.model.get_rope_index(
            ids,
            mm_token_type_ids=types,
            image_grid_thw=inputs.get("image_grid_thw"),
            video_grid_thw=inputs.get("video_grid_thw"),
            second_per_grid_ts=inputs.get("second_per_grid_ts"),
            attention_mask=inputs.get("attention_mask"),
        )
        return pos.to(device)

    # images and videos in any mix (vlens.inputs.media_layout) ------------------------------------------
    def media_ids(self, hf_config) -> tuple[int | None, int | None]:
        return hf_config.image_token_id, hf_config.video_token_id

    def frames_per_group(self, hf_config) -> int:
        return hf_config.vision_config.temporal_patch_size

    def media_tokens(self, hf_config, inputs: dict) -> tuple[list, list]:
        """Every image (t×(h/m)×(w/m) merged patches of its `image_grid_thw` row) and every video
        (temporal group g of its `video_grid_thw` row = frame g), in batch order."""
        m = hf_config.vision_config.spatial_merge_size
        out = []
        for key, segment in (("image_grid_thw", "image"), ("video_grid_thw", "video")):
            grid = inputs.get(key)
            if grid is None:
                if ("pixel_values" if segment == "image" else "pixel_values_videos") in inputs:
                    raise LayoutError(f"{segment} pixel values without {key}: Qwen2.5-VL needs every {segment}'s grid")
                out.append([])
                continue
            items = []
            for t, h, w in grid.tolist():
                if segment == "image":
                    items.append(
                        [VisionToken("image", -1, r, c) for _ in range(t) for r in range(h // m) for c in range(w // m)]
                    )
                else:
                    items.append(
                        [VisionToken("video", g, r, c) for g in range(t) for r in range(h // m) for c in range(w // m)]
                    )
            out.append(items)
        return out[0], out[1]

    def markers(self, input_ids: Tensor, hf_config) -> Tensor:
        """`<|vision_start|>` and `<|vision_end|>` (where the prompt has them) are template markers."""
        ids = input_ids.cpu()
        marks = torch.zeros_like(ids, dtype=torch.bool)
        for name in ("vision_start_token_id", "vision_end_token_id"):
            tok = getattr(hf_config, name, None)
            if tok is not None:
                marks |= ids == tok
        return marks

    # layout -------------------------------------------------------------------------------------
    def video_grid(self, inputs: dict, video, hf_config) -> tuple[int, int, int]:
        """(temporal groups, merged rows, merged cols) of the row's one video, from
        `video_grid_thw`, checked against the sampled frame count.

        Raises:
            LayoutError: no video, several videos in the row, or a group count that does not
                match the frames.
        """
        if "video_grid_thw" not in inputs:
            raise LayoutError(f"no video_grid_thw in the inputs: {self.title} layouts need a video")
        grid = inputs["video_grid_thw"]
        if grid.shape[0] != 1:
            raise LayoutError(f"one video per row is supported, this row has {grid.shape[0]}")
        v = hf_config.vision_config
        tp, m = v.temporal_patch_size, v.spatial_merge_size
        t, h, w = (int(x) for x in grid[0])
        if video is not None and t != -(-len(video) // tp):
            raise LayoutError(
                f"{len(video)} frames should make {-(-len(video) // tp)} temporal groups, the processor made {t}"
            )
        return t, h // m, w // m

    def layout(self, input_ids: Tensor, attention_mask: Tensor | None, video, hf_config, inputs: dict) -> VideoLayout:
        v = hf_config.vision_config
        t, gh, gw = self.video_grid(inputs, video, hf_config)
        tokens = [VisionToken("video", g, r, c) for g in range(t) for r in range(gh) for c in range(gw)]
        is_vision = input_ids == hf_config.video_token_id
        starts = (input_ids == hf_config.vision_start_token_id).nonzero().flatten().tolist()
        ends = (input_ids == hf_config.vision_end_token_id).nonzero().flatten().tolist()
        vis = is_vision.nonzero().flatten()
        if len(vis) and (starts != [int(vis[0]) - 1] or ends != [int(vis[-1]) + 1]):
            raise LayoutError(
                f"expected one <|vision_start|> right before and one <|vision_end|> right after the video "
                f"tokens (positions {int(vis[0])}..{int(vis[-1])}), found starts at {starts}, ends at {ends}"
            )
        is_marker = torch.zeros_like(is_vision)
        is_marker[starts + ends] = True
        is_pad = attention_mask == 0 if attention_mask is not None else None
        times = video.timestamps if video is not None else None
        return VideoLayout.build(
            is_vision,
            tokens,
            is_pad=is_pad,
            is_marker=is_marker,
            frames_per_group=v.temporal_patch_size,
            frame_times=times,
        )


def sampled_fps(video) -> float:
    """Frames per second of the sampled frames: 1 / their mean spacing (the clip's own fps for a
    single frame or frames at one instant)."""
    ts = video.timestamps
    if len(ts) >= 2 and ts[-1] > ts[0]:
        return (len(ts) - 1) / (ts[-1] - ts[0])
    return float(video.fps)
