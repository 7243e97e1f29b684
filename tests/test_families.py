"""Every supported family, on a tiny random checkpoint built offline with its real HF processor:
clean logits, padded batches, generation and knockouts equal the HF model (fp32, ≤ 1e-4), and the
layout matches what the processor put in the sequence (frames, temporal groups, markers)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import torch
import transformers
from conftest import frames
from hf_reference import hf_knockout

from vlens import HookedVideoLLM, testing
from vlens import knockout as ko
from vlens.components.kv_cache import KVCache
from vlens.families import FAMILIES, UnsupportedModelError, family_for

ATOL = 1e-4
QUESTIONS = ["what color is the object", "how many objects are moving to the left in the video"]


@dataclass(frozen=True)
class FamilyCase:
    name: str
    build: Callable
    hf_class: str
    # (n_frames, height, width) of the clean-parity clips
    clips: tuple = ((1, 32, 32), (2, 32, 32), (3, 40, 56))
    build_kwargs: dict = field(default_factory=lambda: {"n_layers": 4})
    to_inputs_kwargs: dict = field(default_factory=dict)
    check_layout: str = ""  # name of the check_* function below


CASES = {
    "llava-next-video": FamilyCase(
        "llava-next-video",
        testing.make_tiny_llava_next_video,
        "LlavaNextVideoForConditionalGeneration",
        check_layout="check_llava_next_video_layout",
    ),
    "video-llava": FamilyCase(
        "video-llava",
        testing.make_tiny_video_llava,
        "VideoLlavaForConditionalGeneration",
        check_layout="check_video_llava_layout",
    ),
    "qwen2.5-vl": FamilyCase(
        "qwen2.5-vl",
        testing.make_tiny_qwen2_5_vl,
        "Qwen2_5_VLForConditionalGeneration",
        to_inputs_kwargs={"fps": 3.0},
        check_layout="check_qwen2_5_vl_layout",
    ),
    "qwen2-vl": FamilyCase(
        "qwen2-vl", testing.make_tiny_qwen2_vl, "Qwen2VLForConditionalGeneration", check_layout="check_qwen2_vl_layout"
    ),
    "qwen3-vl": FamilyCase(
        "qwen3-vl",
        testing.make_tiny_qwen3_vl,
        "Qwen3VLForConditionalGeneration",
        clips=((2, 32, 32), (3, 40, 56), (5, 32, 32)),  # the Qwen3-VL processor needs >= 2 frames
        to_inputs_kwargs={"fps": 3.0},
        check_layout="check_qwen3_vl_layout",
    ),
    "qwen3-vl-moe": FamilyCase(
        "qwen3-vl-moe",
        testing.make_tiny_qwen3_vl_moe,
        "Qwen3VLMoeForConditionalGeneration",
        clips=((2, 32, 32), (3, 40, 56)),
        build_kwargs={"n_layers": 3},
        to_inputs_kwargs={"fps": 3.0},
        check_layout="check_qwen3_vl_layout",
    ),
    "smolvlm2": FamilyCase(
        "smolvlm2",
        testing.make_tiny_smolvlm,
        "SmolVLMForConditionalGeneration",
        to_inputs_kwargs={"fps": 3.0},
        check_layout="check_smolvlm_layout",
    ),
    "internvl": FamilyCase(
        "internvl", testing.make_tiny_internvl, "InternVLForConditionalGeneration", check_layout="check_internvl_layout"
    ),
    "videollama3": FamilyCase(
        "videollama3",
        testing.make_tiny_video_llama3,
        "VideoLlama3ForConditionalGeneration",
        clips=((1, 32, 32), (2, 32, 32), (3, 40, 56), (5, 32, 32)),
        to_inputs_kwargs={"fps": 3.0},
        check_layout="check_video_llama3_layout",
    ),
    "glm4v": FamilyCase(
        "glm4v",
        testing.make_tiny_glm4v,
        "Glm4vForConditionalGeneration",
        clips=((2, 32, 32), (3, 40, 56), (5, 32, 32)),  # the GLM-4.1V video processor needs >= 2 frames
        to_inputs_kwargs={"fps": 3.0},
        check_layout="check_glm4v_layout",
    ),
    "perception-lm": FamilyCase(
        "perception-lm",
        testing.make_tiny_perception_lm,
        "PerceptionLMForConditionalGeneration",
        clips=((1, 32, 32), (2, 32, 32), (3, 40, 56), (8, 24, 40)),
        check_layout="check_perception_lm_layout",
    ),
}


@dataclass
class Loaded:
    case: FamilyCase
    path: object
    model: HookedVideoLLM
    hf: torch.nn.Module

    def inputs(self, video, question, n_frames):
        return self.model.to_inputs(video, question, n_frames=n_frames, **self.case.to_inputs_kwargs)


@pytest.fixture(scope="session", params=list(CASES))
def fam(request, tmp_path_factory) -> Loaded:
    case = CASES[request.param]
    path = case.build(tmp_path_factory.mktemp(case.name) / "ckpt", seed=0, **case.build_kwargs)
    model = HookedVideoLLM.from_pretrained(path)
    hf = getattr(transformers, case.hf_class).from_pretrained(path, attn_implementation="sdpa").eval()
    return Loaded(case, path, model, hf)


def _max_diff(a, b, mask) -> float:
    return (a - b)[mask.bool()].abs().max().item()


# parity -------------------------------------------------------------------------------------------
def test_loads_as_its_family(fam):
    assert fam.model.family.name == fam.case.name
    assert type(fam.model.hf_model).__name__ == fam.case.hf_class
    hf_q = fam.model.family.weight_table(fam.model.cfg)["blocks.0.attn.q_proj.weight"]
    assert hf_q.endswith("layers.0.self_attn.q_proj.weight")
    assert fam.model.blocks[0].attn.q_proj.weight.data_ptr() == fam.model.hf_model.get_parameter(hf_q).data_ptr()


def test_clean_logits_match_hf(fam):
    for n_frames, h, w in fam.case.clips:
        inputs = fam.inputs(frames(n_frames, h, w, seed=n_frames), QUESTIONS[0], n_frames)
        with torch.no_grad():
            ref = fam.hf(**inputs).logits
            ours = fam.model(inputs)
        assert ours.shape == ref.shape
        diff = _max_diff(ours, ref, inputs["attention_mask"])
        assert diff <= ATOL, (n_frames, h, w, diff)


def test_padded_batch_matches_hf_and_single_rows(fam):
    vids = [frames(2, seed=1), frames(2, seed=2)]
    inputs = fam.inputs(vids, QUESTIONS, 2)
    assert (inputs["attention_mask"][0] == 0).any(), "the shorter row must be left-padded"
    assert inputs.layouts[0].counts()["pad"] > 0
    with torch.no_grad():
        ref = fam.hf(**inputs).logits
        ours = fam.model(inputs)
        single = fam.model(fam.inputs(vids[0], QUESTIONS[0], 2))
    assert _max_diff(ours, ref, inputs["attention_mask"]) <= ATOL
    assert (ours[0, -1] - single[0, -1]).abs().max().item() <= ATOL


def test_greedy_generate_matches_hf(fam):
    inputs = fam.inputs([frames(2, seed=5), frames(2, seed=6)], QUESTIONS, 2)
    with torch.no_grad():
        ref = fam.hf.generate(**inputs, max_new_tokens=5, do_sample=False)
    ours = fam.model.generate(inputs, max_new_tokens=5)
    assert ours.tolist() == ref[:, inputs.seq_len :].tolist()


# knockouts ----------------------------------------------------------------------------------------
def _knockout_diffs(fam, inputs, spec, layer_list):
    model, hf = fam.model, fam.hf
    sel = ko.layers(layer_list)
    out = {}
    with torch.no_grad():
        for on in ("pattern", "attn_scores"):
            hooks = spec.hooks(inputs, layers=sel, on=on)
            out[f"fast/{on}"] = model.run_with_hooks(inputs, fwd_hooks=hooks)
            with model.attention_path_as("explicit"):
                out[f"explicit/{on}"] = model.run_with_hooks(inputs, fwd_hooks=hooks)
        blocked = hooks[0][1].blocked_full(inputs.seq_len, "cpu")
        with hf_knockout(hf, dict.fromkeys(layer_list, blocked)):
            ref = hf(**inputs).logits
        clean = hf(**inputs).logits
    real = inputs["attention_mask"]
    return {k: _max_diff(v, ref, real) for k, v in out.items()}, _max_diff(ref, clean, real)


@pytest.mark.parametrize("spec_name", ["lv", "vt", "vs", "lv+vt+vs"])
def test_knockouts_equal_hf_reference(fam, spec_name):
    rng = random.Random(f"{fam.case.name}/{spec_name}")
    L = fam.model.cfg.n_layers
    layer_list = sorted(rng.sample(range(L), rng.randint(1, L)))
    inputs = fam.inputs(frames(3, seed=7), QUESTIONS[1], 3)
    diffs, effect = _knockout_diffs(fam, inputs, ko.from_name(spec_name), layer_list)
    assert max(diffs.values()) <= ATOL, (layer_list, diffs)
    assert effect > 1e-3, f"{spec_name} on layers {layer_list} changed nothing: the test would be vacuous"


def test_knockout_on_padded_batch_equals_hf(fam):
    inputs = fam.inputs([frames(2, seed=3), frames(2, seed=4)], QUESTIONS, 2)
    diffs, _ = _knockout_diffs(fam, inputs, ko.LV() | ko.VT(), [0, 2])
    assert max(diffs.values()) <= ATOL, diffs


# layouts ------------------------------------------------------------------------------------------
def test_layout_matches_the_processor(fam):
    globals()[fam.case.check_layout](fam)


def _check_frames_are_contiguous_blocks(layout, tokens_per_frame, grid):
    """Frames (groups) come in order, each a contiguous run of video positions, raster-ordered."""
    gh, gw = grid
    vid = layout.positions("video")
    for f in range(layout.n_frames):
        pos = layout.frame_positions(f)
        assert len(pos) == tokens_per_frame, (f, len(pos))
        patches = pos[layout.row[pos] >= 0]
        assert len(patches) == gh * gw
        rc = list(zip(layout.row[patches].tolist(), layout.col[patches].tolist()))
        assert rc == [(r, c) for r in range(gh) for c in range(gw)], rc
        if f + 1 < layout.n_frames:
            assert int(pos[-1]) < int(layout.frame_positions(f + 1)[0])
    assert set(layout.frame[vid].tolist()) == set(range(layout.n_frames))


def check_llava_next_video_layout(fam):
    vcfg = fam.model.hf_model.config.vision_config
    g = (vcfg.image_size // vcfg.patch_size) // 2
    for n in (1, 3):
        inputs = fam.inputs(frames(n, 40, 56), QUESTIONS[0], n)
        lay = inputs.layout
        ids = inputs["input_ids"][0]
        n_placeholders = int((ids == fam.model.hf_model.config.video_token_id).sum())
        assert lay.counts() == {"system": 2, "video": n * g * g, "text": len(lay) - 2 - n * g * g}
        assert n_placeholders == n * g * g  # the processor's count
        assert lay.n_frames == n and lay.frames_per_group == 1
        _check_frames_are_contiguous_blocks(lay, g * g, (g, g))
        # the video is one contiguous block: no separators, no markers
        vid = lay.positions("video")
        assert int(vid[-1] - vid[0]) + 1 == len(vid)


def check_video_llava_layout(fam):
    vcfg = fam.model.hf_model.config.vision_config
    p = vcfg.image_size // vcfg.patch_size
    for n in (1, 3):
        inputs = fam.inputs(frames(n, 40, 56), QUESTIONS[0], n)
        lay = inputs.layout
        ids = inputs["input_ids"][0]
        assert int((ids == fam.model.hf_model.config.video_token_id).sum()) == n * (1 + p * p)
        assert lay.counts()["video"] == n * (1 + p * p) and "separator" not in lay.counts()
        assert lay.n_frames == n
        _check_frames_are_contiguous_blocks(lay, 1 + p * p, (p, p))
        for f in range(n):  # every frame starts with its CLS token: row/col -1
            first = int(lay.frame_positions(f)[0])
            assert (int(lay.row[first]), int(lay.col[first])) == (-1, -1)
        assert sum(lbl.endswith("extra>") for lbl in lay.labels()) == n


def check_qwen2_5_vl_layout(fam):
    cfg = fam.model.hf_model.config
    tps = cfg.vision_config.tokens_per_second
    for n, h, w, fps in ((1, 32, 32, 3.0), (3, 32, 32, 3.0), (4, 40, 56, 1.0)):
        inputs = fam.model.to_inputs(frames(n, h, w), QUESTIONS[0], n_frames=n, fps=fps)
        lay, ids = inputs.layout, inputs["input_ids"][0]
        t, gh, gw = (int(x) for x in inputs["video_grid_thw"][0])
        gh, gw = gh // 2, gw // 2
        assert (gh, gw) == (h // 8, w // 8)  # processor resized to multiples of patch·merge = 8
        assert t == (n + 1) // 2 == lay.n_frames and lay.frames_per_group == 2  # 2 frames a temporal patch
        assert int((ids == cfg.video_token_id).sum()) == t * gh * gw == lay.counts()["video"]
        _check_frames_are_contiguous_blocks(lay, gh * gw, (gh, gw))
        # markers: <|vision_start|> right before the video, <|vision_end|> right after
        vid = lay.positions("video")
        assert lay.positions("marker").tolist() == [int(vid[0]) - 1, int(vid[-1]) + 1]
        assert int(ids[vid[0] - 1]) == cfg.vision_start_token_id and int(ids[vid[-1] + 1]) == cfg.vision_end_token_id
        assert lay.frame_times == pytest.approx([i / fps for i in range(n)])
        # M-RoPE: group g at temporal position start + floor(g * tokens_per_second * 2 / fps),
        # rows/cols at start + r / c; text continues after the largest position
        pos = fam.model.position_ids(inputs)[:, 0]
        start = int(vid[0])
        expect_t = [start + int(g * tps * 2 / fps) for g in lay.frame[vid].tolist()]
        assert pos[0, vid].tolist() == expect_t
        assert pos[1, vid].tolist() == [start + r for r in lay.row[vid].tolist()]
        assert pos[2, vid].tolist() == [start + c for c in lay.col[vid].tolist()]
        after = int(vid[-1]) + 1
        assert (pos[:, after] == pos[:, :after].max() + 1).all()


def check_qwen2_vl_layout(fam):
    """As Qwen2.5-VL, but M-RoPE's time axis is the group index whatever the frame rate."""
    cfg = fam.model.hf_model.config
    for n, h, w in ((1, 32, 32), (3, 32, 32), (4, 40, 56)):
        inputs = fam.inputs(frames(n, h, w), QUESTIONS[0], n)
        lay, ids = inputs.layout, inputs["input_ids"][0]
        t, gh, gw = (int(x) for x in inputs["video_grid_thw"][0])
        gh, gw = gh // 2, gw // 2
        assert t == (n + 1) // 2 == lay.n_frames and lay.frames_per_group == 2
        assert int((ids == cfg.video_token_id).sum()) == t * gh * gw == lay.counts()["video"]
        _check_frames_are_contiguous_blocks(lay, gh * gw, (gh, gw))
        vid = lay.positions("video")
        assert lay.positions("marker").tolist() == [int(vid[0]) - 1, int(vid[-1]) + 1]
        pos = fam.model.position_ids(inputs)[:, 0]
        start = int(vid[0])
        assert pos[0, vid].tolist() == [start + g for g in lay.frame[vid].tolist()]
        assert pos[1, vid].tolist() == [start + r for r in lay.row[vid].tolist()]
        assert pos[2, vid].tolist() == [start + c for c in lay.col[vid].tolist()]


