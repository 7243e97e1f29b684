"""VideoLLaMA3's own parts: the processor's token compression (differential frame pruning) drives
the layout token by token, and parity, padded batches, knockouts and `Edges` hold on pruned
inputs; per-frame "Time t s:" markers and their text roles; refusals. (Parity, knockouts,
generation and layout on unpruned clips run in test_families.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers
from conftest import frames
from hf_reference import hf_knockout

from vlens import HookedVideoLLM, testing
from vlens import knockout as ko
from vlens.inputs.layout import LayoutError
from vlens.inputs.prompts import mc_question
from vlens.inputs.roles import with_roles

ATOL = 1e-4
Q = "what color is the object"
TOKEN = 8  # pixels per merged token side: patch 4 × merge 2


def still_with_change(n: int, changed: dict[int, list[tuple[int, int]]], seed: int = 0) -> np.ndarray:
    """n identical 32×32 frames, except that in frame f the tokens (r, c) of `changed[f]` get new
    pixels: the compressor keeps frame 0 whole and, after it, exactly those tokens."""
    rng = np.random.default_rng(seed)
    clip = np.repeat(rng.integers(0, 256, size=(1, 32, 32, 3), dtype=np.uint8), n, axis=0)
    for f, cells in changed.items():
        for r, c in cells:
            clip[f:, r * TOKEN : (r + 1) * TOKEN, c * TOKEN : (c + 1) * TOKEN] = rng.integers(0, 256, (TOKEN, TOKEN, 3))
    return clip


CHANGES = {1: [(0, 1), (2, 3)], 2: [(3, 0)]}  # frame 3 changes nothing: keeps only its first token


@pytest.fixture(scope="module")
def vl3(tmp_path_factory):
    path = testing.make_tiny_video_llama3(tmp_path_factory.mktemp("vl3") / "ckpt", n_layers=3)
    model = HookedVideoLLM.from_pretrained(path)
    hf = transformers.VideoLlama3ForConditionalGeneration.from_pretrained(path, attn_implementation="sdpa").eval()
    return model, hf


def _diff(a, b, mask) -> float:
    return (a - b)[mask.bool()].abs().max().item()


def test_pruned_tokens_leave_the_layout_exactly_as_the_processor_drops_them(vl3):
    model, hf = vl3
    inputs = model.to_inputs(still_with_change(4, CHANGES), Q, n_frames=4, fps=2.0)
    lay = inputs.layout
    kept = inputs["video_compression_mask"].view(4, 16)
    assert kept[0].all() and kept.sum(1).tolist() == [16, 2, 1, 1]
    expect = {0: [(r, c) for r in range(4) for c in range(4)], 1: CHANGES[1], 2: CHANGES[2], 3: [(0, 0)]}
    for f, cells in expect.items():
        pos = lay.frame_positions(f)
        assert list(zip(lay.row[pos].tolist(), lay.col[pos].tolist())) == cells
    assert lay.counts()["video"] == int((inputs["input_ids"] == model.hf_model.config.video_token_id).sum()) == 20
    with torch.no_grad():
        ours, ref = model(inputs), hf(**inputs).logits
        _, cache = model.run_with_cache(inputs, names_filter="hook_video_features")
        feats = hf.model.get_video_features(
            inputs["pixel_values_videos"], inputs["video_grid_thw"], inputs["video_merge_sizes"]
        ).pooler_output[0]
    assert _diff(ours, ref, inputs["attention_mask"]) <= ATOL
    # the hook holds the kept tokens' features, in sequence order (frame, row, col)
    assert (cache["hook_video_features"][0] - feats[inputs["video_compression_mask"]]).abs().max() <= ATOL


def test_padded_batch_of_rows_pruned_differently_matches_hf(vl3):
    model, hf = vl3
    clips = [still_with_change(3, {1: [(1, 1)]}, seed=1), frames(3, seed=2)]
    inputs = model.to_inputs(clips, [Q, "how many objects are moving"], n_frames=3, fps=2.0)
    assert [l.counts()["video"] for l in inputs.layouts] == [18, 48]
    assert inputs.layouts[0].counts()["pad"] > 0
    with torch.no_grad():
        ours, ref = model(inputs), hf(**inputs).logits
        single = model(model.to_inputs(clips[0], Q, n_frames=3, fps=2.0))
    assert _diff(ours, ref, inputs["attention_mask"]) <= ATOL
    assert (ours[0, -1] - single[0, -1]).abs().max() <= ATOL
    with torch.no_grad():
        ref_tokens = hf.generate(**inputs, max_new_tokens=4, do_sample=False)[:, inputs.seq_len :]
    assert model.generate(inputs, max_new_tokens=4).tolist() == ref_tokens.tolist()
    diffs = []
    with torch.no_grad():
        for spec in (ko.LV(), ko.VT() | ko.VS()):
            hooks = spec.hooks(inputs, layers=ko.layers([0, 2]))
            blocked = hooks[0][1].blocked_full(inputs.seq_len, "cpu")
            with hf_knockout(hf, {0: blocked, 2: blocked}):
                ref = hf(**inputs).logits
            diffs.append(_diff(model.run_with_hooks(inputs, fwd_hooks=hooks), ref, inputs["attention_mask"]))
    assert max(diffs) <= ATOL, diffs


@pytest.mark.parametrize(
    "spec",
    [
        ko.Edges("question", "marker"),
        ko.Edges("video", "marker"),
        ko.Edges("video", "video", frames="earlier"),
        ko.LV() | ko.VT() | ko.VS(),
    ],
    ids=["question<-marker", "video<-marker", "video<-earlier", "lv+vt+vs"],
)
def test_edges_on_pruned_frames_equal_hf_reference(vl3, spec):
    model, hf = vl3
    inputs = with_roles(model, model.to_inputs(still_with_change(4, CHANGES, seed=3), Q, n_frames=4, fps=2.0), Q)
    hooks = spec.hooks(inputs, layers=ko.layers([1, 2]))
    blocked = hooks[0][1].blocked_full(inputs.seq_len, "cpu")
    assert blocked.any()
    with torch.no_grad():
        ours = model.run_with_hooks(inputs, fwd_hooks=hooks)
        with model.attention_path_as("explicit"):
            explicit = model.run_with_hooks(inputs, fwd_hooks=hooks)
        with hf_knockout(hf, {1: blocked, 2: blocked}):
            ref = hf(**inputs).logits
        clean = hf(**inputs).logits
    assert max(_diff(ours, ref, inputs["attention_mask"]), _diff(explicit, ref, inputs["attention_mask"])) <= ATOL
    assert _diff(ref, clean, inputs["attention_mask"]) > 1e-4, "the knockout changed nothing: the test would be vacuous"


def test_timestamps_are_markers_of_their_frame_and_roles_label_the_text(vl3):
    model, _ = vl3
    question = mc_question(Q, ["red", "blue"])
    inputs = with_roles(
        model,
        model.to_inputs(still_with_change(3, {1: [(0, 0)]}), question, n_frames=3, fps=2.0),
        Q,
        ["red", "blue"],
        answer="B",
    )
    lay = inputs.layout
    labels = model.to_str_tokens(inputs, roles=True)
    markers = lay.positions("marker")
    # "Time 0.0s:" / ",Time 0.5s:" / ",Time 1.0s:": markers of the frame they announce, no role
    text = [
        model.tokenizer.decode(inputs["input_ids"][0, markers[lay.frame[markers] == f]].tolist()).replace(" ", "")
        for f in range(3)
    ]
    assert text == ["Time0.0s:", ",Time0.5s:", ",Time1.0s:"]
    assert all(lay.frame_positions(int(lay.frame[p]))[0] > p for p in markers)  # each announces the frame after it
    assert {lay.role[p] for p in markers} <= {"template"}
    roles = {lay.role[i] for i in range(len(lay)) if lay.segment[i] == "text"}
    assert {"question", "option", "last"} <= roles
    assert labels[int(markers[0])].startswith("Time")
    assert "<f1 r0 c0>" in labels and "<f2 r0 c0>" in labels  # frame 2 keeps its first token only


def test_compression_switched_off_keeps_every_token(vl3):
    """`use_token_compression=False` on the checkpoint's video processor: a still clip keeps all
    its tokens, and the layout and logits still follow HF."""
    model, hf = vl3
    vp = model.processor.video_processor
    vp.use_token_compression = False
    try:
        inputs = model.to_inputs(still_with_change(3, {}), Q, n_frames=3, fps=2.0)
    finally:
        vp.use_token_compression = True
    assert bool(inputs["video_compression_mask"].all()) and inputs.layout.counts()["video"] == 48
    with torch.no_grad():
        assert _diff(model(inputs), hf(**inputs).logits, inputs["attention_mask"]) <= ATOL


def test_inputs_from_hf_lays_out_the_same_rows(vl3):
    model, _ = vl3
    clips = [still_with_change(3, {2: [(1, 2)]}, seed=4), frames(3, seed=5)]
    inputs = model.to_inputs(clips, [Q, "how many objects are moving"], n_frames=3, fps=2.0)
    raw = model.inputs_from_hf(dict(inputs.items()))
    for a, b in zip(inputs.layouts, raw.layouts):
        assert a.segment == b.segment and torch.equal(a.frame, b.frame) and torch.equal(a.row, b.row)
    with torch.no_grad():
        assert (model(raw) - model(inputs)).abs().max() <= 1e-6


def test_efficient_inference_on_pruned_frames_equals_its_knockout_equivalent(vl3):
    """Frames of unequal size (pruned) take the masked path for temporal pruning: same edges."""
    from vlens.interventions.efficient import (
        EfficientConfig,
        efficient_forward,
        equivalent_hooks,
    )

    model, _ = vl3
    cfg = EfficientConfig(2, 1)
    inputs = model.to_inputs(still_with_change(4, CHANGES), Q, n_frames=4, fps=2.0)
    out = efficient_forward(model, inputs, cfg)
    with torch.no_grad():
        ref = model.run_with_hooks(inputs, fwd_hooks=equivalent_hooks(inputs, cfg, model.cfg.n_layers))
    assert (out.logits[0] - ref[0, ~inputs.layout.is_vision]).abs().max() <= ATOL


def test_refusals(vl3, tmp_path):
    model, _ = vl3
    with pytest.raises(ValueError, match="fps="):
        model.to_inputs(frames(2), Q, n_frames=2)
    with pytest.raises(LayoutError, match="images"):
        model.to_inputs(frames(2), Q, n_frames=2, fps=2.0, images=[np.zeros((32, 32, 3), dtype=np.uint8)])
    inputs = model.to_inputs(frames(2), Q, n_frames=2, fps=2.0)
    kwargs = dict(inputs)
    kwargs["video_compression_mask"] = kwargs["video_compression_mask"][:-1]
    with pytest.raises(LayoutError, match="video_compression_mask"):
        model.inputs_from_hf(kwargs)
    with pytest.raises(LayoutError, match="video_merge_sizes"):
        model.inputs_from_hf({k: v for k, v in inputs.items() if k != "video_merge_sizes"})
    with pytest.raises(ValueError, match="pixel_values"):
        model.inputs_from_hf({**dict(inputs), "pixel_values": torch.zeros(4, 48)})
