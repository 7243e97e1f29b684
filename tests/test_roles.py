"""Text roles (vlens.inputs.roles) for every family the fixtures build: order, contiguity, letters, the
correct option, and the text each role's tokens spell."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import frames

from vlens import HookedVideoLLM, testing
from vlens import knockout as ko
from vlens.inputs.layout import LayoutError
from vlens.inputs.prompts import mc_question
from vlens.inputs.roles import with_roles

QUESTION, OPTIONS = "What color is the ball?", ["red", "green", "blue"]
BUILDERS = {  # the families of tests/test_families.py CASES (their to_inputs kwargs, HF class)
    "llava-next-video": (testing.make_tiny_llava_next_video, {}, 2, "LlavaNextVideoForConditionalGeneration"),
    "video-llava": (testing.make_tiny_video_llava, {}, 2, "VideoLlavaForConditionalGeneration"),
    "qwen2.5-vl": (testing.make_tiny_qwen2_5_vl, {"fps": 3.0}, 2, "Qwen2_5_VLForConditionalGeneration"),
    "qwen2-vl": (testing.make_tiny_qwen2_vl, {}, 2, "Qwen2VLForConditionalGeneration"),
    "qwen3-vl": (testing.make_tiny_qwen3_vl, {"fps": 3.0}, 2, "Qwen3VLForConditionalGeneration"),
    "qwen3-vl-moe": (testing.make_tiny_qwen3_vl_moe, {"fps": 3.0}, 2, "Qwen3VLMoeForConditionalGeneration"),
    "smolvlm2": (testing.make_tiny_smolvlm, {"fps": 3.0}, 2, "SmolVLMForConditionalGeneration"),
    "internvl": (testing.make_tiny_internvl, {}, 2, "InternVLForConditionalGeneration"),
    "videollama3": (testing.make_tiny_video_llama3, {"fps": 3.0}, 2, "VideoLlama3ForConditionalGeneration"),
    "perception-lm": (testing.make_tiny_perception_lm, {}, 2, "PerceptionLMForConditionalGeneration"),
    "glm4v": (testing.make_tiny_glm4v, {"fps": 3.0}, 2, "Glm4vForConditionalGeneration"),
}


def _squash(s: str) -> str:
    return "".join(s.split()).replace("▁", "").replace("Ġ", "").replace("Ċ", "")


def check_roles(model: HookedVideoLLM, inputs) -> None:
    layout = inputs.layout
    ids = inputs["input_ids"][0].tolist()
    role, letter = layout.role, layout.option_letter
    assert len(role) == len(layout)
    assert all(r == "" for r, s in zip(role, layout.segment) if s in ("video", "separator", "image", "pad"))
    assert role[-1] == "last" and layout.correct == "B"
    text = [i for i, s in enumerate(layout.segment) if s in ("system", "text", "marker")]
    # the order a chat prompt has: the user text's parts in order, then the generation prompt
    order = {"question": 0, "option": 1, "answer_prompt": 2, "last": 3}
    seq = [(order[role[i]], letter[i]) for i in text if role[i] in order]
    assert seq == sorted(seq), "roles out of order"
    assert sorted({l for l in letter if l}) == ["A", "B", "C"]
    for want in ("question", "option", "answer_prompt"):  # each a contiguous run of text positions
        pos = [i for i in text if role[i] == want]
        assert pos and pos == [p for p in text if pos[0] <= p <= pos[-1]], f"{want} not contiguous"
    # each part's tokens spell its text (unknown-word tokens aside)
    spelled = lambda sel: _squash(model.tokenizer.decode([ids[i] for i in sel(layout).nonzero().flatten().tolist()]))
    q = spelled(ko.role("question"))
    if "unk" not in q:
        assert q == _squash(QUESTION)
    for k, opt in enumerate(OPTIONS):
        got = spelled(ko.option("ABC"[k]))
        if "unk" not in got:
            assert got == _squash(f"{'ABC'[k]}. {opt}")
    assert torch.equal(ko.option(correct=True)(layout), ko.option("B")(layout))


@pytest.fixture(scope="module", params=list(BUILDERS))
def family(request, tmp_path_factory):
    build, kwargs, n, hf_class = BUILDERS[request.param]
    path = build(tmp_path_factory.mktemp(request.param) / "ckpt", seed=0)
    return HookedVideoLLM.from_pretrained(path), kwargs, n, path, hf_class


@pytest.mark.slow
def test_roles_and_edges_parity_for_every_family(family):
    import transformers
    from hf_reference import hf_knockout

    model, kwargs, n, path, hf_class = family
    inputs = model.to_inputs(frames(n), mc_question(QUESTION, OPTIONS), n_frames=n, **kwargs)
    inputs = with_roles(model, inputs, QUESTION, OPTIONS, answer="B")
    check_roles(model, inputs)
    # an Edges knockout over roles = HF with the same mask through AttentionInterface
    spec = ko.Edges("last", ("question", "option")) | ko.Edges(ko.option(correct=True), "vision")
    hf = getattr(transformers, hf_class).from_pretrained(path, attn_implementation="sdpa").eval()
    sel = ko.layers([1])
    with torch.no_grad():
        hooks = spec.hooks(inputs, layers=sel)
        ours = model.run_with_hooks(inputs, fwd_hooks=hooks)
        with hf_knockout(hf, {1: hooks[0][1].blocked_full(inputs.seq_len, "cpu")}):
            ref = hf(**inputs).logits
        clean = model(inputs)
    assert (ours - ref).abs().max().item() <= 1e-4
    assert (ours - clean).abs().max().item() > 1e-6


def test_roles_on_onevision(model):
    inputs = model.to_inputs(frames(2), mc_question(QUESTION, OPTIONS), n_frames=2)
    rolled = with_roles(model, inputs, QUESTION, OPTIONS, answer=1)
    check_roles(model, rolled)
    assert rolled.layout.segment == inputs.layout.segment  # segments unchanged
    labels = rolled.layout.labels(model.tokenizer.convert_ids_to_tokens(inputs["input_ids"][0].tolist()), roles=True)
    assert labels[-1].endswith("|last") and any(l.endswith("|option B*") for l in labels)
    # generated tokens after the prompt
    assert rolled.layout.extend(2).role[-2:] == ("generated", "generated")


def test_roles_with_a_system_prompt_and_a_batch(model):
    inputs = model.to_inputs(
        [frames(2), frames(2, seed=1)], [mc_question(QUESTION, OPTIONS), "why"], n_frames=2, system_prompt="Be brief."
    )
    rolled = with_roles(model, inputs, [QUESTION, "why"], [OPTIONS, None], [None, None], system_prompt="Be brief.")
    a, b = rolled.layouts
    assert "system" in a.role and "system" in b.role
    assert "option" not in b.role and b.role.count("question") >= 1 and b.role[-1] == "last"


def test_roles_errors_are_clear(model):
    inputs = model.to_inputs(frames(2), mc_question(QUESTION, OPTIONS), n_frames=2)
    with pytest.raises(LayoutError, match="not in the row's prompt"):
        with_roles(model, inputs, "another question", OPTIONS)
    with pytest.raises(ValueError, match="not one of the options' letters"):
        with_roles(model, inputs, QUESTION, OPTIONS, answer="E")
    with pytest.raises(ValueError, match="not one of the options' letters"):  # an index out of range
        with_roles(model, inputs, QUESTION, OPTIONS, answer=len(OPTIONS))
    with pytest.raises(LayoutError, match="unknown role"):
        dataclasses.replace(inputs.layout, role=("nope",) * len(inputs.layout))


def test_to_str_tokens_shows_roles_on_request(model):
    inputs = model.to_inputs(frames(2), mc_question(QUESTION, OPTIONS), n_frames=2)
    rolled = with_roles(model, inputs, QUESTION, OPTIONS, answer="A")
    plain, shown = model.to_str_tokens(rolled), model.to_str_tokens(rolled, roles=True)
    assert plain == model.to_str_tokens(inputs)
    assert [s.rsplit("|", 1)[0] if s != p else s for s, p in zip(shown, plain)] == plain
    assert shown[-1] == plain[-1] + "|last"


def test_mc_inputs_is_one_call(model):
    """`model.mc_inputs` equals mc_question → to_inputs → with_roles, for one row and a batch."""
    two_step = with_roles(
        model, model.to_inputs(frames(2), mc_question(QUESTION, OPTIONS), n_frames=2), QUESTION, OPTIONS, answer=1
    )
    one = model.mc_inputs(frames(2), QUESTION, OPTIONS, answer=1, n_frames=2)
    assert torch.equal(one["input_ids"], two_step["input_ids"])
    assert one.layout.role == two_step.layout.role and one.layout.option_letter == two_step.layout.option_letter
    batch = model.mc_inputs(
        [frames(2), frames(2, seed=1)], [QUESTION, "why"], [OPTIONS, None], answer=["B", None], n_frames=2
    )
    assert "option" in batch.layouts[0].role and "option" not in batch.layouts[1].role
    with pytest.raises(ValueError, match="needs 2 option lists"):
        model.mc_inputs([frames(2), frames(2)], [QUESTION, "why"], [OPTIONS], n_frames=2)
    with pytest.raises(ValueError, match="list of option texts"):
        model.mc_inputs(frames(2), QUESTION, "left", n_frames=2)
    with pytest.raises(ValueError, match="not one of the options' letters"):
        model.mc_inputs(frames(2), QUESTION, OPTIONS, answer="E", n_frames=2)
