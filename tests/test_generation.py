"""`generate`'s sampling settings: HF's warpers (temperature, top-k, top-p) and HF's draws, so the
same settings and seed give HF's tokens (greedy and sampled, with and without knockouts applied at
every step through the AttentionInterface reference); seeds reproduce; bad settings are refused."""

from __future__ import annotations

import pytest
import torch
from conftest import frames
from hf_reference import hf_knockout
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from vlens import knockout as ko
from vlens.arguments import ArgumentError
from vlens.model.generation import Decoding

QUESTION = "what color is the object"
temperatures = st.sampled_from([0.5, 1.0, 1.7])
top_ks = st.sampled_from([0, 1, 3, 40])
top_ps = st.sampled_from([1.0, 0.9, 0.3])


def _hf_sample(hf, inputs, n, temperature, top_k, top_p, seed):
    torch.manual_seed(seed)  # HF draws from torch's global generator
    out = hf.generate(**inputs, max_new_tokens=n, do_sample=True, temperature=temperature, top_k=top_k, top_p=top_p)
    return out[:, inputs["input_ids"].shape[1] :].tolist()


@settings(max_examples=40, deadline=None)
@given(
    t=temperatures,
    k=top_ks,
    p=st.floats(0.05, 1.0),
    seed=st.integers(0, 2**31),
    spread=st.sampled_from([0.1, 3.0, 30.0]),
)
def test_warp_equals_hf_warpers(t, k, p, seed, spread):
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(seed)) * spread
    logits[0, :10] = logits[0, 0]  # ties at the top-k / top-p boundary
    hf = LogitsProcessorList(  # the warpers HF's generate adds for these settings, in its order
        ([TemperatureLogitsWarper(t)] if t != 1.0 else [])
        + ([TopKLogitsWarper(k)] if k > 0 else [])
        + ([TopPLogitsWarper(p)] if p < 1.0 else [])
    )
    ours = Decoding(True, t, k, p).warp(logits)
    ids = torch.zeros(3, 1, dtype=torch.long)  # unused by the warpers
    assert torch.equal(ours, hf(ids, logits.clone()))  # pyright: ignore[reportArgumentType]
    assert torch.isfinite(ours).any(-1).all(), "the most likely token is always kept"


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(t=temperatures, k=top_ks, p=top_ps, seed=st.integers(0, 2**31))
@example(t=0.5, k=0, p=1.0, seed=128)  # samples the <video> placeholder id: a decoding step embeds it as text, as HF
def test_sampled_generate_equals_hf_with_the_same_seed(model, hf_models, t, k, p, seed):
    inputs = model.to_inputs(
        [frames(2, seed=3), frames(2, seed=4)], [QUESTION, "which object appears first"], n_frames=2
    )
    with torch.no_grad():
        ref = _hf_sample(hf_models["sdpa"], inputs, 5, t, k, p, seed)
    ours = model.generate(inputs, 5, do_sample=True, temperature=t, top_k=k, top_p=p, seed=seed)
    assert ours.tolist() == ref


def test_greedy_and_sampled_generate_under_knockouts_equal_hf(model, hf_models):
    """The knockout at every step (prefill and each new token) = HF generate with the same mask
    added in the same layers through AttentionInterface."""
    inputs = model.to_inputs(frames(3, seed=5), QUESTION, n_frames=3)
    n, hf, changed = 6, hf_models["sdpa"], []
    for spec, sel in ((ko.LV(), ko.from_layer(1)), (ko.VT() | ko.LV(), ko.all_layers())):
        hooks = spec.hooks(inputs, layers=sel)
        blocked = hooks[0][1].blocked_full(inputs.seq_len + n, "cpu")
        by_layer = dict.fromkeys(sel.resolve(model.cfg.n_layers), blocked)
        with torch.no_grad(), hf_knockout(hf, by_layer):
            greedy_ref = hf.generate(**inputs, max_new_tokens=n, do_sample=False)[:, inputs.seq_len :].tolist()
            sampled_ref = _hf_sample(hf, inputs, n, 1.3, 0, 0.95, seed=7)
        greedy = model.generate(inputs, n, fwd_hooks=hooks)
        assert greedy.tolist() == greedy_ref
        assert (
            model.generate(inputs, n, fwd_hooks=hooks, do_sample=True, temperature=1.3, top_p=0.95, seed=7).tolist()
            == sampled_ref
        )
        changed.append(greedy.tolist() != model.generate(inputs, n).tolist())
    assert any(changed), "a knockout must change a generated token (else the check is vacuous)"


def test_seeds_reproduce_and_generators_advance(model):
    inputs = model.to_inputs(frames(2), QUESTION, n_frames=2)
    kw = dict(do_sample=True, temperature=2.0, seed=11)
    a = model.generate(inputs, 8, **kw)
    torch.manual_seed(0)  # an int seed does not read the global generator
    torch.rand(5)
    assert torch.equal(model.generate(inputs, 8, **kw), a)
    runs = {tuple(model.generate(inputs, 8, do_sample=True, temperature=2.0, seed=s)[0].tolist()) for s in range(6)}
    assert len(runs) > 1, "different seeds draw different tokens"
    g = torch.Generator().manual_seed(11)
    assert torch.equal(model.generate(inputs, 8, do_sample=True, temperature=2.0, seed=g), a)  # = the int seed
    state = g.get_state()
    assert not torch.equal(state, torch.Generator().manual_seed(11).get_state()), "a Generator is advanced"
    second = model.generate(inputs, 8, do_sample=True, temperature=2.0, seed=g)  # goes on from there
    again = torch.Generator()
    again.set_state(state)
    assert torch.equal(model.generate(inputs, 8, do_sample=True, temperature=2.0, seed=again), second)


def test_temperature_zero_and_top_k_one_are_greedy(model):
    inputs = model.to_inputs(frames(2), QUESTION, n_frames=2)
    greedy = model.generate(inputs, 6)
    assert torch.equal(model.generate(inputs, 6, do_sample=True, temperature=0.0, seed=1), greedy)
    assert torch.equal(model.generate(inputs, 6, do_sample=True, top_k=1, seed=1), greedy)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(do_sample=True, temperature=-0.1), "temperature must be a finite number ≥ 0"),
        (dict(do_sample=True, temperature=float("nan")), "temperature"),
        (dict(do_sample=True, top_p=0.0), r"top_p must lie in \(0, 1\]"),
        (dict(do_sample=True, top_p=1.5), r"top_p must lie in \(0, 1\]"),
        (dict(do_sample=True, top_k=-1), "top_k must be an integer ≥ 0"),
        (dict(do_sample=True, top_k=2.5), "top_k must be an integer"),
        (dict(temperature=0.7), "pass do_sample=True"),
        (dict(top_k=5), "pass do_sample=True"),
        (dict(do_sample="yes"), "do_sample must be True or False"),
        (dict(do_sample=True, seed=-3), "seed must be an int ≥ 0"),
        (dict(do_sample=True, seed=1.5), "seed must be an int"),
    ],
)
def test_bad_sampling_settings_are_refused_by_name(model, kw, match):
    inputs = model.to_inputs(frames(2), QUESTION, n_frames=2)
    with pytest.raises(ArgumentError, match=match):
        model.generate(inputs, 3, **kw)
