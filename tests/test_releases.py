"""The study's models as released in their authors' own formats (LongVA, LLaVA-NeXT-Video-32B-Qwen,
InternVideo2.5): tiny random checkpoints written in each release's key layout and config format
load through `HookedVideoLLM.from_pretrained(dir)` and equal a plain-torch reference forward
written from the original equations (tests/release_reference.py), clean and under knockouts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import release_reference as ref
import torch
from conftest import frames

from vlens import HookedVideoLLM, testing
from vlens import knockout as ko
from vlens.families.llava_qwen_release import CLIP_MEAN, CLIP_STD, PLACEHOLDER
from vlens.families.release_common import ReleaseFormatError

ATOL = 1e-4
Q = "what color is the ball"

LLAVA = {
    # name: (builder, pool mode, stride, newline, (pooled side, tokens a frame))
    "longva": (testing.make_tiny_longva, "average", 2, "none", (2, 4)),
    "llava-next-video-qwen": (testing.make_tiny_llava_next_video_qwen, "average", 2, "grid", (2, 6)),
}


@pytest.fixture(scope="module", params=list(LLAVA))
def llava(request, tmp_path_factory):
    build = LLAVA[request.param][0]
    path = build(tmp_path_factory.mktemp(request.param) / "ckpt", n_layers=3)
    return request.param, path, HookedVideoLLM.from_pretrained(path)


def _llava_ref(name, path, inputs, blocked=None):
    _, mode, stride, newline, _ = LLAVA[name]
    pid = int(inputs["input_ids"][0][inputs.layout.is_vision][0])
    return ref.llava_qwen_logits(
        path,
        inputs["input_ids"],
        inputs["pixel_values_videos"],
        pid,
        pool_mode=mode,
        pool_stride=stride,
        newline=newline,
        blocked=blocked,
    )


def test_llava_release_logits_equal_reference(llava):
    name, path, model = llava
    assert model.family.name == name and type(model.hf_model).__name__ == "LlavaOnevisionForConditionalGeneration"
    side, per_frame = LLAVA[name][4]
    for n in (1, 3):
        inputs = model.to_inputs(frames(n, 36, 48, seed=n), Q, n_frames=n, sampling="centres")
        lay = inputs.layout
        assert lay.counts()["video"] == n * per_frame and "separator" not in lay.counts()
        assert lay.n_frames == n
        for f in range(n):  # each frame: side×side patches, raster order, (+ a newline per row for "grid")
            pos = lay.frame_positions(f)
            rc = [(int(lay.row[p]), int(lay.col[p])) for p in pos]
            expect = []
            for r in range(side):
                expect += [(r, c) for c in range(side)] + ([(-1, -1)] if LLAVA[name][3] == "grid" else [])
            assert rc == expect, (f, rc)
        with torch.no_grad():
            ours = model(inputs)
        expected = _llava_ref(name, path, inputs)
        diff = (ours - expected).abs().max().item()
        assert diff <= ATOL, (name, n, diff)


def test_llava_release_prompt_is_qwen_1_5_with_chunks_tokenized_apart(llava):
    """Text tokens are LLaVA's tokenizer_image_token of the qwen_1_5 prompt: the chunks before and
    after <image> tokenized separately, the features in between."""
    _, _path, model = llava
    inputs = model.to_inputs(frames(2, seed=3), Q, n_frames=2, sampling="centres")
    ids = inputs["input_ids"][0]
    tok = model.tokenizer
    prompt = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<image>\n"
        f"{Q}<|im_end|>\n<|im_start|>assistant\n"
    )
    before, after = prompt.split("<image>")
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]
    vis = inputs.layout.is_vision
    first, last = int(vis.nonzero()[0]), int(vis.nonzero()[-1])
    assert ids[:first].tolist() == enc(before)
    assert ids[last + 1 :].tolist() == enc(after)
    assert (ids[vis] == tok.convert_tokens_to_ids(PLACEHOLDER)).all()


def test_llava_release_frame_preprocessing(llava):
    """Frames already at the tower's size: pixel values are (x/255 − mean)/std with the tower's
    statistics (CLIP's for LongVA, 0.5 for SigLIP), channels first."""
    name, _path, model = llava
    size = model.hf_model.config.vision_config.image_size
    clip = frames(2, size, size, seed=4)
    px = model.to_inputs(clip, Q, n_frames=2, sampling="centres")["pixel_values_videos"][0]
    mean, std = (CLIP_MEAN, CLIP_STD) if name == "longva" else ((0.5,) * 3, (0.5,) * 3)
    expect = (torch.from_numpy(clip).float() / 255 - torch.tensor(mean)) / torch.tensor(std)
    assert (px - expect.permute(0, 3, 1, 2)).abs().max().item() <= 1e-5


def _knockout(model, inputs, spec_name, layers):
    """Our logits under the named knockout at `layers`, and its blocked edges by layer (the
    reference forwards' `blocked`)."""
    hooks = ko.from_name(spec_name).hooks(inputs, layers=ko.layers(layers))
    with torch.no_grad():
        ours = model.run_with_hooks(inputs, fwd_hooks=hooks)
    blocked = hooks[0][1].blocked_full(inputs.seq_len, "cpu")[0]
    return ours, dict.fromkeys(layers, blocked)


@pytest.mark.parametrize("spec_name,layers", [("lv", [1, 2]), ("vt", [0, 2]), ("vs", [0, 1])])
def test_llava_release_knockouts_equal_reference(llava, spec_name, layers):
    name, path, model = llava
    inputs = model.to_inputs(frames(3, seed=7), Q, n_frames=3, sampling="centres")
    ours, blocked = _knockout(model, inputs, spec_name, layers)
    expected = _llava_ref(name, path, inputs, blocked=blocked)
    clean = _llava_ref(name, path, inputs)
    assert (ours - expected).abs().max().item() <= ATOL
    assert (expected - clean).abs().max().item() > 1e-3, "the knockout changed nothing: the test would be vacuous"


def test_unrecognised_llava_checkpoint_names_what_was_found(tmp_path):
    path = testing.make_tiny_longva(tmp_path / "ckpt", n_layers=1)
    cfg = json.loads((path / "config.json").read_text())
    cfg["mm_patch_merge_type"] = "spatial_weird"
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ReleaseFormatError) as err:
        HookedVideoLLM.from_pretrained(path)
    msg = str(err.value)
    assert "spatial_weird" in msg and "LongVA" in msg and "LLaVA-NeXT-Video-32B-Qwen" in msg and "clip" in msg


