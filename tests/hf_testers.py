"""The tiny configurations of HF transformers' own model tests, rebuilt (issue 17 item 6).

The config values and input shapes are those of the `ModelTester` classes in transformers'
tests/models/<name>/test_modeling_<name>.py (LlavaOnevisionVisionText2TextModelTester,
LlavaNextVideoVisionText2TextModelTester, VideoLlavaVisionText2TextModelTester,
Qwen2_5_VLVisionText2TextModelTester, InternVLVisionText2TextModelTester,
PerceptionLMVisionText2TextModelTester); the code is ours.
Inputs follow the testers' recipes (random ids in the vocabulary, placeholders at the testers'
positions, expanded to as many tokens as transformers 5 requires). Where a tester has no video
(OneVision, Qwen2.5-VL's common inputs, InternVL) a `video` variant builds one in the same style
for the knockouts, which need frames; where its config leaves a token id outside the tiny
vocabulary (OneVision's default video token 151647), that id is set inside it and said so.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SEED = 0


@dataclass
class Tester:
    name: str
    hf: torch.nn.Module
    kwargs: dict  # the tester's own inputs
    video_kwargs: dict  # a variant with a video (knockouts need frames)
    images_as_frames: bool = False  # InternVL: the video variant's frames are images to the model


def _ids(batch: int, seq: int, vocab: int, g: torch.Generator, low: int = 0) -> torch.Tensor:
    return torch.randint(low, vocab, (batch, seq), generator=g)


def _floats(shape, g: torch.Generator) -> torch.Tensor:
    return torch.rand(*shape, generator=g)


def _build(cls, config) -> torch.nn.Module:
    torch.manual_seed(SEED)
    return cls(config).eval()


_LM_COMMON = {
    "vocab_size": 99,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 37,
    "hidden_act": "gelu",
    "initializer_range": 0.02,
}
_VISION_COMMON = {
    "num_channels": 3,
    "hidden_size": 32,
    "projection_dim": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 37,
    "initializer_range": 0.02,
}


def llava_onevision() -> Tester:
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
    )

    config = LlavaOnevisionConfig(
        text_config={
            "model_type": "qwen2",
            **_LM_COMMON,
            "num_key_value_heads": 4,
            "max_position_embeddings": 580,
            "pad_token_id": 0,
        },
        vision_config={**_VISION_COMMON, "image_size": 16, "patch_size": 8},
        image_token_index=1,
        projector_hidden_act="gelu",
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        image_grid_pinpoints=[[16, 16]],
        video_token_index=2,  # the default (151647) is outside the tester's 99-token vocabulary
    )
    hf = _build(LlavaOnevisionForConditionalGeneration, config)
    g = torch.Generator().manual_seed(1)
    B, n_image, seq = 3, 10, 7
    ids = _ids(B, seq + n_image, 99 - 2, g) + 2
    ids[ids == 1] = 0
    ids[ids == 2] = 0
    ids[:, :n_image] = 1
    kwargs = {
        "pixel_values": _floats((B, 3, 3, 16, 16), g),
        "image_sizes": torch.tensor([[45, 45]] * B),
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
    }
    F = 4  # frames; one pooled token each (2×2 patches → 1) + the image_newline
    vids = _ids(B, seq + F + 1, 99 - 3, g) + 3
    vids[:, 1 : F + 2] = 2
    video = {
        "pixel_values_videos": _floats((B, F, 3, 16, 16), g),
        "input_ids": vids,
        "attention_mask": torch.ones_like(vids),
    }
    return Tester("llava_onevision", hf, kwargs, video)


def llava_next_video() -> Tester:
    from transformers import (
        LlavaNextVideoConfig,
        LlavaNextVideoForConditionalGeneration,
    )

    n_image, n_video, seq = 24, 8, 7
    config = LlavaNextVideoConfig(
        text_config={"model_type": "llama", **_LM_COMMON, "max_position_embeddings": 580, "pad_token_id": 2},
        vision_config={**_VISION_COMMON, "image_size": 8, "patch_size": 4},
        image_token_index=0,
        video_token_index=1,
        projector_hidden_act="gelu",
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        image_grid_pinpoints=[[16, 16]],
        video_seq_length=n_video,
        image_seq_length=n_image,
    )
    hf = _build(LlavaNextVideoForConditionalGeneration, config)
    g = torch.Generator().manual_seed(2)
    B = 3
    ids = _ids(B, seq + n_image + n_video, 99 - 2, g) + 2
    ids[:, :n_image] = 0
    ids[:, n_image : n_image + n_video] = 1
    kwargs = {
        "pixel_values": _floats((B, 5, 3, 8, 8), g),
        "pixel_values_videos": _floats((B, 8, 3, 8, 8), g),
        "image_sizes": torch.tensor([[8, 8]] * B),
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
    }
    return Tester("llava_next_video", hf, kwargs, kwargs)  # its own inputs already hold image + video


def video_llava() -> Tester:
    from transformers import VideoLlavaConfig, VideoLlavaForConditionalGeneration

    config = VideoLlavaConfig(
        text_config={"model_type": "llama", **_LM_COMMON, "max_position_embeddings": 2048, "pad_token_id": 0},
        vision_config={"model_type": "clip_vision_model", **_VISION_COMMON, "image_size": 30, "patch_size": 2},
        image_token_index=0,
        video_token_index=1,
        projector_hidden_act="gelu",
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    hf = _build(VideoLlavaForConditionalGeneration, config)
    g = torch.Generator().manual_seed(3)
    B, F, seq = 5, 8, 13
    per_frame, per_image = 1 + 15 * 15, 15 * 15  # video frames keep CLS; "default" drops it for images
    ids = _ids(B, seq - 2 + F * per_frame + per_image, 99 - 1, g) + 1
    ids[(ids == 0) | (ids == 1)] = 3
    ids[:, : F * per_frame] = 1
    ids[:, F * per_frame : F * per_frame + per_image] = 0
    kwargs = {
        "pixel_values_videos": _floats((B, F, 3, 30, 30), g),
        "pixel_values_images": _floats((B, 3, 30, 30), g),
        "input_ids": ids,
        "attention_mask": ids.ne(1) | True,
    }
    kwargs["attention_mask"] = torch.ones_like(ids)
    return Tester("video_llava", hf, kwargs, kwargs)


def qwen2_5_vl() -> Tester:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    config = Qwen2_5_VLConfig(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        hidden_act="silu",
        max_position_embeddings=512,
        max_window_layers=3,
        model_type="qwen2_5_vl",
        vision_config={
            "depth": 2,
            "in_chans": 3,
            "hidden_act": "silu",
            "intermediate_size": 32,
            "out_hidden_size": 32,
            "hidden_size": 32,
            "num_heads": 4,
            "patch_size": 14,
            "spatial_patch_size": 14,
            "spatial_merge_size": 1,
            "temporal_patch_size": 2,
        },
        rope_scaling={"type": "mrope", "mrope_section": [2, 1, 1]},
        rope_theta=10000,
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
        vision_start_token_id=3,
        image_token_id=4,
        video_token_id=5,
        vocab_size=99,
    )
    hf = _build(Qwen2_5_VLForConditionalGeneration, config)
    g = torch.Generator().manual_seed(4)
    B, n_image, seq = 3, 32, 7
    ids = _ids(B, seq + n_image, 99, g)
    ids[:, -1] = 2
    for tok in (5, 4, 3):
        ids[ids == tok] = 2
    ids[:, n_image] = 4
    ids[:, n_image - 1] = 3
    kwargs = {
        "pixel_values": _floats((B * 1, 3 * 14 * 14 * 2), g),
        "image_grid_thw": torch.tensor([[1, 1, 1]] * B),
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
    }
    # test_video_forward: 4 frames → 2 temporal patches of 1×1, inserted after <|vision_start|>
    vids = _ids(B, seq + n_image, 99, g)
    vids[:, -1] = 2
    for tok in (5, 4, 3):
        vids[vids == tok] = 2
    vids[:, n_image - 1] = 3
    vids[:, n_image : n_image + 2] = 5
    video = {
        "pixel_values_videos": _floats((B * 2, 3 * 2 * 14 * 14), g),
        "video_grid_thw": torch.tensor([[2, 1, 1]] * B),
        "second_per_grid_ts": torch.tensor([1.0] * B),
        "input_ids": vids,
        "attention_mask": torch.ones_like(vids),
    }
    return Tester("qwen2_5_vl", hf, kwargs, video)


def internvl() -> Tester:
    from transformers import InternVLConfig, InternVLForConditionalGeneration

    config = InternVLConfig(
        text_config={
            "model_type": "qwen2",
            "vocab_size": 99,
            "hidden_size": 128,
            "intermediate_size": 37,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "output_channels": 64,
            "hidden_act": "silu",
            "max_position_embeddings": 512,
            "rope_theta": 10000,
            "mlp_ratio": 4,
            "tie_word_embeddings": True,
            "bos_token_id": 0,
            "eos_token_id": 0,
            "pad_token_id": 0,
        },
        vision_config={
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 128,
            "image_size": 64,
            "patch_size": 4,
            "num_channels": 3,
            "hidden_act": "quick_gelu",
            "use_absolute_position_embeddings": True,
        },
        model_type="internvl",
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
        image_token_id=1,
        image_seq_length=64,
        vision_feature_layer=-1,
    )
    hf = _build(InternVLForConditionalGeneration, config)
    g = torch.Generator().manual_seed(5)
    B, n_image, seq = 3, 64, 7
    ids = _ids(B, seq + n_image, 99, g)
    ids[ids == 1] = 0
    ids[:, :n_image] = 1
    kwargs = {"pixel_values": _floats((B, 3, 64, 64), g), "input_ids": ids, "attention_mask": torch.ones_like(ids)}
    F = 2  # a 2-frame "video": two 64-token tiles per row, read as frames
    vids = _ids(B, seq + F * n_image, 99, g)
    vids[vids == 1] = 0
    vids[:, 2 : 2 + F * n_image] = 1
    video = {"pixel_values": _floats((B * F, 3, 64, 64), g), "input_ids": vids, "attention_mask": torch.ones_like(vids)}
    return Tester("internvl", hf, kwargs, video, images_as_frames=True)


def perception_lm() -> Tester:
    """PerceptionLMVisionText2TextModelTester: a 14-pixel tile of timm's PE (patch 14, so one patch,
    CLS dropped, no pooling: one token a tile), tied embeddings, one image and one video token a
    row. The config does not spell out the patch size (timm's architecture does), and there is no
    processor: the layout's grids come from the placeholder counts."""
    from transformers import PerceptionLMConfig, PerceptionLMForConditionalGeneration

    config = PerceptionLMConfig(
        text_config={"model_type": "llama", **_LM_COMMON, "max_position_embeddings": 512, "pad_token_id": 1},
        vision_config={
            "architecture": "vit_pe_core_large_patch14_336",
            "model_args": {
                "embed_dim": 64,
                "img_size": (14, 14),
                "depth": 2,
                "global_pool": "",
                "use_post_transformer_norm": False,
                "init_values": 0.1,
                "ref_feat_shape": (1, 1),
            },
        },
        vision_use_cls_token=True,
        image_token_id=0,
        video_token_id=2,
        tie_word_embeddings=True,
        projector_pooling_ratio=1,
    )
    hf = _build(PerceptionLMForConditionalGeneration, config)
    g = torch.Generator().manual_seed(6)
    B, seq = 3, 7
    ids = _ids(B, seq + 1, 99 - 2, g) + 2
    ids[(ids == 0) | (ids == 2)] = 1
    ids[:, :1] = 0
    ids[:, 1:2] = 2
    kwargs = {
        "pixel_values": _floats((B, 1, 3, 14, 14), g),
        "pixel_values_videos": _floats((B, 1, 3, 14, 14), g),
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
    }
    F = 4  # a video variant with 4 one-token frames, for the knockouts
    vids = _ids(B, seq + F, 99 - 3, g) + 3
    vids[:, 1 : F + 1] = 2
    video = {
        "pixel_values_videos": _floats((B, F, 3, 14, 14), g),
        "input_ids": vids,
        "attention_mask": torch.ones_like(vids),
    }
    return Tester("perception_lm", hf, kwargs, video)


def _types(ids: torch.Tensor, image: torch.Tensor | None = None, video: torch.Tensor | None = None) -> torch.Tensor:
    """mm_token_type_ids as the processors write them: 0 text, 1 image, 2 video (transformers 5's
    Qwen3-VL and GLM-4.1V refuse grids without them: their M-RoPE is computed from these types)."""
    types = torch.zeros_like(ids)
    for value, where in ((1, image), (2, video)):
        if where is not None:
            types[where] = value
    return types


def qwen3_vl() -> Tester:
    """Qwen3VLVisionText2TextModelTester: its config, its image inputs (one 1×1-grid image per
    row after <|vision_start|>) and test_video_forward's video (4 frames = 2 temporal groups,
    each its own [1, 1, 1] grid after its own <|vision_start|>), with mm_token_type_ids added."""
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    config = Qwen3VLConfig(
        text_config={
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 2,
            "hidden_act": "silu",
            "head_dim": 8,
            "hidden_size": 32,
            "vocab_size": 99,
            "intermediate_size": 37,
            "max_position_embeddings": 512,
            "model_type": "qwen3_vl",
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "num_key_value_heads": 2,
            "rope_theta": 10000,
            "tie_word_embeddings": True,
            "rope_parameters": {"rope_type": "default", "mrope_section": [16, 8, 8], "mrope_interleaved": True},
        },
        vision_config={
            "depth": 2,
            "in_chans": 3,
            "hidden_act": "gelu_pytorch_tanh",
            "intermediate_size": 32,
            "out_hidden_size": 32,
            "hidden_size": 32,
            "num_heads": 4,
            "patch_size": 16,
            "spatial_merge_size": 1,
            "temporal_patch_size": 2,
            "num_position_embeddings": 16,
            "deepstack_visual_indexes": [0, 1],
        },
        image_token_id=3,
        video_token_id=4,
        vision_start_token_id=5,
        vision_end_token_id=6,
        tie_word_embeddings=True,
    )
    hf = _build(Qwen3VLForConditionalGeneration, config)
    g = torch.Generator().manual_seed(6)
    B, n_image, seq, P = 3, 32, 7, 16

    def text(n):
        ids = _ids(B, n, 99, g)
        ids[:, -1] = 2
        for tok in (3, 4, 5, 6):  # the tester clears 3-5; 6 too, so no stray <|vision_end|>
            ids[ids == tok] = 2
        return ids

    ids = text(seq + n_image)
    ids[:, n_image] = 3
    ids[:, n_image - 1] = 5
    kwargs = {
        "pixel_values": _floats((B * 1, 3 * P * P * 2), g),
        "image_grid_thw": torch.tensor([[1, 1, 1]] * B),
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "mm_token_type_ids": _types(ids, image=ids == 3),
    }
    groups = 2  # test_video_forward: F=4 frames, temporal patch 2
    vids = text(seq + n_image)
    for gi in range(groups):
        vids[:, n_image + 2 * gi] = 5
        vids[:, n_image + 2 * gi + 1] = 4
    video = {
        "pixel_values_videos": _floats((B * groups, 3 * 2 * P * P), g),
        "video_grid_thw": torch.tensor([[1, 1, 1]] * groups * B),
        "input_ids": vids,
        "attention_mask": torch.ones_like(vids),
        "mm_token_type_ids": _types(vids, video=vids == 4),
    }
    return Tester("qwen3_vl", hf, kwargs, video)


def glm4v() -> Tester:
    """Glm4vVisionText2TextModelTester: its config and image inputs (one 8×8-grid image per row,
    <|begin_of_image|> … <|end_of_image|> at the start). Its tester has no video: the video
    variant is the processor's format at tester size (<|begin_of_video|>, per temporal group
    <|begin_of_image|> 2×2 <|image|> <|end_of_image|> and a one-token timestamp,
    <|end_of_video|>), the video's tokens typed 2 as Glm4vProcessor types them."""
    from transformers import Glm4vConfig, Glm4vForConditionalGeneration

    config = Glm4vConfig(
        text_config={
            "vocab_size": 99,
            "hidden_size": 16,
            "intermediate_size": 22,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "output_channels": 64,
            "hidden_act": "silu",
            "max_position_embeddings": 512,
            "rope_parameters": {"type": "default", "mrope_section": [2, 1, 1]},
            "rope_theta": 10000,
            "tie_word_embeddings": True,
            "bos_token_id": 0,
            "eos_token_id": 0,
            "pad_token_id": 0,
        },
        vision_config={
            "depth": 2,
            "hidden_act": "silu",
            "hidden_size": 48,
            "out_hidden_size": 16,
            "intermediate_size": 22,
            "patch_size": 14,
            "spatial_merge_size": 1,
            "temporal_patch_size": 2,
        },
        image_token_id=7,
        video_token_id=8,
        video_start_token_id=3,
        video_end_token_id=4,
        image_start_token_id=5,
        image_end_token_id=6,
    )
    hf = _build(Glm4vForConditionalGeneration, config)
    g = torch.Generator().manual_seed(7)
    B, n_image, seq, P = 3, 64, 7, 14

    def text(n):
        ids = _ids(B, n, 99, g)
        for tok in (3, 4, 5, 6, 7, 8):
            ids[ids == tok] = 0
        return ids

    ids = text(seq + n_image)
    ids[:, 0] = 5
    ids[:, 1 : 1 + n_image] = 7
    ids[:, 1 + n_image] = 6
    kwargs = {
        "pixel_values": _floats((B * n_image, 3 * P * P * 2), g),
        "image_grid_thw": torch.tensor([[1, 8, 8]] * B),
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "mm_token_type_ids": _types(ids, image=ids == 7),
    }
    groups, k = 2, 4  # 4 frames of 28×28: 2 temporal groups of 2×2 patches
    vids = text(seq + 2 + groups * (k + 3))
    at = 1
    vids[:, at] = 3
    for _ in range(groups):
        vids[:, at + 1] = 5
        vids[:, at + 2 : at + 2 + k] = 7
        vids[:, at + 2 + k] = 6
        at += k + 3  # the timestamp: the random token after <|end_of_image|>
    vids[:, at + 1] = 4
    video = {
        "pixel_values_videos": _floats((B * groups * k, 3 * 2 * P * P), g),
        "video_grid_thw": torch.tensor([[groups, 2, 2]] * B),
        "input_ids": vids,
        "attention_mask": torch.ones_like(vids),
        "mm_token_type_ids": _types(vids, video=vids == 7),
    }
    return Tester("glm4v", hf, kwargs, video)


TESTERS = {
    "llava_onevision": llava_onevision,
    "llava_next_video": llava_next_video,
    "video_llava": video_llava,
    "qwen2_5_vl": qwen2_5_vl,
    "internvl": internvl,
    "perception_lm": perception_lm,
    "qwen3_vl": qwen3_vl,
    "glm4v": glm4v,
}
