"""SAEs in sae-lens's and sparsify's formats, attached at vlens hooks (vlens.features)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import frames
from safetensors.torch import save_file

from vlens.features.sae import SAE, SAEConfig, SAEError, load_sae, save_sae
from vlens.features.sae_hooks import attach_sae

HOOK = "blocks.1.hook_resid_post"


def random_sae(d_in=64, d_sae=96, architecture="standard", seed=0, **kw) -> SAE:
    g = torch.Generator().manual_seed(seed)
    w = {
        "W_enc": torch.randn(d_in, d_sae, generator=g) / d_in**0.5,
        "b_enc": torch.randn(d_sae, generator=g) * 0.1,
        "W_dec": torch.randn(d_sae, d_in, generator=g) / d_sae**0.5,
        "b_dec": torch.randn(d_in, generator=g) * 0.1,
    }
    if architecture == "jumprelu":
        w["threshold"] = torch.rand(d_sae, generator=g) * 0.2
    cfg = SAEConfig(d_in=d_in, d_sae=d_sae, architecture=architecture, hook_name=HOOK, **kw)
    return SAE(cfg, w)


@pytest.mark.parametrize("arch,kw", [("standard", {}), ("topk", {"k": 8}), ("jumprelu", {})])
def test_sae_lens_format_round_trip(tmp_path, arch, kw):
    sae = random_sae(architecture=arch, **kw)
    loaded = load_sae(save_sae(sae, tmp_path / arch))
    x = torch.randn(5, 7, 64)
    assert torch.equal(loaded.encode(x), sae.encode(x))
    assert loaded.cfg == sae.cfg
    f = sae.encode(x)
    if arch == "topk":
        assert int((f > 0).sum(-1).max()) <= 8
    if arch == "jumprelu":
        pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
        assert torch.equal(f > 0, (pre > sae.threshold) & (pre > 0))
    cfg = json.loads((tmp_path / arch / "cfg.json").read_text())
    assert cfg["architecture"] == arch and cfg["meta"]["hook_name"] == HOOK  # what sae-lens 6 reads


def test_sparsify_format_encodes_as_sparsify_does(tmp_path):
    g = torch.Generator().manual_seed(1)
    enc_w, enc_b = torch.randn(80, 64, generator=g), torch.randn(80, generator=g)
    w_dec, b_dec = torch.randn(80, 64, generator=g), torch.randn(64, generator=g)
    save_file(
        {"encoder.weight": enc_w, "encoder.bias": enc_b, "W_dec": w_dec, "b_dec": b_dec}, tmp_path / "sae.safetensors"
    )
    (tmp_path / "cfg.json").write_text(
        json.dumps({"expansion_factor": 1.25, "normalize_decoder": True, "num_latents": 80, "k": 6, "d_in": 64})
    )
    sae = load_sae(tmp_path)
    x = torch.randn(9, 64)
    # sparsify: pre = relu(encoder(x − b_dec)); top-k; decode = Σ acts · W_dec[idx] + b_dec
    pre = torch.relu((x - b_dec) @ enc_w.T + enc_b)
    acts, idx = pre.topk(6, sorted=False)
    want = (acts[..., None] * w_dec[idx]).sum(-2) + b_dec
    assert torch.allclose(sae(x), want, atol=1e-5)


def test_unsupported_sae_files_are_refused(tmp_path):
    with pytest.raises(SAEError, match=r"no cfg\.json"):
        load_sae(tmp_path)
    save_sae(random_sae(), tmp_path / "a")
    cfg = json.loads((tmp_path / "a" / "cfg.json").read_text())
    (tmp_path / "a" / "cfg.json").write_text(json.dumps({**cfg, "normalize_activations": "layer_norm"}))
    with pytest.raises(SAEError, match="normalize_activations='layer_norm'"):
        load_sae(tmp_path / "a")
    with pytest.raises(SAEError, match="needs k"):
        random_sae(architecture="topk")
    with pytest.raises(SAEError, match=r"W_dec is \(96, 64\), expected \(96, 32\)"):
        SAE(
            SAEConfig(d_in=32, d_sae=96),
            dict(random_sae().state_dict()) | {"W_enc": torch.zeros(32, 96), "b_dec": torch.zeros(32)},
        )


@pytest.fixture(scope="module")
def setup(model):
    inputs = model.to_inputs(frames(2), "what color is the object", n_frames=2)
    return model, inputs


def test_spliced_sae_with_its_error_term_is_the_clean_run(setup):
    model, inputs = setup
    sae = random_sae(d_in=model.cfg.d_model)
    with torch.no_grad():
        clean = model(inputs)
        with attach_sae(model, sae, error_term=True):
            exact, cache = model.run_with_cache(inputs)
        with attach_sae(model, sae):
            spliced = model(inputs)
        with attach_sae(model, sae, splice=False):
            read_only, cache_ro = model.run_with_cache(inputs, names_filter=lambda n: "sae" in n)
    assert (exact - clean).abs().max().item() <= 1e-5
    assert (read_only - clean).abs().max().item() == 0
    assert (spliced - clean).abs().max().item() > 1e-4
    feats = cache[f"{HOOK}.hook_sae_acts_post"]
    assert feats.shape == (1, inputs.seq_len, sae.cfg.d_sae)
    assert torch.allclose(feats, cache_ro[f"{HOOK}.hook_sae_acts_post"], atol=1e-5)
    assert not any("sae" in n for n in model.hook_dict)  # nothing left behind
    assert torch.equal(model(inputs), clean)


def test_feature_knockout_is_a_hook_on_the_features(setup):
    """Zeroing every feature = the activation replaced by the decoder bias (decode(0) = b_dec)."""
    model, inputs = setup
    sae = random_sae(d_in=model.cfg.d_model)
    with torch.no_grad(), attach_sae(model, sae):
        knocked = model.run_with_hooks(inputs, fwd_hooks=[(f"{HOOK}.hook_sae_acts_post", lambda f, hook: f * 0)])
    with torch.no_grad():
        ref = model.run_with_hooks(inputs, fwd_hooks=[(HOOK, lambda x, hook: sae.b_dec.expand_as(x).clone())])
    assert (knocked - ref).abs().max().item() <= 1e-5


def test_attaching_wrong_saes_is_refused_and_leaves_nothing(setup):
    model, inputs = setup
    clean = model(inputs)
    with (
        pytest.raises(SAEError, match=r"reads 32-wide activations but blocks\.1\.hook_resid_post is 64 wide"),
        attach_sae(model, random_sae(d_in=32)),
    ):
        model(inputs)
    with (
        pytest.raises(SAEError, match="hooks ending in 'hook_resid_post'"),
        attach_sae(model, random_sae(), "blocks.9.hook_resid_post"),
    ):
        pass
    bare = SAE(SAEConfig(d_in=64, d_sae=96), dict(random_sae().state_dict()))
    with pytest.raises(SAEError, match="names no hook"), attach_sae(model, bare):
        pass
    with (
        attach_sae(model, random_sae()),
        pytest.raises(SAEError, match="already carries"),
        attach_sae(model, random_sae()),
    ):
        pass
    assert not any("sae" in n for n in model.hook_dict)
    assert not model.hook_dict[HOOK]._forward_hooks
    assert torch.equal(model(inputs), clean)