def test_vlens_never_turns_on_trust_remote_code():
    src = Path(__file__).resolve().parents[1] / "vlens"
    offenders = [str(p) for p in src.rglob("*.py") if "trust_remote_code=True" in p.read_text()]
    assert not offenders, offenders


# InternVideo2.5 --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ivideo(tmp_path_factory):
    path = testing.make_tiny_internvideo2_5(tmp_path_factory.mktemp("iv") / "ckpt", n_layers=3)
    return path, HookedVideoLLM.from_pretrained(path)


def _iv_ref(model, path, inputs, blocked=None, compress=True):
    ctx = model.hf_model.config.image_token_id
    return ref.internvideo_logits(
        path, inputs["input_ids"], inputs["pixel_values"], ctx, compress=compress, blocked=blocked
    )


def test_internvideo_logits_equal_reference_with_token_compression(ivideo):
    path, model = ivideo
    assert model.family.name == "internvideo2.5" and type(model.hf_model).__name__ == "InternVLForConditionalGeneration"
    for n in (4, 8):
        inputs = model.to_inputs(frames(n, 48, 48, seed=n), Q, n_frames=n, sampling="centres")
        lay = inputs.layout
        # 16 merged tokens in each frame's <img> block; a group of 4 frames shares its 64
        assert lay.counts()["video"] == 16 * n and lay.n_frames == n // 4 and lay.frames_per_group == 4
        assert lay.counts()["marker"] > 0
        with torch.no_grad():
            ours = model(inputs)
        diff = (ours - _iv_ref(model, path, inputs)).abs().max().item()
        assert diff <= ATOL, (n, diff)
    with pytest.raises(ValueError, match="multiple of 4"):
        model(model.to_inputs(frames(3, seed=1), Q, n_frames=3, sampling="centres"))


@pytest.mark.parametrize("spec_name,layers", [("lv", [1, 2]), ("vt", [0, 1]), ("vs", [2])])
def test_internvideo_knockouts_equal_reference(ivideo, spec_name, layers):
    path, model = ivideo
    inputs = model.to_inputs(frames(8, seed=5), Q, n_frames=8, sampling="centres")
    ours, blocked = _knockout(model, inputs, spec_name, layers)
    expected = _iv_ref(model, path, inputs, blocked=blocked)
    assert (ours - expected).abs().max().item() <= ATOL
    assert (expected - _iv_ref(model, path, inputs)).abs().max().item() > 1e-3


# vlens convert ---------------------------------------------------------------------------------------
def test_convert_internvideo_without_compression_loads_in_transformers(ivideo, tmp_path, capsys):
    import transformers

    from vlens.cli import main

    path, _ = ivideo
    assert main(["convert", str(path), str(tmp_path / "refused")]) == 2  # compression: no exact HF class
    assert "--no-token-compression" in capsys.readouterr().err
    out = tmp_path / "hf"
    assert main(["convert", str(path), str(out), "--no-token-compression"]) == 0
    hf = transformers.InternVLForConditionalGeneration.from_pretrained(out).eval()
    model = HookedVideoLLM.from_pretrained(out)  # the HF-format path (family internvl)
    assert model.family.name == "internvl"
    inputs = model.to_inputs(frames(3, 48, 48, seed=2), Q, n_frames=3, sampling="centres")
    with torch.no_grad():
        theirs = hf(**inputs).logits
        ours = model(inputs)
    expected = _iv_ref(model, path, inputs, compress=False)
    assert (theirs - expected).abs().max().item() <= ATOL
    assert (ours - expected).abs().max().item() <= ATOL


def test_convert_llava_release_is_a_clear_error(llava, tmp_path, capsys):
    from vlens.cli import main

    _name, path, _ = llava
    assert main(["convert", str(path), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no transformers class computes" in err and "from_pretrained" in err


def test_hooks_page_lists_exactly_the_hooks(llava, ivideo):
    from hooks_page import assert_hooks_documented

    assert_hooks_documented(llava[2])
    assert_hooks_documented(ivideo[1])
