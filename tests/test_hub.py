"""Hub ids in `from_pretrained` and `vlens run --model`: a hub cache written on disk (the
`models--org--name/{refs,snapshots}` layout) holding tiny checkpoints, loaded by id with the hub
offline. Every test here runs with socket connects refused: nothing reaches the network."""

from __future__ import annotations

import json
import socket

import huggingface_hub.constants
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from vlens import HookedVideoLLM
from vlens.families import UnsupportedModelError
from vlens.model.hub import CheckpointNotFoundError, HubCheckpoint, checkpoint_source, looks_like_hub_id
from vlens.testing import make_tiny_onevision, write_hub_cache
from vlens.testing.hub_cache import repo_folder

REPO = "vlens-test/tiny-onevision"


class _NoNetwork(socket.socket):
    def connect(self, *args, **kwargs):  # pragma: no cover - reaching it fails the test
        raise AssertionError(f"something tried to reach the network: {args}")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    monkeypatch.setattr(socket, "socket", _NoNetwork)


@pytest.fixture(scope="module")
def hub(tmp_path_factory, onevision_dir):
    """A hub cache: REPO's main = the conftest checkpoint (4 layers), its branch v2 = a 2-layer one."""
    cache = tmp_path_factory.mktemp("hub")
    main = write_hub_cache(onevision_dir, cache, REPO)
    v2_dir = make_tiny_onevision(tmp_path_factory.mktemp("v2") / "ckpt", seed=1, n_layers=2)
    v2 = write_hub_cache(v2_dir, cache, REPO, branch="v2")
    return {"cache": cache, "main": main, "v2": v2, "v2_dir": v2_dir}


@pytest.fixture
def offline(monkeypatch, hub):
    """HF_HUB_OFFLINE=1 and HF_HUB_CACHE=the test cache, as a user would export them. huggingface_hub
    reads both once at import, so its constants are set too (what the env would have given)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub["cache"]))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub["cache"]))
    return hub


def _logits(model, seed=0):
    ids = torch.randint(5, 40, (1, 12), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model({"input_ids": ids, "attention_mask": torch.ones_like(ids)})


def test_cache_layout_is_the_hubs(hub):
    repo = repo_folder(hub["cache"], REPO)
    assert (repo / "refs" / "main").read_text() == hub["main"]
    snap = repo / "snapshots" / hub["main"]
    assert (snap / "config.json").is_symlink() and (snap / "config.json").resolve().parent == repo / "blobs"
    # huggingface_hub's own scanner reads it as a cached repo with both revisions
    info = huggingface_hub.scan_cache_dir(hub["cache"])
    (repo_info,) = [r for r in info.repos if r.repo_id == REPO]
    assert {r.commit_hash for r in repo_info.revisions} == {hub["main"], hub["v2"]}


def test_load_by_id_offline_equals_the_local_directory(offline, model):
    by_id = HookedVideoLLM.from_pretrained(REPO)
    assert by_id.cfg.model_name == REPO
    assert by_id.cfg.n_layers == model.cfg.n_layers == 4
    torch.testing.assert_close(_logits(by_id), _logits(model), rtol=0, atol=0)
    assert by_id.processor is not None and by_id.tokenizer.padding_side == "left"
    # a dtype given by name is not the model's name (it overwrote model_name before)
    assert HookedVideoLLM.from_pretrained(REPO, dtype="float32").cfg.model_name == REPO


def test_revision_branch_and_commit(offline):
    ref = HookedVideoLLM.from_pretrained(offline["v2_dir"])
    for revision in ("v2", offline["v2"]):
        m = HookedVideoLLM.from_pretrained(REPO, revision=revision)
        assert m.cfg.n_layers == 2
        torch.testing.assert_close(_logits(m), _logits(ref), rtol=0, atol=0)


def test_cache_dir_and_local_files_only_without_env(monkeypatch, hub, tmp_path):
    """No HF_HUB_OFFLINE: local_files_only=True alone keeps the hub out; cache_dir= is used."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    m = HookedVideoLLM.from_pretrained(REPO, cache_dir=hub["cache"], local_files_only=True, revision="v2")
    assert m.cfg.n_layers == 2
    with pytest.raises(CheckpointNotFoundError, match="not in the local cache"):
        HookedVideoLLM.from_pretrained(REPO, local_files_only=True)  # default cache: empty


def test_missing_id_offline_names_it_and_the_download(offline):
    with pytest.raises(CheckpointNotFoundError) as e:
        HookedVideoLLM.from_pretrained("llava-hf/llava-onevision-qwen2-7b-ov-hf")
    msg = str(e.value)
    assert "'llava-hf/llava-onevision-qwen2-7b-ov-hf'" in msg and "HF_HUB_OFFLINE" in msg
    assert "hf download llava-hf/llava-onevision-qwen2-7b-ov-hf" in msg
    assert "huggingface-cli download llava-hf/llava-onevision-qwen2-7b-ov-hf" in msg
    assert str(offline["cache"]) in msg
    assert isinstance(e.value, FileNotFoundError)


def test_missing_revision_offline_names_it(offline):
    with pytest.raises(CheckpointNotFoundError, match=r"revision 'nope'.*--revision nope"):
        HookedVideoLLM.from_pretrained(REPO, revision="nope")


def test_unsupported_architecture_refused_from_config_alone(offline, tmp_path):
    """Only config.json in the cache: the family check runs before any weight is looked for."""
    ckpt = tmp_path / "bert"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    write_hub_cache(ckpt, offline["cache"], "vlens-test/bert")
    with pytest.raises(UnsupportedModelError, match=r"'BertModel' is not supported.*Supported"):
        HookedVideoLLM.from_pretrained("vlens-test/bert")


def test_local_directory_and_bad_names(tmp_path, onevision_dir):
    assert checkpoint_source(onevision_dir) == onevision_dir
    assert checkpoint_source(str(onevision_dir)) == onevision_dir
    assert isinstance(checkpoint_source("org/name", revision="v1"), HubCheckpoint)
    with pytest.raises(ValueError, match=r"revision='v1'.*local directory"):
        HookedVideoLLM.from_pretrained(onevision_dir, revision="v1")
    for bad in (tmp_path / "nope", "./nope", "a/b/c", "org//name"):
        with pytest.raises(CheckpointNotFoundError, match="does not exist as a directory and is not a hub id"):
            HookedVideoLLM.from_pretrained(bad)


_PART = r"[A-Za-z0-9]([A-Za-z0-9_-]{0,20}[A-Za-z0-9])?"


@given(st.from_regex(rf"{_PART}/{_PART}(\.{_PART})?", fullmatch=True))
def test_hub_ids_are_recognised(repo_id):
    """Every 'org/name' the hub allows is taken as an id; the same with ./ or / is a path."""
    assert looks_like_hub_id(repo_id)
    assert not looks_like_hub_id("./" + repo_id) and not looks_like_hub_id("/" + repo_id)


def test_run_config_takes_a_hub_id(offline, onevision_dir):
    """`vlens run --model org/name`: the run key names the id and fingerprints its snapshot's files."""
    from vlens.cli import build_parser, run_config
    from vlens.run import fingerprint

    args = build_parser().parse_args(
        ["run", "global1", "--model", REPO, "--revision", "v2", "--data", "synthetic:1", "--out", "x"]
    )
    config = run_config(args)
    assert config.model == REPO and config.revision == "v2"
    model = HookedVideoLLM.from_pretrained(REPO, revision="v2")
    settings = config.settings(model, [])
    assert settings["model"] == REPO and settings["revision"] == "v2"
    assert settings["model_fingerprint"] == fingerprint(offline["v2_dir"])
