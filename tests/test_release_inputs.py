"""The study's released models fed as their authors feed them (issue 17 item 9): frame sampling,
rope_scaling, truncation at tokenizer_model_max_length, InternLM2's BOS."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch
from conftest import frames

from vlens import HookedVideoLLM
from vlens.inputs.layout import LayoutError
from vlens.testing import (
    make_tiny_internvideo2_5,
    make_tiny_llava_next_video_qwen,
    make_tiny_longva,
)


@pytest.fixture(scope="module")
def longva_dir(tmp_path_factory):
    return make_tiny_longva(tmp_path_factory.mktemp("longva") / "ckpt", seed=0)


@pytest.fixture(scope="module")
def ivideo_dir(tmp_path_factory):
    return make_tiny_internvideo2_5(tmp_path_factory.mktemp("iv") / "ckpt", seed=0)


def _edit_config(src, dst, **changes):
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    cfg.update(changes)
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def test_each_release_samples_frames_as_its_authors_do(longva_dir, ivideo_dir, tmp_path):
    longva = HookedVideoLLM.from_pretrained(longva_dir)
    assert longva.family.default_sampling == "linspace"
    # np.linspace(0, 19, 4, dtype=int) = 0, 6, 12, 19 (vlens's centres would be 2, 7, 12, 17)
    assert longva.to_inputs(frames(20), "q", n_frames=4).videos[0].indices == (0, 6, 12, 19)
    lnv = HookedVideoLLM.from_pretrained(make_tiny_llava_next_video_qwen(tmp_path / "lnv", seed=0))
    assert lnv.family.default_sampling == "fps"
    # 16 frames at 4 fps: every 4th frame is 4 frames <= 8 asked, so those 4 (the demo's 1 fps)
    assert lnv.to_inputs(frames(16), "q", n_frames=8, fps=4.0).videos[0].indices == (0, 4, 8, 12)
    iv = HookedVideoLLM.from_pretrained(ivideo_dir)
    assert iv.family.default_sampling == "internvl"
    # get_index over 40 frames, 8 segments: seg = 39/8, int(seg/2 + round(seg*i))
    assert iv.to_inputs(frames(40), "q", n_frames=8).videos[0].indices == (2, 7, 12, 17, 22, 26, 31, 36)
    assert iv.to_inputs(frames(40), "q", n_frames=8, sampling="centres").videos[0].indices == (
        2,
        7,
        12,
        17,
        22,
        27,
        32,
        37,
    )


def test_llava_releases_run_without_rope_scaling_as_the_authors_loader_does(longva_dir, tmp_path, caplog):
    scaled = _edit_config(longva_dir, tmp_path / "scaled", rope_scaling={"type": "linear", "factor": 4.0})
    plain = HookedVideoLLM.from_pretrained(longva_dir)
    with caplog.at_level(logging.WARNING):
        model = HookedVideoLLM.from_pretrained(scaled)  # not refused: the authors run it
    assert "overrides with None" in caplog.text
    inputs = plain.to_inputs(frames(4), "q", n_frames=4)
    with torch.no_grad():
        assert torch.equal(model(inputs), plain(inputs))


def test_prompts_past_tokenizer_model_max_length_are_refused_with_the_reason(longva_dir, tmp_path):
    model = HookedVideoLLM.from_pretrained(longva_dir)
    n = model.to_inputs(frames(4), "q", n_frames=4).seq_len
    short = HookedVideoLLM.from_pretrained(
        _edit_config(longva_dir, tmp_path / "short", tokenizer_model_max_length=n - 1)
    )
    with pytest.raises(
        LayoutError, match=f"over the release's tokenizer_model_max_length={n - 1}: the authors' code would cut"
    ):
        short.to_inputs(frames(4), "q", n_frames=4)
    assert short.to_inputs(frames(2), "q", n_frames=2).seq_len < n  # fewer frames fit


def _with_bos(src, dst, *, tokenizer_adds: bool, add_bos_token: bool | None):
    """The tiny release with a `<s>` BOS token (as InternLM2's tokenizer has), whose tokenizer.json
    adds it itself or not, and tokenizer_config.json's add_bos_token as given."""
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    shutil.copytree(src, dst)
    tok = PreTrainedTokenizerFast.from_pretrained(dst)
    tok.add_special_tokens({"bos_token": "<s>"})
    if tokenizer_adds:
        bos = tok.convert_tokens_to_ids("<s>")
        tok.backend_tokenizer.post_processor = TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    tok.save_pretrained(dst)
    tc = json.loads((dst / "tokenizer_config.json").read_text())
    tc.pop("add_bos_token", None)
    if add_bos_token is not None:
        tc["add_bos_token"] = add_bos_token
    (dst / "tokenizer_config.json").write_text(json.dumps(tc))
    return dst


@pytest.mark.parametrize("tokenizer_adds", [False, True])
def test_internvideo_prompts_start_with_bos_exactly_once(ivideo_dir, tmp_path, tokenizer_adds):
    model = HookedVideoLLM.from_pretrained(
        _with_bos(ivideo_dir, tmp_path / "bos", tokenizer_adds=tokenizer_adds, add_bos_token=None)
    )
    ids = model.to_inputs(frames(8), "q", n_frames=8, sampling="centres")["input_ids"][0].tolist()
    bos = model.tokenizer.bos_token_id
    assert ids[0] == bos and ids.count(bos) == 1


def test_internvideo_without_bos_when_the_release_says_so(ivideo_dir, tmp_path):
    model = HookedVideoLLM.from_pretrained(
        _with_bos(ivideo_dir, tmp_path / "nobos", tokenizer_adds=False, add_bos_token=False)
    )
    ids = model.to_inputs(frames(8), "q", n_frames=8, sampling="centres")["input_ids"][0].tolist()
    assert model.tokenizer.bos_token_id not in ids
    from vlens.families.release_common import ReleaseFormatError

    with pytest.raises(ReleaseFormatError, match=r"add_bos_token=false but the tokenizer.json adds a BOS"):
        HookedVideoLLM.from_pretrained(
            _with_bos(ivideo_dir, tmp_path / "clash", tokenizer_adds=True, add_bos_token=False)
        )
