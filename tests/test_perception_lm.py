"""PerceptionLM's own parts (the shared parity, knockout and generate checks are in
tests/test_families.py): images as thumbnail + tiles, inputs_from_hf without a processor, text
roles, `Edges` knockouts against the HF reference, Llama 3.1's scaled RoPE, the system message,
and the clear error when timm is missing. Nothing is downloaded (a socket guard proves it)."""

from __future__ import annotations

import socket
import sys

import pytest
import torch
import transformers
from conftest import frames
from hf_reference import hf_knockout
from test_roles import OPTIONS, QUESTION, check_roles

from vlens import HookedVideoLLM, testing
from vlens import knockout as ko
from vlens.families.perception_lm import MissingDependencyError
from vlens.inputs.layout import LayoutError
from vlens.inputs.prompts import mc_question
from vlens.inputs.roles import with_roles

ATOL = 1e-4
LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 10000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,
}


class _NoNetwork(socket.socket):
    def connect(self, *args, **kwargs):  # pragma: no cover - reaching it fails the test
        raise AssertionError(f"something tried to reach the network: {args}")


@pytest.fixture(scope="module")
def plm(tmp_path_factory):
    """(path, model, hf) of a tiny checkpoint, built and loaded with every socket connect refused."""
    real = socket.socket
    socket.socket = _NoNetwork
    try:
        path = testing.make_tiny_perception_lm(tmp_path_factory.mktemp("plm") / "ckpt", seed=0, n_layers=3)
        model = HookedVideoLLM.from_pretrained(path)
        hf = transformers.PerceptionLMForConditionalGeneration.from_pretrained(path, attn_implementation="sdpa").eval()
    finally:
        socket.socket = real
    return path, model, hf


def _diff(a, b, mask) -> float:
    return float((a - b)[mask.bool()].abs().max())


def test_images_are_thumbnail_then_tiles_and_match_hf(plm):
    """An image is its thumbnail then its tiles (the processor's thumb+tile), g² tokens each, laid
    out as `image` positions before the video; logits equal HF with image and video together."""
    _, model, hf = plm
    wide = frames(1, 32, 64, seed=3)[0]  # 1:2 → a 2×1 tile grid (+ the thumbnail)
    inputs = model.to_inputs(frames(2, seed=4), QUESTION, n_frames=2, images=[wide])
    n_tiles = inputs["pixel_values"].shape[1]
    assert n_tiles == 3
    lay, ids = inputs.layout, inputs["input_ids"][0]
    g = 32 // model.processor.patch_size // hf.config.projector_pooling_ratio
    assert int((ids == hf.config.image_token_id).sum()) == n_tiles * g * g == lay.counts()["image"]
    img = lay.positions("image")
    assert int(img[-1]) < int(lay.positions("video")[0]) and lay.n_images == 1
    assert list(zip(lay.row[img].tolist(), lay.col[img].tolist())) == [
        (r, c) for _ in range(n_tiles) for r in range(g) for c in range(g)
    ]
    with torch.no_grad():
        assert _diff(model(inputs), hf(**inputs).logits, inputs["attention_mask"]) <= ATOL
        only = model.to_inputs(None, QUESTION, images=wide)
        assert _diff(model(only), hf(**only).logits, only["attention_mask"]) <= ATOL
    assert model.to_str_tokens(inputs)[int(img[0])] == "<i0 r0 c0>"


def test_inputs_from_hf_without_a_processor_lays_out_by_the_count(plm, monkeypatch):
    """from_hf(hf, None) on a config that does not spell the patch size out (the released ones
    take it from the timm architecture): the pooled grid comes from the placeholder count; the
    layout equals the processor-built one and the logits equal HF's. A count that is no grid is
    a LayoutError, with or without the patch size."""
    _, model, hf = plm
    made = model.to_inputs(
        [frames(3, seed=1), frames(3, seed=2)],
        [QUESTION, "why"],
        n_frames=3,
        images=[[frames(1, 48, 32)[0]], [frames(1, 48, 32, seed=5)[0]]],
    )
    kwargs = {k: made[k] for k in ("input_ids", "attention_mask", "pixel_values", "pixel_values_videos")}
    broken = kwargs["input_ids"].clone()
    broken[0, int((broken[0] == hf.config.video_token_id).nonzero()[0])] = 0  # one video placeholder less
    with pytest.raises(LayoutError, match=r"95 <\|video\|> placeholder tokens, expected 6 tiles of the 4x4"):
        model.inputs_from_hf(dict(kwargs, input_ids=broken))
    monkeypatch.delitem(hf.config.vision_config.model_args, "patch_size")
    bare = HookedVideoLLM.from_hf(hf, None)
    assert bare.family.patch_size is None
    inputs = bare.inputs_from_hf(kwargs)
    for a, b in zip(inputs.layouts, made.layouts):
        assert a.segment == b.segment and torch.equal(a.frame, b.frame) and torch.equal(a.row, b.row)
        assert torch.equal(a.col, b.col) and torch.equal(a.image, b.image)
    with torch.no_grad():
        assert _diff(bare(inputs), hf(**kwargs).logits, kwargs["attention_mask"]) <= ATOL
    with pytest.raises(LayoutError, match="95 <\\|video\\|> placeholder tokens are not 6 square pooled grids"):
        bare.inputs_from_hf(dict(kwargs, input_ids=broken))