def _check_group_mrope(fam, inputs, lay, n_groups: int) -> None:
    """M-RoPE with each temporal group its own grid (Qwen3-VL, GLM-4.1V): group g's tokens share
    one temporal position, the one after the position before them, and rows/cols count from it."""
    pos = fam.model.position_ids(inputs)[:, 0]
    for g in range(n_groups):
        vid = lay.frame_positions(g)
        start = int(pos[0, int(vid[0]) - 1]) + 1
        assert pos[0, vid].tolist() == [start] * len(vid)
        assert pos[1, vid].tolist() == [start + r for r in lay.row[vid].tolist()]
        assert pos[2, vid].tolist() == [start + c for c in lay.col[vid].tolist()]


def check_qwen3_vl_layout(fam):
    """Every temporal group: its timestamp text, <|vision_start|>, its tokens, <|vision_end|>; the
    timestamp and the group's start/end are markers of that group; the template's outer start/end
    are markers of no frame. M-RoPE: each group is a grid of temporal size 1 (HF's get_rope_index)."""
    from vlens.families.qwen3_vl import group_times

    cfg = fam.model.hf_model.config
    tok = fam.model.tokenizer
    for n, h, w, fps in ((2, 32, 32, 3.0), (3, 40, 56, 1.0), (6, 32, 32, 0.5)):
        inputs = fam.model.to_inputs(frames(n, h, w), QUESTIONS[0], n_frames=n, fps=fps)
        lay, ids = inputs.layout, inputs["input_ids"][0]
        t, gh, gw = (int(x) for x in inputs["video_grid_thw"][0])
        gh, gw = gh // 2, gw // 2
        assert t == (n + 1) // 2 == lay.n_frames and lay.frames_per_group == 2
        assert int((ids == cfg.video_token_id).sum()) == t * gh * gw == lay.counts()["video"]
        _check_frames_are_contiguous_blocks(lay, gh * gw, (gh, gw))
        times = group_times(range(n), fps, 2)
        assert times == [(2 * g + min(2 * g + 1, n - 1)) / 2 / fps for g in range(t)]
        markers = []
        outer_start = None
        for g in range(t):
            vid = lay.frame_positions(g)
            stamp = tok(f"<{times[g]:.1f} seconds>", add_special_tokens=False)["input_ids"]
            s, e = int(vid[0]) - 1, int(vid[-1]) + 1
            assert (int(ids[s]), int(ids[e])) == (cfg.vision_start_token_id, cfg.vision_end_token_id)
            assert ids[s - len(stamp) : s].tolist() == stamp
            span = [*list(range(s - len(stamp), s + 1)), e]
            assert all(lay.segment[p] == "marker" and int(lay.frame[p]) == g for p in span)
            outer_start = span[0] - 1 if g == 0 else outer_start
            markers += span
        outer_end = markers[-1] + 1
        # the template wraps <|video_pad|> in <|vision_start|>…<|vision_end|>; transformers 5.25's
        # processor collapses that wrapper (every group carries its own), older ones keep it
        wrapped = int(ids[outer_start]) == cfg.vision_start_token_id
        outer = [outer_start, outer_end] if wrapped else []
        if wrapped:
            assert int(ids[outer_end]) == cfg.vision_end_token_id
            assert int(lay.frame[outer_start]) == int(lay.frame[outer_end]) == -1
        else:
            assert cfg.vision_start_token_id not in ids[:outer_start].tolist()
            assert cfg.vision_end_token_id not in ids[outer_end:].tolist()
        assert lay.positions("marker").tolist() == sorted([*outer, *markers])
        # knockouts: markers are never keys (the question still reads the timestamps under LV-K),
        # never VT/VS queries; only the trailing <|vision_end|>s (after the last frame) are LV queries
        blocked = (
            (ko.LV() | ko.VT() | ko.VS())
            .hooks(inputs, layers=ko.layers([0]))[0][1]
            .blocked_full(inputs.seq_len, "cpu")[0]
        )
        mk = lay.positions("marker")
        assert not blocked[:, mk].any()
        trailing = mk[mk > lay.last_vision]
        assert trailing.tolist() == ([outer_end - 1, outer_end] if wrapped else [outer_end - 1])
        assert not blocked[mk[mk < lay.last_vision]].any()
        assert blocked[trailing][:, lay.positions("video")].all()
        _check_group_mrope(fam, inputs, lay, t)


