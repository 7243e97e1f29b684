"""LLaVA-NeXT-Video (HF `LlavaNextVideoForConditionalGeneration`).

CLIP tower (features of `vision_feature_layer`, CLS dropped by the "default" strategy) → 2×2
spatial pooling of the P×P patch grid (`vision_resampler`) → 2-layer MLP projector → all frames
in order, (P/2)² tokens each, row-major; nothing between or after the frames (no separators).
The LM is Llama (no q/k/v biases).
"""

from __future__ import annotations

from torch import nn

from vlens.families.base import LlavaVideoFamily
from vlens.inputs.layout import LayoutError, VisionToken


class LlavaNextVideo(LlavaVideoFamily):
    name = "llava-next-video"
    title = "LLaVA-NeXT-Video"
    architectures = ("LlavaNextVideoForConditionalGeneration",)
    hf_merge = True  # features placed by HF's own forward (vlens.model.hf_merge); images supported
    hf_inputs = ("pixel_values", "image_sizes", "pixel_values_videos")

    def vision_modules(self, hf_model: nn.Module) -> dict[str, nn.Module]:
        names = ("vision_tower", "vision_resampler", "multi_modal_projector")
        return {n: hf_model.get_submodule(f"model.{n}") for n in names}

    def pooled_grid(self, hf_config, height: int, width: int) -> tuple[int, int]:
        patch, stride = hf_config.vision_config.patch_size, hf_config.spatial_pool_stride
        if height != width:
            raise LayoutError(f"LLaVA-NeXT-Video pools a square patch grid; the processor gave {height}x{width} frames")
        p = height // patch
        return p // stride, p // stride

    def video_tokens(self, hf_config, n_frames: int, height: int, width: int) -> list[VisionToken]:
        gh, gw = self.pooled_grid(hf_config, height, width)
        return [VisionToken("video", f, r, c) for f in range(n_frames) for r in range(gh) for c in range(gw)]

    def image_tokens(self, hf_config, inputs: dict) -> list[list[VisionToken]]:
        """Every image's tokens, anyres-packed as HF's `pack_image_features` does (every image tiled)."""
        from vlens.inputs.media_layout import anyres_image_tokens

        if "image_sizes" not in inputs:
            raise LayoutError("pixel_values without image_sizes: LLaVA-NeXT-Video needs every image's (height, width)")
        return [
            anyres_image_tokens(hf_config, hw, patched=True, max_patches=None) for hw in inputs["image_sizes"].tolist()
        ]