def test_roles_and_edges_knockouts_equal_hf(plm):
    """Text roles (question, options, answer prompt) on PerceptionLM's Llama-3 template, shown by
    to_str_tokens(roles=True); an `Edges` knockout over them equals HF with the same mask."""
    _, model, hf = plm
    inputs = with_roles(
        model, model.to_inputs(frames(2), mc_question(QUESTION, OPTIONS), n_frames=2), QUESTION, OPTIONS, answer="B"
    )
    check_roles(model, inputs)
    shown = model.to_str_tokens(inputs, roles=True)
    assert shown[-1].endswith("|last") and any(s.endswith("|option B*") for s in shown)
    assert any(s.endswith("|question") for s in shown)
    spec = ko.Edges("last", ("question", "option")) | ko.Edges(ko.option(correct=True), "vision") | ko.VT()
    for layers in ([1], [0, 2]):
        hooks = spec.hooks(inputs, layers=ko.layers(layers))
        blocked = hooks[0][1].blocked_full(inputs.seq_len, "cpu")
        with torch.no_grad():
            ours = model.run_with_hooks(inputs, fwd_hooks=hooks)
            with hf_knockout(hf, dict.fromkeys(layers, blocked)):
                ref = hf(**inputs).logits
            clean = hf(**inputs).logits
        assert _diff(ours, ref, inputs["attention_mask"]) <= ATOL
        assert _diff(ref, clean, inputs["attention_mask"]) > 1e-4, "the knockout changed nothing"


def test_a_system_prompt_replaces_the_default_one(plm):
    """The template trims a *string* system content; vlens passes it so, and the text is system."""
    _, model, _ = plm
    default = model.to_inputs(frames(1), QUESTION, n_frames=1)
    own = model.to_inputs(frames(1), QUESTION, n_frames=1, system_prompt="Be helpful.")
    labels = model.to_str_tokens(own)
    assert "vision" in model.to_str_tokens(default) and "vision" not in labels
    assert labels[4:7] == ["Be", "helpful", "."] and "[" not in labels
    assert set(own.layout.segment[: int(own.layout.positions("video")[0])]) == {"system"}


def test_llama3_scaled_rope_matches_hf(tmp_path):
    """The released checkpoints' Llama 3.1 RoPE scaling: logits and generation equal HF's, and the
    scaling is not a no-op at this size (it changes the logits)."""
    path = testing.make_tiny_perception_lm(tmp_path / "ckpt", n_layers=2, rope_parameters=LLAMA3_ROPE)
    model = HookedVideoLLM.from_pretrained(path)
    hf = transformers.PerceptionLMForConditionalGeneration.from_pretrained(path).eval()
    inputs = model.to_inputs([frames(4, seed=1), frames(4, seed=2)], [QUESTION, "why is it here"], n_frames=4)
    with torch.no_grad():
        ours = model(inputs)
        assert _diff(ours, hf(**inputs).logits, inputs["attention_mask"]) <= ATOL
        ref = hf.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert model.generate(inputs, max_new_tokens=4).tolist() == ref[:, inputs.seq_len :].tolist()
    plain = testing.make_tiny_perception_lm(tmp_path / "plain", n_layers=2)
    with torch.no_grad():
        assert (HookedVideoLLM.from_pretrained(plain)(inputs) - ours).abs().max() > 1e-3


def test_rope_types_the_decoder_cannot_run_are_refused(tmp_path):
    import json

    path = testing.make_tiny_perception_lm(tmp_path / "ckpt", n_layers=1)
    cfg = json.loads((path / "config.json").read_text())
    cfg["text_config"]["rope_parameters"] = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 2.0}
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(NotImplementedError, match=r"rope_type 'yarn'.*llama3"):
        HookedVideoLLM.from_pretrained(path)


def test_missing_timm_is_named_with_its_pip_install(plm, monkeypatch):
    path, _, _ = plm
    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` now fails as if it were not installed
    with pytest.raises(MissingDependencyError, match="pip install timm") as err:
        HookedVideoLLM.from_pretrained(path)
    assert isinstance(err.value, ImportError)
    with pytest.raises(MissingDependencyError, match="pip install timm"):
        testing.make_tiny_perception_lm(path.parent / "other")
