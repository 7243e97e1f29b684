"""Video-LLaVA (HF `VideoLlavaForConditionalGeneration`).

The video tower (LanguageBind's, converted by HF to a CLIP-architecture `video_tower` run on
every frame) → features of `vision_feature_layer` with the CLS token KEPT → 2-layer MLP projector
→ all frames in order, each `[CLS, P×P patches row-major]`. The CLS position is a `video`
position of its frame with row = col = −1 (a per-frame extra token). The LM is Llama.
"""

from __future__ import annotations

from torch import nn

from vlens.families.base import LlavaVideoFamily
from vlens.inputs.layout import VisionToken


class VideoLlava(LlavaVideoFamily):
    name = "video-llava"
    title = "Video-LLaVA"
    architectures = ("VideoLlavaForConditionalGeneration",)
    hf_merge = True  # features placed by HF's own forward (vlens.model.hf_merge); images supported
    hf_inputs = ("pixel_values_images", "pixel_values_videos")
    image_key = "pixel_values_images"

    def vision_modules(self, hf_model: nn.Module) -> dict[str, nn.Module]:
        # the image tower is not used for videos
        return {n: hf_model.get_submodule(f"model.{n}") for n in ("video_tower", "multi_modal_projector")}

    def video_tokens(self, hf_config, n_frames: int, height: int, width: int) -> list[VisionToken]:
        patch = hf_config.vision_config.patch_size
        gh, gw = height // patch, width // patch
        tokens = []
        for f in range(n_frames):
            tokens.append(VisionToken("video", f))  # the frame's CLS token
            tokens += [VisionToken("video", f, r, c) for r in range(gh) for c in range(gw)]
        return tokens

    def image_tokens(self, hf_config, inputs: dict) -> list[list[VisionToken]]:
        """Every image's tokens: the image tower's P×P patches row-major, after its CLS token
        unless `vision_feature_select_strategy` is "default" (which drops it, for images only)."""
        pixels = inputs["pixel_values_images"]
        patch = hf_config.vision_config.patch_size
        gh, gw = pixels.shape[-2] // patch, pixels.shape[-1] // patch
        cls = [] if hf_config.vision_feature_select_strategy == "default" else [VisionToken("image")]
        return [
            cls + [VisionToken("image", -1, r, c) for r in range(gh) for c in range(gw)] for _ in range(pixels.shape[0])
        ]
