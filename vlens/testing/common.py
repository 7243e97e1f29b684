"""What the tiny checkpoint builders share: LM/vision config kwargs, random weights, saving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vlens.families.hf_progress import hf_progress_bars_off


def randomise(model: torch.nn.Module, std: float = 0.08) -> None:
    # HF's init gives near-zero LM outputs at this size; a wider normal makes logits differ
    # visibly between inputs, so parity and knockout tests measure something.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name or "layer_norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0.0, std)


def lm_kwargs(
    tokenizer, *, n_layers: int, d_model: int, n_heads: int, n_kv_heads: int, d_mlp: int, vocab_size: int | None = None
) -> dict[str, Any]:
    """The tiny LM's shape and special-token ids as HF text-config kwargs. `vocab_size` larger
    than the tokenizer adds unused embedding rows."""
    return dict(
        vocab_size=max(len(tokenizer), vocab_size or 0),
        hidden_size=d_model,
        intermediate_size=d_mlp,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv_heads,
        max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )


def text_config(kind: str, tokenizer, *, tie: bool = False, **sizes):
    """The tiny LM's HF config: "qwen2" (RMSNorm eps 1e-6, q/k/v biases) or "llama" (eps 1e-5, no
    attention biases); `sizes` as `lm_kwargs` takes them."""
    from transformers import LlamaConfig, Qwen2Config

    common: dict[str, Any] = {**lm_kwargs(tokenizer, **sizes), "tie_word_embeddings": tie}
    if kind == "llama":
        return LlamaConfig(**common, rms_norm_eps=1e-5, attention_bias=False)
    return Qwen2Config(**common, rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, rms_norm_eps=1e-6)


def token_id(tokenizer, token: str) -> int:
    """The id of one token (HF types `convert_tokens_to_ids` as int | list[int]; one string gives an int)."""
    i = tokenizer.convert_tokens_to_ids(token)
    assert isinstance(i, int), i
    return i


def vision_config(config_cls, vision_d: int, vision_layers: int, image_size: int, patch_size: int, **extra):
    """A tiny vision tower's HF config (CLIP, SigLIP, InternViT): 2 heads, MLP width 2·vision_d."""
    return config_cls(
        hidden_size=vision_d,
        intermediate_size=2 * vision_d,
        num_hidden_layers=vision_layers,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch_size,
        **extra,
    )


def save_checkpoint(model, processor, tokenizer, path: Path, dtype: torch.dtype) -> Path:
    """Randomise (after the caller seeded torch), save model and processor with save_pretrained."""
    model.eval()
    randomise(model)
    model.to(dtype)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    with hf_progress_bars_off():
        model.save_pretrained(path)
        processor.save_pretrained(path)
    return path
