"""LLaVA-NeXT-Video (HF `LlavaNextVideoForConditionalGeneration`).

CLIP tower (features of `vision_feature_layer`, CLS dropped by the "default" strategy) → 2×2
spatial pooling of the P×P patch grid (`vision_resampler`) → 2-layer MLP projector → all frames
in order, (P/2)² tokens each, row-major; nothing between or after the frames (no separators).
The LM is Llama (no q/k/v biases).
"""

from __future__ import annotations

from torch import Tensor, nn

from vlens.config import HookedVideoLLMConfig
from vlens.families.base import Family, decoder_config, decoder_weight_table, per_row
from vlens.layout import LayoutError, VideoLayout, VisionToken


class LlavaNextVideo(Family):
    name = "llava-next-video"
    architectures = ("LlavaNextVideoForConditionalGeneration",)

    def config(self, hf_config) -> HookedVideoLLMConfig:
        t = hf_config.text_config
        return decoder_config(self, t, qkv_bias=False)  # Llama: no q/k/v biases (attention_bias is refused)

    def weight_table(self, cfg: HookedVideoLLMConfig) -> dict[str, str]:
        return decoder_weight_table(cfg)

    def vision_modules(self, hf_model: nn.Module) -> dict[str, nn.Module]:
        m = hf_model.model
        return {"vision_tower": m.vision_tower, "vision_resampler": m.vision_resampler,
                "multi_modal_projector": m.multi_modal_projector}

    def video_token_id(self, hf_config) -> int:
        return hf_config.video_token_id

    def video_features(self, hf_model: nn.Module, inputs) -> Tensor:
        # The checkpoint's own path: tower, feature layer, CLS drop, pooling, projector.
        pixels = inputs["pixel_values_videos"]
        out = hf_model.model.get_video_features(pixels, return_dict=True)
        return per_row(out.pooler_output, pixels.shape[0])

    def pooled_grid(self, hf_config, height: int, width: int) -> tuple[int, int]:
        patch, stride = hf_config.vision_config.patch_size, hf_config.spatial_pool_stride
        if height != width:
            raise LayoutError(f"LLaVA-NeXT-Video pools a square patch grid; the processor gave {height}x{width} frames")
        p = height // patch
        return p // stride, p // stride

    def layout(self, input_ids: Tensor, attention_mask: Tensor | None, video, hf_config, inputs: dict) -> VideoLayout:
        if "pixel_values_videos" not in inputs:
            raise LayoutError("no pixel_values_videos in the inputs: LLaVA-NeXT-Video layouts need a video")
        _, n_frames, _, h, w = inputs["pixel_values_videos"].shape
        gh, gw = self.pooled_grid(hf_config, h, w)
        tokens = [VisionToken("video", f, r, c) for f in range(n_frames) for r in range(gh) for c in range(gw)]
        is_pad = attention_mask == 0 if attention_mask is not None else None
        times = video.timestamps if video is not None else None
        return VideoLayout.build(input_ids == hf_config.video_token_id, tokens, is_pad=is_pad, frame_times=times)
