"""Seeing features (vlens.features.feature_views): heatmaps, top samples, density and the logit lens
equal what the model's own cache gives; frames are the model's; bad features / widths refused."""

from __future__ import annotations

import json
import shutil
from typing import cast

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vlens.arguments import ArgumentError
from vlens.data import load_dataset
from vlens.features.cache import cache_activations
from vlens.features.feature_views import FeatureViewError, direction_lens, feature_activations, feature_views
from vlens.features.sae import SAE, SAEConfig
from vlens.features.store import ActivationStore, ActivationStoreError
from vlens.figures.features import plot_feature
from vlens.inputs.prompts import mc_question
from vlens.model.hooked_video_llm import HookedVideoLLM
from vlens.organism import checkpoint_dir

HOOK = "blocks.2.hook_resid_post"
DATA = "synthetic:1,n=5"


def random_sae(d_in: int, d_sae: int = 16, seed: int = 0) -> SAE:
    g = torch.Generator().manual_seed(seed)
    w = {
        "W_enc": torch.randn(d_in, d_sae, generator=g) / d_in**0.5,
        "b_enc": torch.randn(d_sae, generator=g),
        "W_dec": torch.randn(d_sae, d_in, generator=g) / d_sae**0.5,
        "b_dec": torch.randn(d_in, generator=g) * 0.1,
    }
    return SAE(SAEConfig(d_in=d_in, d_sae=d_sae, hook_name=HOOK), w)


@pytest.fixture(scope="module")
def model():
    return HookedVideoLLM.from_pretrained(checkpoint_dir())


