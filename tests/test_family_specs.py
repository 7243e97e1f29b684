"""Family specs and the registry: frozen specs, one registry keyed by config.json (HF-native
families and release formats), every HF language-model key used or dropped, and the rotary
modules equal to HF's (1-D, Qwen2.5-VL's chunked M-RoPE, Qwen3-VL's interleaved M-RoPE)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from vlens import HookedVideoLLM, testing
from vlens.components.rotary import MRotary, Rotary
from vlens.families import (
    FAMILIES,
    REGISTRY,
    UnsupportedModelError,
    check_weight_coverage,
    family_for,
    resolve,
)


def test_specs_are_frozen():
    for fam in FAMILIES:
        assert dataclasses.is_dataclass(fam) and type(fam).__dataclass_params__.frozen
        with pytest.raises(dataclasses.FrozenInstanceError):
            fam.anything = 1


def test_registry_resolves_native_and_release_configs():
    for fam in FAMILIES:
        for arch in fam.architectures:
            assert resolve({"architectures": [arch]}).family is fam
    llava = resolve({"architectures": ["LlavaQwenForCausalLM"], "mm_patch_merge_type": "unires"})
    assert llava.is_release and llava.converter.__name__.endswith("llava_qwen_release")
    assert resolve({"architectures": ["InternVLChatModel"]}).converter.__name__.endswith("internvideo2_5")
    with pytest.raises(UnsupportedModelError, match="release format"):
        family_for("LlavaQwenForCausalLM")


@pytest.mark.parametrize("config", [{"architectures": ["GPT2LMHeadModel"]}, {}])
def test_unknown_config_lists_every_entry(config):
    with pytest.raises(UnsupportedModelError) as err:
        resolve(config)
    for reg in REGISTRY:
        for arch in reg.architectures:
            assert arch in str(err.value)


def test_every_lm_key_is_used_or_dropped(tmp_path):
    """A family whose weight table misses an LM key is refused at load, naming the key; listing
    it in dropped_keys makes the omission deliberate."""
    path = testing.make_tiny_qwen2_5_vl(tmp_path / "ckpt", n_layers=1)
    model = HookedVideoLLM.from_pretrained(path)
    fam, cfg, hf = model.family, model.cfg, model.hf_model
    check_weight_coverage(fam, cfg, hf)

    class Partial(type(fam)):
        def weight_table(self, cfg):
            t = super().weight_table(cfg)
            del t["blocks.0.mlp.up_proj.weight"]
            return t

    with pytest.raises(KeyError, match=r"layers.0.mlp.up_proj.weight"):
        check_weight_coverage(Partial(), cfg, hf)

    class Dropping(Partial):
        def dropped_keys(self, cfg):
            return frozenset({"model.language_model.layers.0.mlp.up_proj.weight"})

    check_weight_coverage(Dropping(), cfg, hf)


def _positions(batch=2, n=11, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 50, (3, batch, n), generator=g)


def _hf_rotary(cls, text_cfg_cls, d_head, sections):
    cfg = text_cfg_cls(
        hidden_size=d_head * 2,
        num_attention_heads=2,
        head_dim=d_head,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": list(sections)},
    )
    return cls(cfg)


@pytest.mark.parametrize("d_head,sections", [(16, (2, 3, 3)), (32, (4, 6, 6)), (128, (16, 24, 24))])
def test_mrotary_equals_qwen2_5_vl(d_head, sections):
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as m
    from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import (
        Qwen2_5_VLTextConfig,
    )

    hf = _hf_rotary(m.Qwen2_5_VLRotaryEmbedding, Qwen2_5_VLTextConfig, d_head, sections)
    pos = _positions()
    ref = hf(torch.zeros(1, dtype=torch.float32), pos)
    ours = MRotary(d_head, 10000.0, sections)(pos, torch.float32)
    for a, b in zip(ours, ref):
        assert a.shape == (2, 11, d_head) and torch.equal(a, b)


@pytest.mark.parametrize("d_head,sections", [(16, (2, 3, 3)), (32, (6, 5, 5)), (128, (24, 20, 20))])
def test_interleaved_mrotary_equals_qwen3_vl(d_head, sections):
    from transformers.models.qwen3_vl import modeling_qwen3_vl as m
    from transformers.models.qwen3_vl.configuration_qwen3_vl import Qwen3VLTextConfig

    hf = _hf_rotary(m.Qwen3VLTextRotaryEmbedding, Qwen3VLTextConfig, d_head, sections)
    pos = _positions(seed=1)
    ref = hf(torch.zeros(1, dtype=torch.float32), pos)
    ours = MRotary(d_head, 10000.0, sections, interleaved=True)(pos, torch.float32)
    for a, b in zip(ours, ref):
        assert torch.equal(a, b)
    # text (all three axes equal) is plain 1-D RoPE, whichever assignment
    text = pos[0]
    for a, b in zip(
        MRotary(d_head, 10000.0, sections, interleaved=True)(text, torch.float32), Rotary(d_head)(text, torch.float32)
    ):
        assert torch.equal(a, b)


def test_rotary_refuses_bad_shapes():
    with pytest.raises(ValueError, match="summing to d_head/2"):
        MRotary(16, 10000.0, (2, 2, 2))
    with pytest.raises(ValueError, match=r"covers 3 of the d_head/2 = 8"):
        MRotary(16, 10000.0, (1, 1, 1), interleaved=True)
    with pytest.raises(ValueError, match=r"\[batch, pos\]"):
        Rotary(16)(torch.zeros(3, 1, 4, dtype=torch.long), torch.float32)
    with pytest.raises(ValueError, match=r"\[3, batch, pos\]"):
        MRotary(16, 10000.0, (2, 3, 3))(torch.zeros(2, 1, 4, dtype=torch.long), torch.float32)
