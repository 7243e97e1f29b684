"""Video-LLaVA (HF `VideoLlavaForConditionalGeneration`).

The video tower (LanguageBind's, converted by HF to a CLIP-architecture `video_tower` run on
every frame) → features of `vision_feature_layer` with the CLS token KEPT → 2-layer MLP projector
→ all frames in order, each `[CLS, P×P patches row-major]`. The CLS position is a `video`
position of its frame with row = col = −1 (a per-frame extra token). The LM is Llama.
"""

from __future__ import annotations

from torch import Tensor, nn

from vlens.config import HookedVideoLLMConfig
from vlens.families.base import Family, decoder_config, decoder_weight_table, per_row
from vlens.layout import LayoutError, VideoLayout, VisionToken


class VideoLlava(Family):
    name = "video-llava"
    architectures = ("VideoLlavaForConditionalGeneration",)

    def config(self, hf_config) -> HookedVideoLLMConfig:
        t = hf_config.text_config
        return decoder_config(self, t, qkv_bias=False)  # Llama: no q/k/v biases (attention_bias is refused)

    def weight_table(self, cfg: HookedVideoLLMConfig) -> dict[str, str]:
        return decoder_weight_table(cfg)

    def vision_modules(self, hf_model: nn.Module) -> dict[str, nn.Module]:
        m = hf_model.model  # the image tower is not used for videos
        return {"video_tower": m.video_tower, "multi_modal_projector": m.multi_modal_projector}

    def video_token_id(self, hf_config) -> int:
        return hf_config.video_token_id

    def video_features(self, hf_model: nn.Module, inputs) -> Tensor:
        pixels = inputs["pixel_values_videos"]
        out = hf_model.model.get_video_features(pixels, return_dict=True)  # [batch*frames, 1+P², d]
        return per_row(out.pooler_output, pixels.shape[0])

    def layout(self, input_ids: Tensor, attention_mask: Tensor | None, video, hf_config, inputs: dict) -> VideoLayout:
        if "pixel_values_videos" not in inputs:
            raise LayoutError("no pixel_values_videos in the inputs: Video-LLaVA layouts need a video")
        _, n_frames, _, h, w = inputs["pixel_values_videos"].shape
        patch = hf_config.vision_config.patch_size
        gh, gw = h // patch, w // patch
        tokens = []
        for f in range(n_frames):
            tokens.append(VisionToken("video", f))  # the frame's CLS token
            tokens += [VisionToken("video", f, r, c) for r in range(gh) for c in range(gw)]
        is_pad = attention_mask == 0 if attention_mask is not None else None
        times = video.timestamps if video is not None else None
        return VideoLayout.build(input_ids == hf_config.video_token_id, tokens, is_pad=is_pad, frame_times=times)