def check_smolvlm_layout(fam):
    """Every frame: "Frame from MM:SS:" (its own time), <fake_token_around_image><global-img>, its
    tokens, <fake_token_around_image> — all but the tokens markers of that frame."""
    cfg = fam.model.hf_model.config
    tok = fam.model.tokenizer
    fake, glob = tok.convert_tokens_to_ids("<fake_token_around_image>"), tok.convert_tokens_to_ids("<global-img>")
    g = cfg.vision_config.image_size // cfg.vision_config.patch_size // cfg.scale_factor
    for n, h, w, fps in ((1, 32, 32, 3.0), (3, 40, 56, 1.0), (4, 32, 32, 0.5)):
        inputs = fam.model.to_inputs(frames(n, h, w), QUESTIONS[0], n_frames=n, fps=fps)
        lay, ids = inputs.layout, inputs["input_ids"][0]
        assert int((ids == cfg.image_token_id).sum()) == n * g * g == lay.counts()["video"]
        assert lay.n_frames == n and lay.frames_per_group == 1 and "separator" not in lay.counts()
        _check_frames_are_contiguous_blocks(lay, g * g, (g, g))
        expect = []
        for f in range(n):
            vid = lay.frame_positions(f)
            sec = int(f / fps)
            stamp = tok(f"Frame from {sec // 60:02d}:{sec % 60:02d}:", add_special_tokens=False)["input_ids"]
            lo, hi = int(vid[0]), int(vid[-1])
            assert ids[lo - 2 : lo].tolist() == [fake, glob] and int(ids[hi + 1]) == fake
            assert ids[lo - 2 - len(stamp) : lo - 2].tolist() == stamp
            span = [*list(range(lo - 2 - len(stamp), lo)), hi + 1]
            assert all(int(lay.frame[p]) == f for p in span)
            expect += span
        assert lay.positions("marker").tolist() == expect
        assert set(lay.segment[: expect[0]]) == {"system"}  # the intro line is before the video
        blocked = ko.LV().hooks(inputs, layers=ko.layers([0]))[0][1].blocked_full(inputs.seq_len, "cpu")[0]
        q = lay.positions("text")
        assert blocked[q][:, lay.positions("video")].all() and not blocked[:, lay.positions("marker")].any()


