"""The study's models in their authors' own release formats (vlens/families/*release*, internvideo2_5)."""

from __future__ import annotations

from pathlib import Path

import torch

from vlens.testing.common import text_config, vision_config
from vlens.testing.tokenizer import build_word_tokenizer, word_tokenizer_with


def save_release(path: Path, config: dict, state: dict, tokenizer) -> Path:
    """config.json + model.safetensors + tokenizer files, as the authors' releases ship them."""
    import json

    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.contiguous() for k, v in state.items()}, str(path / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(path)
    return path


def random_like_release(state: dict, std: float = 0.08) -> dict:
    # the same widening as randomise: norms near 1, other tensors N(0, std)
    out = {}
    for k, v in state.items():
        if "norm" in k and k.endswith("weight"):
            out[k] = 1.0 + 0.1 * torch.randn_like(v)
        else:
            out[k] = torch.randn_like(v) * std
    return out


def tiny_llava_qwen_release(
    path,
    *,
    tower: str,
    merge_type: str,
    config_extra: dict,
    seed: int,
    n_layers: int,
    d_model: int,
    n_heads: int,
    n_kv_heads: int,
    d_mlp: int,
    image_size: int,
    patch_size: int,
    vision_layers: int,
    vision_d: int,
    dtype,
) -> Path:
    from transformers import (
        CLIPVisionConfig,
        CLIPVisionModel,
        Qwen2Config,
        Qwen2ForCausalLM,
        SiglipVisionConfig,
        SiglipVisionModel,
    )

    path = Path(path)
    torch.manual_seed(seed)
    tokenizer = build_word_tokenizer()
    vocab = len(tokenizer) + 8  # Qwen releases have spare embedding rows beyond the tokenizer
    text = text_config(
        "qwen2",
        tokenizer,
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        d_mlp=d_mlp,
        vocab_size=vocab,
    )
    assert isinstance(text, Qwen2Config)  # text_config("qwen2", ...)
    state = dict(Qwen2ForCausalLM(text).state_dict())  # model.embed_tokens / model.layers / model.norm / lm_head
    # the vision tower as the hub publishes it: its config in a folder that mm_vision_tower names
    if tower == "clip":
        vcfg = vision_config(CLIPVisionConfig, vision_d, vision_layers, image_size, patch_size, projection_dim=vision_d)
        tower_state = CLIPVisionModel(vcfg).state_dict()
    else:
        vcfg = vision_config(SiglipVisionConfig, vision_d, vision_layers, image_size, patch_size, vision_use_head=False)
        tower_state = SiglipVisionModel(vcfg).state_dict()
        # LLaVA's SigLipVisionTower deletes the last layer before training: the release holds the rest
        last = f"encoder.layers.{vision_layers - 1}."
        tower_state = {k: v for k, v in tower_state.items() if last not in k}
    vcfg.save_pretrained(path / "vision_tower")
    for k, v in tower_state.items():
        key = k if k.startswith("vision_model.") else "vision_model." + k
        state["model.vision_tower.vision_tower." + key] = v
    state["model.mm_projector.0.weight"] = torch.empty(d_model, vision_d)
    state["model.mm_projector.0.bias"] = torch.empty(d_model)
    state["model.mm_projector.2.weight"] = torch.empty(d_model, d_model)
    state["model.mm_projector.2.bias"] = torch.empty(d_model)
    if "unpad" in merge_type:
        state["model.image_newline"] = torch.empty(d_model)
    state = {k: v.to(dtype) for k, v in random_like_release(state).items()}
    config = {
        "architectures": ["LlavaQwenForCausalLM"],
        "model_type": "llava_qwen",
        "hidden_size": d_model,
        "intermediate_size": d_mlp,
        "num_hidden_layers": n_layers,
        "num_attention_heads": n_heads,
        "num_key_value_heads": n_kv_heads,
        "max_position_embeddings": 4096,
        "rope_theta": 10000.0,
        "rms_norm_eps": 1e-6,
        "vocab_size": vocab,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "use_sliding_window": False,
        "sliding_window": 4096,
        "bos_token_id": None,
        "eos_token_id": tokenizer.eos_token_id,
        "torch_dtype": str(dtype).removeprefix("torch."),
        "mm_hidden_size": vision_d,
        "mm_patch_merge_type": merge_type,
        "mm_projector_type": "mlp2x_gelu",
        "mm_resampler_type": None,
        "mm_use_im_patch_token": False,
        "mm_use_im_start_end": False,
        "mm_vision_select_feature": "patch",
        "mm_vision_select_layer": -2,
        "mm_vision_tower": "vision_tower",
        "use_mm_proj": True,
        "image_aspect_ratio": "anyres",
        **config_extra,
    }
    return save_release(path, config, state, tokenizer)


def make_tiny_longva(
    path: str | Path,
    *,
    seed: int = 0,
    n_layers: int = 2,
    d_model: int = 64,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    d_mlp: int = 128,
    image_size: int = 32,
    patch_size: int = 8,
    vision_layers: int = 3,
    vision_d: int = 32,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """A tiny random LongVA release (LlavaQwenForCausalLM, "unires" merge, CLIP tower with CLS,
    `mm_vision_select_layer` −2, average pool stride 2), in LongVA's own key layout and config.

    Each frame: the P×P patch grid (P = image_size // patch_size) projected then 2×2 average
    pooled: (P/2)² tokens, no newline. The defaults give 2·2 = 4 tokens a frame."""
    return tiny_llava_qwen_release(
        path,
        tower="clip",
        merge_type="unires",
        config_extra={
            "mm_spatial_pool_mode": "average",
            "mm_spatial_pool_stride": 2,
            "image_grid_pinpoints": [[image_size, image_size]],
        },
        seed=seed,
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        d_mlp=d_mlp,
        image_size=image_size,
        patch_size=patch_size,
        vision_layers=vision_layers,
        vision_d=vision_d,
        dtype=dtype,
    )


def make_tiny_llava_next_video_qwen(
    path: str | Path,
    *,
    seed: int = 0,
    n_layers: int = 2,
    d_model: int = 64,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    d_mlp: int = 128,
    image_size: int = 40,
    patch_size: int = 8,
    vision_layers: int = 3,
    vision_d: int = 32,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """A tiny random LLaVA-NeXT-Video-32B-Qwen release (LlavaQwenForCausalLM, "spatial_unpad"
    merge, SigLIP tower whose last layer LLaVA deleted, `image_newline`), in the release's key layout.

    The authors' inference pools average, stride 2, newline "grid": an odd P×P grid (P = 5 here,
    27 in the release) pools to ⌊P/2⌋² and every pooled row ends with the newline: 2·(2+1) = 6
    tokens a frame with the defaults."""
    return tiny_llava_qwen_release(
        path,
        tower="siglip",
        merge_type="spatial_unpad",
        config_extra={"image_grid_pinpoints": [[image_size, image_size]]},
        seed=seed,
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        d_mlp=d_mlp,
        image_size=image_size,
        patch_size=patch_size,
        vision_layers=vision_layers,
        vision_d=vision_d,
        dtype=dtype,
    )


def make_tiny_internvideo2_5(
    path: str | Path,
    *,
    seed: int = 0,
    n_layers: int = 2,
    d_model: int = 64,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    d_mlp: int = 128,
    image_size: int = 48,
    patch_size: int = 4,
    vision_layers: int = 2,
    vision_d: int = 32,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """A tiny random InternVideo2.5 release (remote-code `InternVLChatModel` layout: InternViT with
    fused qkv and layer scale, `mlp1`, InternLM2 with fused `wqkv`, `output`), config.json with
    `vision_config` / `llm_config` as the release writes it.

    Each frame: (P/2)² shuffled tokens (P = image_size // patch_size: 6·6 = 36 with the defaults);
    the release's HiCo compression merges every group of 4 frames to 64 tokens (16 a frame), so
    frames must come in multiples of 4."""
    path = Path(path)
    torch.manual_seed(seed)
    tokenizer = word_tokenizer_with(new_special=["<img>", "</img>", "<IMG_CONTEXT>"])
    V, D, C, dh = len(tokenizer), d_model, vision_d, d_model // n_heads
    n_patches = (image_size // patch_size) ** 2
    st: dict = {
        "vision_model.embeddings.class_embedding": torch.empty(1, 1, C),
        "vision_model.embeddings.patch_embedding.weight": torch.empty(C, 3, patch_size, patch_size),
        "vision_model.embeddings.patch_embedding.bias": torch.empty(C),
        "vision_model.embeddings.position_embedding": torch.empty(1, 1 + n_patches, C),
        "mlp1.0.weight": torch.empty(4 * C),
        "mlp1.0.bias": torch.empty(4 * C),
        "mlp1.1.weight": torch.empty(D, 4 * C),
        "mlp1.1.bias": torch.empty(D),
        "mlp1.3.weight": torch.empty(D, D),
        "mlp1.3.bias": torch.empty(D),
        "language_model.model.tok_embeddings.weight": torch.empty(V, D),
        "language_model.model.norm.weight": torch.empty(D),
        "language_model.output.weight": torch.empty(V, D),
    }
    for i in range(vision_layers):
        p = f"vision_model.encoder.layers.{i}."
        st.update(
            {
                p + "attn.qkv.weight": torch.empty(3 * C, C),
                p + "attn.qkv.bias": torch.empty(3 * C),
                p + "attn.proj.weight": torch.empty(C, C),
                p + "attn.proj.bias": torch.empty(C),
                p + "ls1": torch.empty(C),
                p + "ls2": torch.empty(C),
                p + "norm1.weight": torch.empty(C),
                p + "norm1.bias": torch.empty(C),
                p + "norm2.weight": torch.empty(C),
                p + "norm2.bias": torch.empty(C),
                p + "mlp.fc1.weight": torch.empty(2 * C, C),
                p + "mlp.fc1.bias": torch.empty(2 * C),
                p + "mlp.fc2.weight": torch.empty(C, 2 * C),
                p + "mlp.fc2.bias": torch.empty(C),
            }
        )
    for i in range(n_layers):
        p = f"language_model.model.layers.{i}."
        st.update(
            {
                p + "attention.wqkv.weight": torch.empty((n_heads + 2 * n_kv_heads) * dh, D),
                p + "attention.wo.weight": torch.empty(D, D),
                p + "attention_norm.weight": torch.empty(D),
                p + "ffn_norm.weight": torch.empty(D),
                p + "feed_forward.w1.weight": torch.empty(d_mlp, D),
                p + "feed_forward.w3.weight": torch.empty(d_mlp, D),
                p + "feed_forward.w2.weight": torch.empty(D, d_mlp),
            }
        )
    st = random_like_release(st)
    for k in st:  # InternViT's layer scales and norms near 1 (not N(0, 0.08)), as trained towers have them
        if k.endswith(("ls1", "ls2", "norm1.weight", "norm2.weight", "mlp1.0.weight")):
            st[k] = 1.0 + 0.1 * torch.randn_like(st[k])
    st = {k: v.to(dtype) for k, v in st.items()}
    config = {
        "architectures": ["InternVLChatModel"],
        "model_type": "internvl_chat",
        "auto_map": {
            "AutoConfig": "configuration_internvl_chat.InternVLChatConfig",
            "AutoModel": "modeling_internvl_chat_hico2.InternVLChatModel",
        },
        "downsample_ratio": 0.5,
        "dynamic_image_size": True,
        "force_image_size": image_size,
        "max_dynamic_patch": 12,
        "min_dynamic_patch": 1,
        "ps_version": "v2",
        "select_layer": -1,
        "template": "internvl2_5",
        "use_thumbnail": True,
        "torch_dtype": str(dtype).removeprefix("torch."),
        "llm_config": {
            "architectures": ["InternLM2ForCausalLM"],
            "model_type": "internlm2",
            "bias": False,
            "hidden_size": D,
            "intermediate_size": d_mlp,
            "num_hidden_layers": n_layers,
            "num_attention_heads": n_heads,
            "num_key_value_heads": n_kv_heads,
            "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-5,
            "rope_theta": 1000000,
            "rope_scaling": {"type": "dynamic", "factor": 2.0},
            "vocab_size": V,
            "hidden_act": "silu",
            "tie_word_embeddings": False,
            "pad_token_id": tokenizer.pad_token_id,
        },
        "vision_config": {
            "architectures": ["InternVisionModel"],
            "model_type": "intern_vit_6b",
            "hidden_size": C,
            "intermediate_size": 2 * C,
            "num_hidden_layers": vision_layers,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": patch_size,
            "qkv_bias": True,
            "qk_normalization": False,
            "norm_type": "layer_norm",
            "layer_norm_eps": 1e-6,
            "hidden_act": "gelu",
            "use_flash_attn": False,
        },
    }
    return save_release(path, config, st, tokenizer)
