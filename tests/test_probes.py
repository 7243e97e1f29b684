"""Linear probes: a planted linear label is recovered, a random one stays at chance, the split is
by sample, pooling, the figure, and bad labels / groups / stores refused with what is allowed."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vlens.arguments import ArgumentError
from vlens.data import load_dataset
from vlens.features.cache import cache_activations
from vlens.features.probes import (
    ProbeError,
    assign_folds,
    available_labels,
    evaluate_probe,
    fit_probe,
    probe_store,
    results_table,
)
from vlens.features.store import ActivationStore, ActivationStoreError
from vlens.figures.probes import plot_probes
from vlens.model.hooked_video_llm import HookedVideoLLM
from vlens.organism import checkpoint_dir

HOOKS = ["blocks.0.hook_resid_post", "blocks.7.hook_resid_post"]


def _planted(seed: int, n: int, d: int, c: int, rows: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`rows` rows per sample, label = argmax of a fixed linear map of the row, with a margin."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, c, generator=g)
    x = torch.randn(n * rows * 4, d, generator=g) * torch.rand(d, generator=g).add(0.2)
    logits = x @ w
    top2 = logits.topk(2, dim=1).values
    gap = top2[:, 0] - top2[:, 1]
    x = x[gap > gap.quantile(0.5)][: n * rows]  # keep the rows farther from the boundary
    return x, (x @ w).argmax(1), torch.arange(len(x)) // rows


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    d=st.integers(2, 24),
    c=st.integers(2, 5),
    rows=st.integers(1, 3),
)
def test_a_planted_linear_label_is_recovered(seed, d, c, rows):
    x, y, samples = _planted(seed, 400, d, c, rows)
    r = evaluate_probe(x, y, samples, weight_decay=1e-4, key=str(seed))
    assert r["accuracy"] >= 0.95, r
    assert r["ci"][0] <= r["accuracy"] <= r["ci"][1]
    assert r["n_samples"] == 400 and len(r["probes"]) == 4


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(2, 24), c=st.integers(2, 5))
def test_a_random_label_stays_at_chance(seed, d, c):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(400, d, generator=g)
    y = torch.randint(0, c, (400,), generator=g)
    r = evaluate_probe(x, y, torch.arange(400), key=str(seed))
    assert r["accuracy"] < 1 / c + 0.12, r  # 400 samples scored: ~5 standard deviations
    assert r["ci"][0] < 1 / c + 0.05, r


def test_the_folds_are_by_sample_balanced_seeded_and_the_same_across_calls():
    samples = torch.arange(50).repeat_interleave(7)
    fold = assign_folds(samples, 4, key="a")
    assert torch.equal(fold, assign_folds(samples, 4, key="a"))
    assert not torch.equal(fold, assign_folds(samples, 4, key="b"))
    for s in range(50):  # every row of a sample in one fold
        assert len(torch.unique(fold[samples == s])) == 1
    per_fold = torch.bincount(fold[::7], minlength=4)
    assert per_fold.sum() == 50 and per_fold.max() - per_fold.min() <= 1
    with pytest.raises(ProbeError, match="at least 4 samples with the label, got 3"):
        assign_folds(torch.tensor([0, 1, 2, 2]), 4)
    with pytest.raises(ProbeError, match="folds=1 must be an integer >= 2"):
        assign_folds(samples, 1)
    with pytest.raises(ProbeError, match="n_classes=2"):
        fit_probe(torch.zeros(3, 2), torch.tensor([0, 1, 2]), 2)
    assert issubclass(ProbeError, ArgumentError)


@pytest.fixture(scope="module")
def model():
    return HookedVideoLLM.from_pretrained(checkpoint_dir())


@pytest.fixture(scope="module")
def store_dir(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("probe_store") / "acts"
    cache_activations(model, load_dataset("synthetic:1,n=12"), out, hooks=HOOKS, positions="video,last", n_frames=8)
    return out


def test_probe_store_labels_pooling_and_determinism(store_dir, model):
    store = ActivationStore(store_dir)
    assert {"answer", "answer_text", "kind", "color", "direction", "frame"} <= set(available_labels(store))
    a = probe_store(store, ["kind", "answer"], groups=["last"], model=model)
    assert [(r.label, r.hook) for r in a] == [(lab, h) for lab in ("kind", "answer") for h in HOOKS]
    assert a == probe_store(store_dir, ["kind", "answer"], groups="last")  # deterministic
    assert all(r.n_samples == r.n_examples == 12 and r.folds == 4 for r in a)
    ids = {s["sample"]: s["labels"]["kind"] for s in store.samples}
    assert probe_store(store, "kind", groups="last", values=ids) == a[:2]  # values= reads the same labels
    per_frame = probe_store(store, "frame", groups="video", pool="frame", hooks=HOOKS[:1])[0]
    assert per_frame.n_samples == 12 and per_frame.n_examples == 12 * 8  # one example per frame
    per_row = probe_store(store, "frame", groups="video", hooks=HOOKS[:1])[0]
    assert per_row.n_examples == 12 * 128  # every video patch
    colour = probe_store(store, "color", groups="video", pool="sample", hooks=HOOKS[:1])[0]
    with_colour = [s for s in load_dataset("synthetic:1,n=12") if "color" in s.meta]
    assert colour.n_samples == len(with_colour)  # samples without the label are left out
    table = results_table(a)
    assert "kind @ last, n = 12" in table and "blocks.7.hook_resid_post" in table


def test_the_figure_is_written(store_dir, tmp_path):
    results = probe_store(store_dir, "kind", groups=["last", "video"], pool="sample")
    assert probe_store(store_dir, "kind", groups="video+last", pool="sample", hooks=HOOKS[:1])[0].n_samples == 12
    path = plot_probes(results, tmp_path / "probes.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    with pytest.raises(ValueError, match="no results"):
        plot_probes([], tmp_path / "x.png")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"labels": "colour"}, r"label='colour' is not a label of .*'color'.*'frame'"),
        ({"labels": "kind", "groups": "question"}, r"groups: 'question' has no rows .*'video\+last'"),
        ({"labels": "kind", "groups": "vidoe"}, r"groups: 'vidoe' is not a position group; use one of"),
        ({"labels": "frame", "groups": "last"}, "set on no row of group 'last'"),
        ({"labels": "row", "groups": "video", "pool": "frame"}, "differs between the rows of one frame"),
        ({"labels": "kind", "pool": "clip"}, r"pool='clip' is not a pooling"),
        ({"labels": []}, "labels: none given"),
        ({"labels": "kind", "hooks": ["blocks.3.hook_resid_post"]}, "not in this store"),
        ({"labels": "direction", "groups": "last"}, "label=.direction. takes one value"),  # 2 clips, both down
        ({"labels": "kind", "groups": "last", "folds": 0}, "folds=0 must be an integer >= 2"),
    ],
)
def test_bad_probes_are_refused_with_what_is_allowed(store_dir, kwargs, message):
    with pytest.raises((ProbeError, ActivationStoreError), match=message):
        probe_store(store_dir, **kwargs)


def test_a_label_with_one_class_is_refused_not_scored_100(store_dir):
    """One class everywhere would give a 'perfect' probe; refused, naming the label and its value."""
    ids = {s["sample"]: "down" for s in ActivationStore(store_dir).samples}
    with pytest.raises(ProbeError, match=r"label='same' takes one value, 'down'.*100%"):
        probe_store(store_dir, "same", groups="last", values=ids)
    with pytest.raises(ProbeError, match="every row has the same class"):
        evaluate_probe(torch.randn(8, 3), torch.zeros(8, dtype=torch.long), torch.arange(8), folds=2)


def test_a_store_of_another_model_is_refused(store_dir, model, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(store_dir, other)
    manifest = json.loads((other / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps({**manifest, "revision": "sha256:another"}))
    assert probe_store(other, "kind", groups="last")  # without model= it reads
    with pytest.raises(ActivationStoreError, match="belong to another checkpoint"):
        probe_store(other, "kind", groups="last", model=model)


def test_hooks_outside_the_blocks_are_probed_and_drawn_before_layer_0(model, tmp_path):
    out = tmp_path / "acts"
    hooks = "hook_video_features,blocks.0.hook_resid_post"
    cache_activations(model, load_dataset("synthetic:1,n=4"), out, hooks=hooks, positions="video", n_frames=8)
    results = probe_store(out, "frame", groups="video", pool="frame", folds=2)
    assert [(r.hook, r.layer) for r in results] == [("hook_video_features", None), ("blocks.0.hook_resid_post", 0)]
    assert all(r.n_examples == 4 * 8 for r in results)
    assert plot_probes(results, tmp_path / "p.svg").read_text().count("<svg") == 1