@pytest.fixture(scope="module")
def store_dir(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("feature_store") / "acts"
    cache_activations(model, load_dataset(DATA), out, hooks=[HOOK, "blocks.0.hook_resid_post"], positions="video,last")
    return out


@pytest.fixture(scope="module")
def direct(model):
    """Per sample: the hook's activation at every position from the model's own cache, and the layout."""
    out = {}
    for s in load_dataset(DATA):
        inputs = model.to_inputs(s.video, mc_question(s.question, s.options), n_frames=8, fps=s.fps)
        _, cache = model.run_with_cache(inputs, names_filter=HOOK)
        out[s.id] = (cache[HOOK][0], inputs.layout)
    return out


def by_hand(encoder, x: torch.Tensor) -> torch.Tensor:
    """The activations written out: ReLU((x − b_dec) W_enc + b_enc) for the SAE, x · D for directions."""
    if isinstance(encoder, SAE):
        w_enc, b_enc, b_dec = (cast(torch.Tensor, getattr(encoder, n)) for n in ("W_enc", "b_enc", "b_dec"))
        return torch.relu((x - b_dec) @ w_enc + b_enc)
    return x @ encoder.T


@pytest.mark.parametrize("kind", ["sae", "directions"])
def test_heatmaps_top_samples_and_density_equal_the_models_own_cache(model, store_dir, direct, kind):
    d = model.cfg.d_model
    directions = torch.randn(6, d, generator=torch.Generator().manual_seed(1))
    directions = directions / directions.norm(dim=1, keepdim=True)  # unit directions: activations ~ |x|
    encoder = random_sae(d) if kind == "sae" else directions
    features = [3, 0, 5]
    views = feature_views(store_dir, encoder, features, hook=HOOK, k=3, model=model)
    assert [v.feature for v in views] == features
    for v in views:
        peaks, stored = {}, []
        for sid, (x, layout) in direct.items():
            act = by_hand(encoder, x)[:, v.feature]
            keep = layout.is_video | (torch.arange(len(layout)) == len(layout) - 1)  # video,last
            stored.append(act[keep])
            peaks[sid] = float(act[keep].max())
        stored_all = torch.cat(stored)
        assert v.n_rows == len(stored_all)
        assert v.n_active == int((stored_all > 0).sum()) and v.density == pytest.approx(v.n_active / v.n_rows)
        ranked = sorted(peaks, key=lambda s: -peaks[s])
        assert [t.id for t in v.top] == ranked[:3]
        for t in v.top:
            assert t.activation == pytest.approx(peaks[t.id], abs=1e-5, rel=1e-6)
            x, layout = direct[t.id]
            act = by_hand(encoder, x)[:, v.feature]
            assert t.heatmap is not None and t.heatmap.shape == (8, 4, 4)
            patch = layout.is_video & (layout.row >= 0)
            expected = torch.full_like(t.heatmap, float("nan"))
            expected[layout.frame[patch], layout.row[patch], layout.col[patch]] = act[patch]
            # ≤ 1e-5, and 1e-6 relative: a unit direction's projections reach ~140 here, where fp32's spacing is 1.5e-5
            torch.testing.assert_close(t.heatmap, expected, atol=1e-5, rtol=1e-6, equal_nan=True)
            assert not t.heatmap.isnan().any()  # every patch of the organism's 8 × 4 × 4 is stored
            assert float(act[t.position]) == pytest.approx(t.activation, abs=1e-5, rel=1e-6)
            assert t.frame == int(layout.frame[t.position]) and t.frame_images is None
        assert v.kind == kind


def test_feature_activations_streamed_equal_the_store_encoded_at_once(model, store_dir):
    sae = random_sae(model.cfg.d_model, seed=3)
    batch = ActivationStore(store_dir).all(HOOK)
    full = feature_activations(sae, batch.acts)
    torch.testing.assert_close(full, by_hand(sae, batch.acts), atol=1e-5, rtol=0)
    torch.testing.assert_close(feature_activations(sae, batch.acts, [7, 2]), full[:, [7, 2]])
    small = feature_views(store_dir, sae, [7], hook=HOOK, batch_size=37)[0]  # many small batches
    assert small.n_active == int((full[:, 7] > 0).sum())


def test_the_logit_lens_of_a_direction_is_the_unembedding_after_the_final_norm(model, store_dir):
    sae = random_sae(model.cfg.d_model)
    (v,) = feature_views(store_dir, sae, 4, model=model, n_tokens=5)
    assert v.lens is not None and v.lens_note == v.lens.norm and "ln_final" in v.lens.norm
    w = cast(torch.Tensor, sae.W_dec)[4]
    rms = w / (w.pow(2).mean() + model.ln_final.eps).sqrt() * model.ln_final.w
    logits = rms @ model.unembed.W_U
    assert v.lens.top_ids == logits.topk(5).indices.tolist()
    assert v.lens.bottom_ids == (-logits).topk(5).indices.tolist()
    assert v.lens.top_logits == pytest.approx(logits.topk(5).values.tolist(), abs=1e-4)
    assert v.lens.top_tokens == model.tokenizer.convert_ids_to_tokens(v.lens.top_ids)
    raw = direction_lens(model, w, 5, apply_norm=False)
    assert raw.top_ids == (w @ model.unembed.W_U).topk(5).indices.tolist() and "alone" in raw.norm
    (no_model,) = feature_views(store_dir, sae, 4)
    assert no_model.lens is None and "no model" in no_model.lens_note


def test_frames_are_the_ones_the_model_saw_and_the_figure_is_written(model, store_dir, tmp_path):
    samples = load_dataset(DATA)
    (v,) = feature_views(store_dir, random_sae(model.cfg.d_model), 1, model=model, samples=samples, k=2)
    ids = {s.id: s for s in samples}
    for t in v.top:
        s = ids[t.id]
        assert t.frame_images is not None
        assert isinstance(s.video, np.ndarray)
        assert t.frame_images.shape == s.video.shape == (8, 32, 32, 3)  # 8 frames of 8: every frame, in order
        assert (t.frame_images == s.video).all()
    assert plot_feature(v, tmp_path / "f.png").stat().st_size > 10_000
    (bare,) = feature_views(store_dir, random_sae(model.cfg.d_model), 1)
    assert plot_feature(bare, tmp_path / "bare.svg").stat().st_size > 1_000


@pytest.mark.parametrize(
    "encoder_args,kwargs,error,message",
    [
        ({}, {"features": 16}, ArgumentError, r"feature=16 is out of range: there are 16"),
        ({}, {"features": -1}, ArgumentError, "negative"),
        ({}, {"features": []}, FeatureViewError, "at least one feature"),
        (
            {"d_in": 64},
            {"features": 0},
            FeatureViewError,
            r"reads 64-wide activations but blocks.2.hook_resid_post is 128",
        ),
        ({}, {"features": 0, "hook": "blocks.5.hook_resid_post"}, FeatureViewError, r"not in the store.*holds"),
        ({}, {"features": 0, "samples": []}, FeatureViewError, "needs model="),
        ({}, {"features": 0, "k": 0}, ArgumentError, "k must be at least 1"),
    ],
)
def test_bad_features_and_widths_are_refused(model, store_dir, encoder_args, kwargs, error, message):
    sae = random_sae(encoder_args.get("d_in", model.cfg.d_model))
    with pytest.raises(error, match=message):
        feature_views(store_dir, sae, **kwargs)


def test_bad_encoders_and_hooks_are_refused(model, store_dir):
    with pytest.raises(FeatureViewError, match=r"\[d_sae, d_model\] direction matrix, got \(128,\)"):
        feature_views(store_dir, torch.zeros(128), 0)
    directions = torch.zeros(3, 128)
    with pytest.raises(FeatureViewError, match=r"hook=None: the store holds .* names no hook"):
        feature_views(store_dir, directions, 0)
    with pytest.raises(FeatureViewError, match="reads 128-wide activations but the rows are"):
        feature_activations(directions, torch.zeros(4, 64))
    with pytest.raises(FeatureViewError, match="residual stream's width 128"):
        direction_lens(model, torch.zeros(64))


def test_a_store_of_another_model_is_refused(model, store_dir, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(store_dir, other)
    manifest = json.loads((other / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps({**manifest, "revision": "sha256:another"}))
    assert feature_views(other, torch.zeros(3, 128), 0, hook=HOOK)  # without model= it reads
    with pytest.raises(ActivationStoreError, match="belong to another checkpoint"):
        feature_views(other, torch.zeros(3, 128), 0, hook=HOOK, model=model)


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1), features=st.lists(st.integers(0, 15), min_size=1, max_size=3), k=st.integers(1, 6)
)
def test_top_samples_are_ordered_by_their_peak_over_random_saes(model, store_dir, seed, features, k):
    sae = random_sae(model.cfg.d_model, seed=seed)
    batch = ActivationStore(store_dir).all(HOOK)
    acts = by_hand(sae, batch.acts)
    for v in feature_views(store_dir, sae, features, hook=HOOK, k=k):
        peak = {int(s): float(acts[batch.sample == s, v.feature].max()) for s in batch.sample.unique()}
        want = sorted(peak, key=lambda s: (-peak[s], s))[:k]
        assert [t.sample for t in v.top] == want
        assert [t.activation for t in v.top] == sorted((t.activation for t in v.top), reverse=True)
        assert v.density == pytest.approx(float((acts[:, v.feature] > 0).float().mean()))


def test_ties_go_to_the_lower_sample_and_a_silent_feature_has_density_zero(store_dir):
    (v,) = feature_views(store_dir, torch.zeros(2, 128), 1, hook=HOOK, k=3)
    assert [t.sample for t in v.top] == [0, 1, 2] and all(t.activation == 0 for t in v.top)
    assert v.density == 0 and v.n_active == 0


def test_a_group_restricts_density_and_peaks_to_its_rows(model, store_dir):
    sae = random_sae(model.cfg.d_model, seed=5)
    batch = ActivationStore(store_dir).all(HOOK)
    video = batch.segment_mask("video")
    acts = by_hand(sae, batch.acts)[:, 2]
    (v,) = feature_views(store_dir, sae, 2, hook=HOOK, group="video", k=5)
    assert v.n_rows == int(video.sum()) and v.n_active == int((acts[video] > 0).sum())
    for t in v.top:
        assert t.frame >= 0 and t.activation == pytest.approx(float(acts[video & (batch.sample == t.sample)].max()))
    (last,) = feature_views(store_dir, sae, 2, hook=HOOK, group="last")
    assert last.n_rows == len(ActivationStore(store_dir).samples) and all(t.heatmap is None for t in last.top)
    with pytest.raises(FeatureViewError, match=r"group=.*'nowhere' is not a position group"):
        feature_views(store_dir, sae, 2, hook=HOOK, group="nowhere")
    with pytest.raises(FeatureViewError, match=r"group='question': .* holds no such rows .*video\+last"):
        feature_views(store_dir, sae, 2, hook=HOOK, group="question")
