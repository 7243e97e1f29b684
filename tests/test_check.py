"""`vlens check`: parameters and bytes of the real LLaVA-OneVision configs (tests/real_configs.py,
published facts) against a parameter count of the meta-device model; the layout, tokens per
frame and cache bytes of a tiny checkpoint against what a real `run_with_cache` keeps; a hub id
checked offline from a cache that holds no weights; bad input."""

from __future__ import annotations

import shutil

import huggingface_hub.constants
import numpy as np
import pytest
import torch

from vlens import HookedVideoLLM
from vlens.check import check, check_config, meta_model
from vlens.cli import main
from vlens.model.cache_memory import NXN_HOOKS
from vlens.testing import real_configs, write_hub_cache


@pytest.mark.parametrize("name", list(real_configs.REAL))
def test_real_config_figures_equal_the_meta_models_count(name):
    build, text = real_configs.REAL[name]
    config = build()
    tpf = real_configs.TOKENS_PER_FRAME[name]
    report = check_config(
        config, name=name, frames=(8, 32), dtypes=("bfloat16", "float32"), tokens_per_frame=tpf, text_positions=30
    )
    hf = meta_model(config)  # counted here independently of vlens.check
    assert all(p.is_meta for p in hf.parameters())
    lm = {id(p): p for p in hf.get_submodule("model.language_model").parameters()}
    lm.update({id(p): p for p in hf.get_submodule("lm_head").parameters()})
    assert report.params.decoder == report.params.meta_decoder == sum(p.numel() for p in lm.values())
    total = sum(p.numel() for p in hf.parameters())
    assert report.params.total == total and report.params.vision == total - report.params.decoder
    L, H, K, D = (text[k] for k in ("num_hidden_layers", "num_attention_heads", "num_key_value_heads", "hidden_size"))
    for row in report.rows:
        size = {"bfloat16": 2, "float32": 4}[row.dtype]
        assert row.positions == 30 + tpf * row.frames
        assert row.weights == total * size
        assert row.kv_cache == 2 * L * K * (D // H) * row.positions * size
        assert row.attention_patterns == 2 * L * H * row.positions**2 * size  # scores + pattern, every layer
    if name.endswith("7b-ov-hf"):
        # Qwen2-7B (152128-token resized vocab, untied) + SigLIP-so400m minus its last layer + projector:
        # the hub lists this checkpoint at 8.03B parameters, 16.1 GB in bfloat16
        assert 8.03e9 <= total < 8.04e9
        assert report.rows[0].weights == pytest.approx(16.06e9, rel=1e-3)
    elif name.endswith("0.5b-ov-hf"):
        assert 0.89e9 <= total < 0.90e9  # listed at 0.89B; Qwen2-0.5B ties its embeddings
    else:  # Qwen2.5-VL-7B: listed at 8.29B; the module shapes of its published module tree
        assert 8.29e9 <= total < 8.30e9
        visual = hf.get_submodule("model.visual")
        assert tuple(visual.get_submodule("merger.mlp.0").weight.shape) == (5120, 5120)
        assert tuple(visual.get_submodule("merger.mlp.2").weight.shape) == (3584, 5120)
        assert tuple(visual.get_submodule("blocks.31.mlp.gate_proj").weight.shape) == (3420, 1280)
        assert tuple(visual.get_submodule("patch_embed.proj").weight.shape) == (1280, 3, 2, 14, 14)


def test_tiny_checkpoint_layout_and_bytes_are_what_a_real_forward_keeps(onevision_dir, model):
    report = check(onevision_dir, frames=(2, 4), dtypes=("float32",), frame_size=(32, 32), device="cpu")
    assert report.family == "llava-onevision"
    assert report.tokens_per_frame == 4  # ⌈(32/8)/2⌉² pooled patches per frame
    assert report.params.total == sum(p.numel() for p in model.hf_model.parameters())
    for row in report.rows:
        inputs = model.to_inputs(
            np.zeros((row.frames, 32, 32, 3), np.uint8), "What happens in the video?", n_frames=row.frames
        )
        assert row.positions == inputs.seq_len
        with torch.no_grad():
            _, cache = model.run_with_cache(inputs, names_filter=lambda n: not n.endswith(NXN_HOOKS))
            _, nxn = model.run_with_cache(
                inputs, names_filter=lambda n: n.endswith(NXN_HOOKS) and not n.startswith("vision.")
            )
        kept = sum(t.numel() * t.element_size() for t in cache.values())
        # the plan counts video features at every position (no layout): an upper bound by that hook only
        feats = cache["hook_video_features"]
        slack = (row.positions - feats.shape[1]) * feats.shape[-1] * 4
        assert kept <= row.activation_cache <= kept + slack
        assert row.attention_patterns == sum(t.numel() * t.element_size() for t in nxn.values())
        assert row.kv_cache == sum(cache[f"blocks.{l}.attn.hook_k"].numel() * 2 * 4 for l in range(model.cfg.n_layers))
    assert report.rows[0].fits is not None and "video tokens per frame: 4" in str(report)


def test_a_hub_id_is_checked_offline_without_its_weights(onevision_dir, tmp_path, monkeypatch):
    no_weights = tmp_path / "no_weights"
    shutil.copytree(onevision_dir, no_weights, ignore=shutil.ignore_patterns("*.safetensors"))
    cache = tmp_path / "hub"
    write_hub_cache(no_weights, cache, "vlens-test/tiny-ov")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    report = check("vlens-test/tiny-ov", frames=(2,), dtypes=("bfloat16",), frame_size=(32, 32))
    assert report.model == "vlens-test/tiny-ov" and report.tokens_per_frame == 4
    with pytest.raises(OSError, match=r"no file named model\.safetensors"):
        HookedVideoLLM.from_pretrained("vlens-test/tiny-ov")  # no weights there: loading cannot work


def test_bad_input_is_named(onevision_dir):
    config = real_configs.REAL["llava-onevision-qwen2-0.5b-ov-hf"][0]()
    with pytest.raises(ValueError, match=r"dtypes \['int8'\]"):
        check_config(config, dtypes=("int8",), tokens_per_frame=196, text_positions=30)
    with pytest.raises(ValueError, match="frame counts ≥ 1"):
        check_config(config, frames=(0,), tokens_per_frame=196, text_positions=30)
    with pytest.raises(ValueError, match="tokens_per_frame= and text_positions="):
        check_config(config)


def test_cli_prints_the_plan(onevision_dir, capsys):
    assert main(["check", str(onevision_dir), "--frames", "2,4", "--dtype", "bfloat16", "--size", "32x32"]) == 0
    out = capsys.readouterr().out
    assert "family llava-onevision" in out and "bfloat16" in out and "video tokens per frame: 4" in out
    assert main(["check", str(onevision_dir), "--size", "32by32"]) == 2
    assert "--size takes HxW" in capsys.readouterr().err
    assert main(["check", str(onevision_dir), "--dtype", "int8", "--size", "32x32", "--frames", "2"]) == 2
    assert "int8" in capsys.readouterr().err
    assert main(["check", "/nonexistent/ckpt"]) == 2