def check_glm4v_layout(fam):
    """Every temporal group: <|begin_of_image|>, its tokens (`<|image|>`), <|end_of_image|>, then
    its first frame's whole seconds; all but the tokens are markers of that group, the video's
    <|begin_of_video|>/<|end_of_video|> markers of no frame. M-RoPE: each group is a grid of
    temporal size 1 (HF's get_rope_index)."""
    from vlens.families.glm4v import group_seconds

    cfg = fam.model.hf_model.config
    tok = fam.model.tokenizer
    for n, h, w, fps in ((2, 32, 32, 3.0), (3, 40, 56, 1.0), (7, 32, 32, 0.5)):
        inputs = fam.model.to_inputs(frames(n, h, w), QUESTIONS[0], n_frames=n, fps=fps)
        lay, ids = inputs.layout, inputs["input_ids"][0]
        t, gh, gw = (int(x) for x in inputs["video_grid_thw"][0])
        gh, gw = gh // 2, gw // 2
        assert t == (n + 1) // 2 == lay.n_frames and lay.frames_per_group == 2
        assert int((ids == cfg.image_token_id).sum()) == t * gh * gw == lay.counts()["video"]
        assert not (ids == cfg.video_token_id).any()  # <|video|> was expanded into the groups
        _check_frames_are_contiguous_blocks(lay, gh * gw, (gh, gw))
        seconds = group_seconds(range(n), fps, 2)
        assert seconds == [int(2 * g / fps) for g in range(t)]
        begin = int((ids == cfg.video_start_token_id).nonzero()[0])
        markers, p = [begin], begin + 1
        for g in range(t):
            vid = lay.frame_positions(g)
            s, e = int(vid[0]) - 1, int(vid[-1]) + 1
            assert s == p and (int(ids[s]), int(ids[e])) == (cfg.image_start_token_id, cfg.image_end_token_id)
            stamp = tok(str(seconds[g]), add_special_tokens=False)["input_ids"]
            assert ids[e + 1 : e + 1 + len(stamp)].tolist() == stamp
            span = [s, e, *range(e + 1, e + 1 + len(stamp))]
            assert all(lay.segment[q] == "marker" and int(lay.frame[q]) == g for q in span)
            markers += span
            p = e + 1 + len(stamp)
        assert int(ids[p]) == cfg.video_end_token_id
        markers.append(p)
        assert int(lay.frame[begin]) == int(lay.frame[p]) == -1
        assert lay.positions("marker").tolist() == sorted(markers)
        # knockouts: markers are never keys (the question still reads the timestamps under LV-K),
        # never VT/VS queries; only those after the last video token are LV queries
        blocked = (
            (ko.LV() | ko.VT() | ko.VS())
            .hooks(inputs, layers=ko.layers([0]))[0][1]
            .blocked_full(inputs.seq_len, "cpu")[0]
        )
        mk = lay.positions("marker")
        assert not blocked[:, mk].any()
        trailing = mk[mk > lay.last_vision]
        assert trailing.tolist() == list(
            range(lay.last_vision + 1, p + 1)
        )  # last <|end_of_image|>, stamp, end of video
        assert not blocked[mk[mk < lay.last_vision]].any()
        assert blocked[trailing][:, lay.positions("video")].all()
        _check_group_mrope(fam, inputs, lay, t)


