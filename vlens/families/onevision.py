"""LLaVA-OneVision and LLaVA-Video (HF `LlavaOnevisionForConditionalGeneration`).

SigLIP tower → 2-layer MLP projector → 2×2 bilinear pooling per frame (P×P patches become
⌈P/2⌉×⌈P/2⌉ tokens) → all frames in order, then ONE `image_newline` vector after the last frame
(a `separator`: it belongs to no frame). The LM is Qwen2 (q/k/v biases, grouped-query attention).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, cast

from torch import Tensor, nn

from vlens.config import HookedVideoLLMConfig
from vlens.families.base import Family, decoder_config, decoder_weight_table, pooler_output
from vlens.inputs.layout import LayoutError, VideoLayout, VisionToken

if TYPE_CHECKING:  # pragma: no cover
    from transformers import LlavaOnevisionForConditionalGeneration


class OneVision(Family):
    name = "llava-onevision"
    architectures = ("LlavaOnevisionForConditionalGeneration",)
    hf_merge = True  # features placed by HF's own forward (vlens.model.hf_merge); images supported
    hf_inputs = ("pixel_values", "image_sizes", "batch_num_images", "pixel_values_videos")

    def config(self, hf_config) -> HookedVideoLLMConfig:
        return decoder_config(self, hf_config.text_config, qkv_bias=True)  # Qwen2: q/k/v biases

    def weight_table(self, cfg: HookedVideoLLMConfig) -> dict[str, str]:
        return decoder_weight_table(cfg)

    def vision_modules(self, hf_model: nn.Module) -> dict[str, nn.Module]:
        return {n: hf_model.get_submodule(f"model.{n}") for n in ("vision_tower", "multi_modal_projector")}

    def vision_parameters(self, hf_model: nn.Module) -> dict[str, nn.Parameter]:
        return {"image_newline": hf_model.get_parameter("model.image_newline")}

    def video_token_id(self, hf_config) -> int:
        return hf_config.video_token_id

    def video_features(self, hf_model: nn.Module, inputs) -> Tensor:
        # The checkpoint's own path (tower, feature layer, projector, pooling, newline).
        # this family (and the LLaVA-Qwen releases built on it) runs only on this HF class
        hf = cast("LlavaOnevisionForConditionalGeneration", hf_model)
        out = hf.model.get_video_features(inputs["pixel_values_videos"], return_dict=True)
        return pooler_output(out)

    def pooled_grid(self, hf_config) -> int:
        v = hf_config.vision_config
        return math.ceil((v.image_size // v.patch_size) / 2)

    def layout(self, input_ids: Tensor, attention_mask: Tensor | None, video, hf_config, inputs: dict) -> VideoLayout:
        if "pixel_values_videos" not in inputs:
            raise LayoutError("no pixel_values_videos in the inputs: LLaVA-OneVision layouts need a video")
        n_frames = inputs["pixel_values_videos"].shape[1]
        g = self.pooled_grid(hf_config)
        tokens = [VisionToken("video", f, r, c) for f in range(n_frames) for r in range(g) for c in range(g)]
        tokens.append(VisionToken("separator"))
        is_pad = attention_mask == 0 if attention_mask is not None else None
        times = video.timestamps if video is not None else None
        return VideoLayout.build(input_ids == hf_config.video_token_id, tokens, is_pad=is_pad, frame_times=times)

    # images and videos in any mix (vlens.inputs.media_layout) ------------------------------------------
    def media_ids(self, hf_config) -> tuple[int | None, int | None]:
        return hf_config.image_token_id, hf_config.video_token_id

    def media_tokens(self, hf_config, inputs: dict) -> tuple[list[list[VisionToken]], list[list[VisionToken]]]:
        """Every image's tokens (anyres, as HF's `pack_image_features` packs them; an image of a
        multi-image row is not tiled, as HF's `batch_num_images` rule says) and every video's
        (frames, then the one `image_newline` separator), in batch order."""
        from vlens.inputs.media_layout import anyres_image_tokens

        images = []
        if "pixel_values" in inputs:
            if "image_sizes" not in inputs:
                raise LayoutError(
                    "pixel_values without image_sizes: LLaVA-OneVision needs every image's (height, width)"
                )
            sizes = inputs["image_sizes"].tolist()
            counts = inputs.get("batch_num_images")
            patched = (
                [True] * len(sizes) if counts is None else [int(n) == 1 for n in counts.tolist() for _ in range(int(n))]
            )
            max_patches = int(
                str(getattr(hf_config, "vision_aspect_ratio", "anyres_max_9")).removeprefix("anyres_max_")
            )
            images = [
                anyres_image_tokens(hf_config, hw, patched=p, max_patches=max_patches) for hw, p in zip(sizes, patched)
            ]
        videos = []
        if "pixel_values_videos" in inputs:
            b, n_frames = inputs["pixel_values_videos"].shape[:2]
            g = self.pooled_grid(hf_config)
            one = [VisionToken("video", f, r, c) for f in range(n_frames) for r in range(g) for c in range(g)]
            videos = [[*one, VisionToken("separator")] for _ in range(b)]
        return images, videos
