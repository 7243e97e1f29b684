"""LLaVA-NeXT-Video (HF `LlavaNextVideoForConditionalGeneration`).

CLIP tower (features of `vision_feature_layer`, CLS dropped by the "default" strategy) → 2×2
spatial pooling of the P×P patch grid (`vision_resampler`) → 2-layer MLP projector → all frames
in order, (P/2)² tokens each, row-major; nothing between or after the frames (no separators).
The LM is Llama (no q/k/v biases).
"""

from __future__ import annotations

from torch import nn

from vlens.families.base import LlavaVideoFamily
from vlens.layout import LayoutError, VisionToken


class LlavaNextVideo(LlavaVideoFamily):
    name = "llava-next-video"
    title = "LLaVA-NeXT-Video"
    architectures = ("LlavaNextVideoForConditionalGeneration",)

    def vision_modules(self, hf_model: nn.Module) -> dict[str, nn.Module]:
        m = hf_model.model
        return {"vision_tower": m.vision_tower, "vision_resampler": m.vision_resampler,
                "multi_modal_projector": m.multi_modal_projector}

    def pooled_grid(self, hf_config, height: int, width: int) -> tuple[int, int]:
        patch, stride = hf_config.vision_config.patch_size, hf_config.spatial_pool_stride
        if height != width:
            raise LayoutError(f"LLaVA-NeXT-Video pools a square patch grid; the processor gave {height}x{width} frames")
        p = height // patch
        return p // stride, p // stride

    def video_tokens(self, hf_config, n_frames: int, height: int, width: int) -> list[VisionToken]:
        gh, gw = self.pooled_grid(hf_config, height, width)
        return [VisionToken("video", f, r, c) for f in range(n_frames) for r in range(gh) for c in range(gw)]