def check_internvl_layout(fam):
    cfg = fam.model.hf_model.config
    tok = fam.model.tokenizer
    start, end = tok.convert_tokens_to_ids(tok.start_image_token), tok.convert_tokens_to_ids(tok.end_image_token)
    p = cfg.vision_config.image_size[0] // cfg.vision_config.patch_size[0]
    g = p // 2  # pixel shuffle by downsample_ratio 0.5
    label = lambda text: tok(text, add_special_tokens=False)["input_ids"]
    for n, h, w in ((1, 32, 32), (3, 40, 56), (11, 32, 32)):
        inputs = fam.inputs(frames(n, h, w), QUESTIONS[0], n)
        lay, ids = inputs.layout, inputs["input_ids"][0]
        assert int((ids == cfg.image_token_id).sum()) == n * g * g == lay.counts()["video"]  # the processor's count
        assert "separator" not in lay.counts() and lay.n_frames == n and lay.frames_per_group == 1
        _check_frames_are_contiguous_blocks(lay, g * g, (g, g))
        # markers: exactly the processor's per-frame text "FrameN: " (after a newline from the
        # second frame on), <img> and </img> around every frame's block
        expect = []
        for f in range(n):
            vid = lay.frame_positions(f)
            lo, hi = int(vid[0]) - 1, int(vid[-1]) + 1
            assert int(vid[-1] - vid[0]) + 1 == len(vid)  # one contiguous block
            assert (int(ids[lo]), int(ids[hi])) == (start, end)
            text = label(("Frame{}: " if f == 0 else "\nFrame{}: ").format(f + 1))
            assert ids[lo - len(text) : lo].tolist() == text
            expect += [*list(range(lo - len(text), lo + 1)), hi]
        assert lay.positions("marker").tolist() == expect
        if n > 1:  # between frames nothing but markers
            between = range(int(lay.frame_positions(0)[-1]) + 1, int(lay.frame_positions(n - 1)[0]))
            assert {lay.segment[i] for i in between} <= {"marker", "video"}
        # language -> video knockouts leave the markers alone: text still reads <img>, "FrameN:"
        blocked = ko.LV().hooks(inputs, layers=ko.layers([0]))[0][1].blocked_full(inputs.seq_len, "cpu")[0]
        q = lay.positions("text")
        assert not blocked[q][:, lay.positions("marker")].any()
        assert blocked[q][:, lay.positions("video")].all()
        labels = fam.model.to_str_tokens(inputs)
        assert labels[expect[0]] == "Frame" and labels[int(lay.frame_positions(0)[0])] == "<f0 r0 c0>"


