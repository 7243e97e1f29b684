"""LLaVA-OneVision and LLaVA-Video (HF `LlavaOnevisionForConditionalGeneration`).

SigLIP tower → 2-layer MLP projector → 2×2 bilinear pooling per frame (P×P patches become
⌈P/2⌉×⌈P/2⌉ tokens) → all frames in order, then ONE `image_newline` vector after the last frame
(a `separator`: it belongs to no frame). The LM is Qwen2 (q/k/v biases, grouped-query attention).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from vlens.config import HookedVideoLLMConfig
from vlens.families.base import Family
from vlens.layout import LayoutError, VideoLayout, VisionToken

LM = "model.language_model"


class OneVision(Family):
    name = "llava-onevision"
    architectures = ("LlavaOnevisionForConditionalGeneration",)

    def config(self, hf_config) -> HookedVideoLLMConfig:
        t = hf_config.text_config
        d_head = getattr(t, "head_dim", None) or t.hidden_size // t.num_attention_heads
        rope = getattr(t, "rope_parameters", None) or {}
        if rope.get("rope_type", "default") != "default":
            raise NotImplementedError(f"rope_type {rope['rope_type']!r} is not supported yet (only 'default')")
        return HookedVideoLLMConfig(
            n_layers=t.num_hidden_layers,
            d_model=t.hidden_size,
            n_heads=t.num_attention_heads,
            n_key_value_heads=t.num_key_value_heads,
            d_head=d_head,
            d_mlp=t.intermediate_size,
            d_vocab=t.vocab_size,
            n_ctx=t.max_position_embeddings,
            eps=t.rms_norm_eps,
            rope_theta=rope.get("rope_theta", getattr(t, "rope_theta", 10000.0)),
            qkv_bias=True,
            act_fn=t.hidden_act,
            family=self.name,
            original_architecture=self.architectures[0],
        )

    def weight_table(self, cfg: HookedVideoLLMConfig) -> dict[str, str]:
        table = {"embed.W_E": f"{LM}.embed_tokens.weight", "ln_final.w": f"{LM}.norm.weight",
                 "unembed.lm_head.weight": "lm_head.weight"}
        for l in range(cfg.n_layers):
            ours, hf = f"blocks.{l}", f"{LM}.layers.{l}"
            table[f"{ours}.ln1.w"] = f"{hf}.input_layernorm.weight"
            table[f"{ours}.ln2.w"] = f"{hf}.post_attention_layernorm.weight"
            for p in ("q", "k", "v"):
                table[f"{ours}.attn.{p}_proj.weight"] = f"{hf}.self_attn.{p}_proj.weight"
                table[f"{ours}.attn.{p}_proj.bias"] = f"{hf}.self_attn.{p}_proj.bias"
            table[f"{ours}.attn.o_proj.weight"] = f"{hf}.self_attn.o_proj.weight"
            for p in ("gate", "up", "down"):
                table[f"{ours}.mlp.{p}_proj.weight"] = f"{hf}.mlp.{p}_proj.weight"
        return table

    def vision_modules(self, hf_model: nn.Module) -> dict[str, nn.Module]:
        m = hf_model.model
        return {"vision_tower": m.vision_tower, "multi_modal_projector": m.multi_modal_projector}

    def vision_parameters(self, hf_model: nn.Module) -> dict[str, nn.Parameter]:
        return {"image_newline": hf_model.model.image_newline}

    def video_token_id(self, hf_config) -> int:
        return hf_config.video_token_id

    def video_features(self, hf_model: nn.Module, inputs) -> Tensor:
        # The checkpoint's own path (tower, feature layer, projector, pooling, newline).
        out = hf_model.model.get_video_features(inputs["pixel_values_videos"], return_dict=True)
        return out.pooler_output

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
