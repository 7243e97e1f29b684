from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))  # strategies.py, hf_reference.py
torch.set_num_threads(min(2, torch.get_num_threads()))

from vlens import HookedVideoLLM  # noqa: E402
from vlens.testing import make_tiny_onevision  # noqa: E402


@pytest.fixture(scope="session")
def onevision_dir(tmp_path_factory):
    """A tiny random LLaVA-OneVision checkpoint saved with save_pretrained (4 layers)."""
    return make_tiny_onevision(tmp_path_factory.mktemp("ov") / "ckpt", seed=0, n_layers=4)


@pytest.fixture(scope="session")
def model(onevision_dir):
    return HookedVideoLLM.from_pretrained(onevision_dir)


@pytest.fixture(scope="session")
def hf_models(onevision_dir):
    from transformers import LlavaOnevisionForConditionalGeneration

    return {
        impl: LlavaOnevisionForConditionalGeneration.from_pretrained(onevision_dir, attn_implementation=impl).eval()
        for impl in ("eager", "sdpa")
    }


@pytest.fixture(scope="session")
def realistic_checkpoint(tmp_path_factory):
    """`realistic_checkpoint(name)`: the realistic tiny checkpoint of `name`
    (vlens.testing.realistic), built once per session (~30 s each) for every test file that uses it."""
    from real_vocab import real_tokenizer

    from vlens.testing.realistic import make_realistic, realistic_spec

    built = {}

    def get(name: str):
        if name not in built:
            spec = realistic_spec(name)
            built[name] = make_realistic(name, tmp_path_factory.mktemp(name) / "ckpt", real_tokenizer(spec.vocab))
        return built[name]

    return get


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests (`pytestmark = pytest.mark.usefixtures("one_thread")`):
    the run API's small forwards are faster so on a busy 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def run_config(model, out, **settings):
    """The run API's settings for the protocol tests: 3 synthetic clips at 8 frames, no progress
    bar; `settings` (protocols, options, …) add to or override those."""
    from vlens.run import RunConfig

    base = dict(model=model, data="synthetic:0,n=3", out=out, frames=8, progress=False)
    return RunConfig(**{**base, **settings})


def frames(n: int, h: int = 32, w: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)