def check_video_llama3_layout(fam):
    """Every frame: "Time t s:" (its own time; ",Time t s:" after the previous frame), then its
    tokens — the text markers of that frame; random frames keep every token (no pruning)."""
    cfg = fam.model.hf_model.config
    tok = fam.model.tokenizer
    for n, h, w, fps in ((1, 32, 32, 3.0), (3, 40, 56, 1.0), (4, 32, 32, 0.5)):
        inputs = fam.model.to_inputs(frames(n, h, w), QUESTIONS[0], n_frames=n, fps=fps)
        lay, ids = inputs.layout, inputs["input_ids"][0]
        t, gh, gw = (int(x) for x in inputs["video_grid_thw"][0])
        gh, gw = gh // 2, gw // 2
        assert (t, gh, gw) == (n, h // 8, w // 8) and bool(inputs["video_compression_mask"].all())
        assert int((ids == cfg.video_token_id).sum()) == n * gh * gw == lay.counts()["video"]
        assert lay.n_frames == n and lay.frames_per_group == 1 and "separator" not in lay.counts()
        _check_frames_are_contiguous_blocks(lay, gh * gw, (gh, gw))
        expect = []
        for f in range(n):
            vid = lay.frame_positions(f)
            stamp = tok(("," if f else "") + f"Time {f / fps:.1f}s:", add_special_tokens=False)["input_ids"]
            lo = int(vid[0])
            assert ids[lo - len(stamp) : lo].tolist() == stamp
            span = list(range(lo - len(stamp), lo))
            assert all(lay.segment[p] == "marker" and int(lay.frame[p]) == f for p in span)
            expect += span
        assert lay.positions("marker").tolist() == expect
        assert set(lay.segment[: expect[0]]) == {"system"}
        # every timestamp is before a frame: under LV/VT/VS-K none is a query or a key
        blocked = (
            (ko.LV() | ko.VT() | ko.VS())
            .hooks(inputs, layers=ko.layers([0]))[0][1]
            .blocked_full(inputs.seq_len, "cpu")[0]
        )
        mk, q = lay.positions("marker"), lay.positions("text")
        assert blocked[q][:, lay.positions("video")].all() and not blocked[:, mk].any() and not blocked[mk].any()


def check_perception_lm_layout(fam):
    """One run of <|video|> tokens, frame after frame, each the pooled (P/ratio)² grid row-major
    (the processor's count); nothing between frames, nothing after the last one."""
    cfg = fam.model.hf_model.config
    proc = fam.model.processor
    for n, h, w in ((1, 32, 32), (3, 40, 56), (5, 32, 32)):
        inputs = fam.inputs(frames(n, h, w), QUESTIONS[0], n)
        lay, ids = inputs.layout, inputs["input_ids"][0]
        side = inputs["pixel_values_videos"].shape[-1]
        g = side // proc.patch_size // cfg.projector_pooling_ratio
        assert int((ids == cfg.video_token_id).sum()) == n * g * g == lay.counts()["video"]  # the processor's count
        assert lay.n_frames == n and lay.frames_per_group == 1
        assert set(lay.counts()) == {"system", "video", "text"}  # no separators, markers or timestamps
        _check_frames_are_contiguous_blocks(lay, g * g, (g, g))
        vid = lay.positions("video")
        assert int(vid[-1] - vid[0]) + 1 == len(vid)  # one contiguous block
        assert set(lay.segment[: int(vid[0])]) == {"system"}


def test_qwen2_5_vl_time_axis_follows_fps_and_needs_timestamps(tmp_path):
    """Frame times move M-RoPE's temporal positions (and HF agrees); no timestamps is an error."""
    path = testing.make_tiny_qwen2_5_vl(tmp_path / "ckpt", n_layers=2)
    model = HookedVideoLLM.from_pretrained(path)
    hf = transformers.Qwen2_5_VLForConditionalGeneration.from_pretrained(path).eval()
    clip = frames(4, seed=9)
    outs = []
    with torch.no_grad():
        for fps in (1.0, 8.0):
            inputs = model.to_inputs(clip, QUESTIONS[0], n_frames=4, fps=fps)
            ours = model(inputs)
            assert _max_diff(ours, hf(**inputs).logits, inputs["attention_mask"]) <= ATOL
            outs.append(ours)
    assert (outs[0] - outs[1]).abs().max() > 1e-3, "the frame rate must change the temporal positions"
    with pytest.raises(ValueError, match="fps="):
        model.to_inputs(clip, QUESTIONS[0], n_frames=4)
    inputs = model.to_inputs(clip, QUESTIONS[0], n_frames=4, fps=2.0)
    with pytest.raises(ValueError, match="position_ids"):  # a continuation must be given its positions
        model(
            {"input_ids": inputs["input_ids"][:, -2:]}, q_start=inputs.seq_len - 2, kv_cache=KVCache(model.cfg.n_layers)
        )


# registry -----------------------------------------------------------------------------------------
def test_every_case_is_a_registered_family():
    names = {f.name for f in FAMILIES}
    assert set(CASES) <= names
    for case in CASES.values():
        assert family_for(case.hf_class).name == case.name


def test_unsupported_checkpoint_names_every_family(tmp_path):
    (tmp_path / "config.json").write_text('{"architectures": ["Idefics3ForConditionalGeneration"]}')
    with pytest.raises(UnsupportedModelError) as err:
        HookedVideoLLM.from_pretrained(tmp_path)
    for fam_ in FAMILIES:
        for arch in fam_.architectures:
            assert arch in str(err.value)


# the study's machinery on every family ------------------------------------------------------------
def test_sweep_engine_and_patching_equal_plain_hooks(fam):
    """The sweep engine (prefix/row reuse, batched rows) and batched patching continue each
    family's positions correctly (Qwen2.5-VL: 3-D M-RoPE positions) — equal to plain hook runs."""
    from vlens.inputs.prompts import letter_token_ids, mc_question
    from vlens.interventions.patching import corrupt, patch_naive, patch_sweep
    from vlens.interventions.sweep import SweepConfig, run_sweep

    model = fam.model
    L = model.cfg.n_layers
    inputs = fam.inputs(frames(3, seed=4), mc_question(QUESTIONS[0], ["red", "blue", "green"]), 3)
    configs = [
        SweepConfig("lv", ko.LV(), ko.window(2, 2)),
        SweepConfig("vt", ko.VT(), ko.from_layer(1)),
        SweepConfig("vs", ko.VS(), ko.layers([L - 1])),
    ]
    fast = run_sweep(model, inputs, configs)
    with torch.no_grad():
        for c in configs:
            ref = model.run_with_hooks(inputs, fwd_hooks=c.spec.hooks(inputs, layers=c.layers))[0, -1]
            assert (fast[c.name] - ref).abs().max().item() <= ATOL, c.name
    letters = letter_token_ids(model.tokenizer, 3)
    corrupted = corrupt(model, inputs, "reverse")
    res = patch_sweep(model, inputs, corrupted, letters, 0, batch_size=4)
    assert (res.raw - patch_naive(model, inputs, corrupted, letters, 0)).abs().max().item() <= ATOL


def test_vlens_run_on_every_family(fam, tmp_path):
    """`vlens run global2,patching,lens` end to end on the synthetic set, then the report."""
    from vlens.cli import main
    from vlens.experiments.store import load_results

    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "global2,patching,lens",
                "--model",
                str(fam.path),
                "--data",
                "synthetic:5,n=2,frames=2",
                "--frames",
                "2",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    _, records = load_results(out)
    configs = {r["config"] for r in records if "skipped" not in r}
    assert configs == {
        "clean",
        "prior",
        "global2/lv",
        "global2/vt",
        "global2/vs",
        "global2/all",
        "patching/resid_pre/video",
        "lens",
    }
    assert "### Logit lens" in (out / "report.md").read_text()


@pytest.mark.parametrize("exit_layer,prune", [(2, 1), (1, 3)])
def test_efficient_inference_equals_its_knockout_equivalent(fam, exit_layer, prune):
    """Visual early exit + per-frame pruning (real savings) equal the knockout run on every family;
    the M-RoPE positions of Qwen2.5-VL survive dropping the vision rows, and Qwen3-VL's DeepStack
    additions (at vision rows, in the first blocks) leave with the rows they belong to."""
    from vlens.interventions.efficient import (
        EfficientConfig,
        efficient_forward,
        equivalent_hooks,
        generate_efficient,
    )

    model, cfg = fam.model, EfficientConfig(exit_layer, prune)
    inputs = fam.inputs(frames(4, seed=8), QUESTIONS[0], 4)
    out = efficient_forward(model, inputs, cfg)
    hooks = equivalent_hooks(inputs, cfg, model.cfg.n_layers)
    with torch.no_grad():
        ref = model.run_with_hooks(inputs, fwd_hooks=hooks)
    keep = ~inputs.layout.is_vision
    assert (out.logits[0] - ref[0, keep]).abs().max().item() <= ATOL
    ours = generate_efficient(model, inputs, cfg, max_new_tokens=3)
    assert ours.tolist() == model.generate(inputs, max_new_tokens=3, fwd_hooks=hooks).tolist()


def test_settings_the_decoder_cannot_run_exactly_are_refused(tmp_path):
    """Llama's attention_bias biases o_proj too (the hooked decoder has none): refused, not approximated."""
    import json

    path = testing.make_tiny_llava_next_video(tmp_path / "ckpt", n_layers=1)
    cfg = json.loads((path / "config.json").read_text())
    cfg["text_config"]["attention_bias"] = True
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(NotImplementedError, match="attention_bias"):
        HookedVideoLLM.from_pretrained(path)


def test_hooks_page_lists_exactly_the_hooks(fam):
    from hooks_page import assert_hooks_documented

    assert_hooks_documented(fam.model)
