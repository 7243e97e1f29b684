"""Mean, resample and zero ablation of the video features (vlens.interventions.ablation)."""

from __future__ import annotations

import pytest
import torch
from conftest import frames

from vlens import HookedVideoLLM, testing
from vlens import knockout as ko
from vlens.interventions.ablation import (
    AblationError,
    mean_ablation,
    resample_ablation,
    video_features,
    zero_ablation,
)

Q = "what color is the object"
BUILDERS = {
    "onevision": (testing.make_tiny_onevision, {}),
    "qwen2.5-vl": (testing.make_tiny_qwen2_5_vl, {"fps": 2.0}),
    "llava-next-video": (testing.make_tiny_llava_next_video, {}),
}


@pytest.fixture(scope="module", params=list(BUILDERS))
def family(request, tmp_path_factory):
    build, kwargs = BUILDERS[request.param]
    model = HookedVideoLLM.from_pretrained(build(tmp_path_factory.mktemp(request.param) / "ckpt", n_layers=2))
    return model, kwargs


def test_features_are_the_vision_positions(family):
    model, kw = family
    a = model.to_inputs(frames(4, seed=1), Q, n_frames=4, **kw)
    feats = video_features(model, [a, model.to_inputs(frames(4, seed=2), Q, n_frames=4, **kw)])
    assert feats.shape == (2, int(a.layout.is_vision.sum()), model.cfg.d_model)
    assert not torch.equal(feats[0], feats[1])


def test_resampling_every_frame_is_running_the_other_video(family):
    """The other sample's features at the same positions = the model run on the other video."""
    model, kw = family
    a = model.to_inputs(frames(4, seed=1), Q, n_frames=4, **kw)
    b = model.to_inputs(frames(4, seed=2), Q, n_frames=4, **kw)
    with torch.no_grad():
        resampled = model.run_with_hooks(a, fwd_hooks=resample_ablation(video_features(model, [b])[0], a))
        assert (resampled - model(b)).abs().max().item() <= 1e-5
        assert (resampled - model(a)).abs().max().item() > 1e-4


def test_mean_of_one_sample_is_the_clean_run_and_frames_are_respected(family):
    model, kw = family
    a = model.to_inputs(frames(4, seed=1), Q, n_frames=4, **kw)
    refs = [model.to_inputs(frames(4, seed=s), Q, n_frames=4, **kw) for s in (2, 3, 4)]
    with torch.no_grad():
        assert (
            model.run_with_hooks(a, fwd_hooks=mean_ablation(video_features(model, [a]), a)) - model(a)
        ).abs().max() <= 1e-5
    reference = video_features(model, refs)
    hooks = mean_ablation(reference, a, frames=[1])
    seen = []
    model.run_with_hooks(
        a, fwd_hooks=[*hooks, ("hook_video_features", lambda t, hook: seen.append(t.clone()))], stop_at_layer=0
    )
    clean = video_features(model, [a])[0]
    in_frame = a.layout.frame[a.layout.is_vision] == 1
    assert torch.allclose(seen[0][0][in_frame], reference.mean(0)[in_frame])
    assert torch.equal(seen[0][0][~in_frame], clean[~in_frame])
    flat = mean_ablation(reference, a, per_position=False)
    seen.clear()
    model.run_with_hooks(
        a, fwd_hooks=[*flat, ("hook_video_features", lambda t, hook: seen.append(t.clone()))], stop_at_layer=0
    )
    assert torch.allclose(seen[0][0], reference.flatten(0, 1).mean(0).expand_as(seen[0][0]))


def test_ablations_compose_with_knockouts(family):
    model, kw = family
    a = model.to_inputs(frames(4, seed=1), Q, n_frames=4, **kw)
    zero = zero_ablation(a, d_model=model.cfg.d_model)
    knock = ko.Edges("last", "vision").hooks(a)
    with torch.no_grad():
        both = model.run_with_hooks(a, fwd_hooks=[*zero, *knock])
        only_knock = model.run_with_hooks(a, fwd_hooks=knock)
    # the last position cannot see the video, but the text after the video still does
    assert (both - only_knock).abs().max().item() > 0
    assert not model.hook_video_features._forward_hooks  # nothing left behind


def test_bad_ablations_are_refused(family):
    model, kw = family
    a = model.to_inputs(frames(4, seed=1), Q, n_frames=4, **kw)
    short = model.to_inputs(frames(2, seed=1), Q, n_frames=2, **kw)
    with pytest.raises(AblationError, match="at least one sample"):
        video_features(model, [])
    with pytest.raises(AblationError, match="different numbers of vision positions"):
        video_features(model, [a, short])
    reference = video_features(model, [a])
    with pytest.raises(AblationError, match="vision positions, these inputs"):
        mean_ablation(reference, short)
    n = int(a.layout.frame.max()) + 1  # frames (temporal groups: 2 frames each in Qwen2.5-VL)
    with pytest.raises(AblationError, match=rf"not frame indices of this input \(0\.\.{n - 1}"):
        mean_ablation(reference, a, frames=[n])
    with pytest.raises(AblationError, match="negatives refused"):
        mean_ablation(reference, a, frames=[-1])
    with pytest.raises(AblationError, match=r"\[sample, n_vision, d_model\]"):
        mean_ablation(reference[0], a)
    with pytest.raises(AblationError, match="one sample's"):
        resample_ablation(reference, a)
    with pytest.raises(AblationError, match="no video"):
        video_features(model, [torch.tensor([[7, 8, 9]])])  # token ids only
