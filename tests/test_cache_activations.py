"""`vlens cache-activations` end to end on the organism: rows equal run_with_cache's, labels,
resume, shards, and bad hooks / positions / settings refused with the flag's name."""

from __future__ import annotations

import re

import pytest
import torch

from vlens.cli import main
from vlens.data import load_dataset
from vlens.features.cache import resolve_hooks, sample_labels
from vlens.features.store import ActivationStore, ActivationStoreError
from vlens.inputs.prompts import mc_question
from vlens.model.hooked_video_llm import HookedVideoLLM
from vlens.organism import checkpoint_dir

DATA = "synthetic:1,n=4"


@pytest.fixture(scope="module")
def model():
    return HookedVideoLLM.from_pretrained(checkpoint_dir())


def _argv(out, *extra: str, data: str = DATA) -> list[str]:
    return [
        "cache-activations",
        "--model",
        str(checkpoint_dir()),
        "--data",
        data,
        "--frames",
        "8",
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]


def test_cache_writes_rows_equal_to_the_cache_with_labels_and_resumes(model, tmp_path, capsys):
    out = tmp_path / "acts"
    hooks = ["--hooks", "blocks.*.hook_resid_post", "--positions", "video,last"]
    assert main(_argv(out, *hooks, "--limit", "2")) == 0
    assert "2 samples written, 0 already" in capsys.readouterr().err
    assert main(_argv(out, *hooks)) == 0  # resumed: the first two are kept, two more written
    assert "2 samples written, 2 already" in capsys.readouterr().err
    assert main(_argv(out, *hooks)) == 0
    assert "0 samples written, 4 already" in capsys.readouterr().err

    store = ActivationStore(out, model=model)
    assert store.hooks == [f"blocks.{i}.hook_resid_post" for i in range(model.cfg.n_layers)]
    assert store.manifest["data"] == DATA and store.manifest["frames"] == 8
    samples = load_dataset(DATA)
    assert [s["sample"] for s in store.samples] == [s.id for s in samples]
    for rec, s in zip(store.samples, samples):
        assert rec["labels"] == sample_labels(s)
        assert rec["labels"]["kind"] == s.meta["kind"] and rec["labels"]["answer"] == s.answer
    hook = "blocks.5.hook_resid_post"
    batch = store.all(hook)
    s = samples[3]
    inputs = model.to_inputs(s.video, mc_question(s.question, s.options), n_frames=8, fps=s.fps)
    _, cache = model.run_with_cache(inputs, names_filter=hook)
    want = (inputs.layout.is_video | inputs.layout.role_mask("last")).nonzero().flatten()
    rows = batch.sample == 3
    assert torch.equal(batch.position[rows], want)
    torch.testing.assert_close(batch.acts[rows], cache[hook][0, want], atol=1e-6, rtol=0)


def test_cache_shards_together_make_the_store(model, tmp_path, capsys):
    out = tmp_path / "acts"
    for i in range(2):
        assert main(_argv(out, "--hooks", "blocks.1.hook_resid_post", "--positions", "last", "--shard", f"{i}/2")) == 0
    assert "shard 1/2: 2 samples written" in capsys.readouterr().err
    store = ActivationStore(out)
    assert sorted(s["sample"] for s in store.samples) == sorted(s.id for s in load_dataset(DATA))
    assert store.n_rows == 4


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--hooks", "blocks.99.hook_resid_post"], r"\['blocks.99.hook_resid_post'\] not hook points"),
        (["--hooks", "blocks.*.hook_nothing"], "matches no hook point"),
        (["--hooks", " , "], "no hook given"),
        (["--hooks", "blocks.0.hook_resid_post", "--positions", "vidoe"], "unknown position selector 'vidoe'"),
        (["--hooks", "blocks.0.hook_resid_post", "--shard", "0/2", "--limit", "0"], "selects no sample"),
        (["--hooks", "blocks.0.attn.hook_pattern"], r"\[batch, head, query, key\].*hook_z"),
        (["--hooks", "blocks.0.hook_resid_post", "--positions", " "], "names no position group"),
    ],
)
def test_bad_flags_are_refused_with_what_is_allowed(tmp_path, capsys, flags, message):
    assert main(_argv(tmp_path / "acts", *flags)) == 2
    err = capsys.readouterr().err
    assert err.startswith("vlens cache-activations: ")
    assert re.search(message, err), err
    assert not (tmp_path / "acts" / "manifest.json").exists()  # nothing left that a good run would trip on


def test_other_settings_in_the_same_directory_are_refused(tmp_path, capsys):
    out = tmp_path / "acts"
    assert main(_argv(out, "--hooks", "blocks.0.hook_resid_post", "--positions", "last", "--limit", "1")) == 0
    for flags, what in [
        (["--hooks", "blocks.0.hook_resid_post", "--positions", "video"], "positions: 'last' there, 'video' now"),
        (["--hooks", "blocks.0.hook_resid_post", "--positions", "last", "--dtype", "float16"], "dtype"),
        (["--hooks", "blocks.1.hook_resid_post", "--positions", "last"], "hooks"),
        (["--hooks", "blocks.0.hook_resid_post", "--positions", "last", "--shard", "0/2"], "n_shards"),
    ]:
        assert main(_argv(out, *flags)) == 2
        err = capsys.readouterr().err
        assert "other settings" in err and what in err, err
    assert main(_argv(out, "--hooks", "blocks.0.hook_resid_post", "--positions", "last", data="synthetic:2,n=4")) == 2
    assert "data: 'synthetic:1,n=4' there, 'synthetic:2,n=4' now" in capsys.readouterr().err


def test_resolve_hooks_keeps_order_and_drops_repeats(model):
    got = resolve_hooks(model, "blocks.1*.hook_resid_post,blocks.0.hook_resid_post,blocks.?.hook_resid_post")
    assert got[:2] == ["blocks.1.hook_resid_post", "blocks.0.hook_resid_post"]
    assert got[2:] == [f"blocks.{i}.hook_resid_post" for i in range(2, model.cfg.n_layers)]
    with pytest.raises(ActivationStoreError, match="matches no hook point"):
        resolve_hooks(model, ["blocks.[9].hook_resid_post"])
