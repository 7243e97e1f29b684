"""Realistic tiny checkpoints: real tokenizer, real special-token ids, real template, real
processor geometry and frame counts; only the widths are small (vlens.testing.realistic).

Each family's clean logits equal HF's at the real resolution, a knockout over roles equals HF
with the same mask added through AttentionInterface, the media tokens sit at the published ids,
tokens per frame are the published numbers, and the roles and letters are right under the real
BPE / SentencePiece tokenization (a property test over question and option texts).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from real_vocab import real_tokenizer

from vlens import HookedVideoLLM
from vlens import knockout as ko
from vlens.inputs.prompts import LETTERS, reply_letter_ids
from vlens.testing.realistic import (
    RealisticError,
    make_realistic,
    place_special_tokens,
    realistic_spec,
    realistic_specs,
)

NAMES = list(realistic_specs())
QUESTION = "Which way does the red ball move?"
OPTIONS = ["left", "right", "up (towards the top)", "it doesn't move"]
N_FRAMES = 4  # real resolution; fewer frames than the docs sample keep the suite fast


def video(spec, n=N_FRAMES, seed=0):
    return (np.random.RandomState(seed).rand(n, *spec.probe_size, 3) * 255).astype("uint8")


@pytest.fixture(scope="module", params=NAMES)
def realistic(request, realistic_checkpoint):
    spec = realistic_spec(request.param)
    path = realistic_checkpoint(request.param)
    return spec, path, HookedVideoLLM.from_pretrained(path)


def _squash(s: str) -> str:
    return "".join(s.split())


def spelled(model, inputs, selector) -> str:
    ids = inputs["input_ids"][0].tolist()
    pos = selector(inputs.layout).nonzero().flatten().tolist()
    return _squash(model.tokenizer.decode([ids[i] for i in pos]))


def test_every_family_has_its_real_parts(realistic):
    """Media tokens at the published ids (config, tokenizer and processor agree), the published
    tokens per frame, the letters the checkpoint writes after its own generation prompt, clean
    logits equal to HF's, and a role knockout equal to HF with the same mask."""
    import transformers
    from hf_reference import hf_knockout

    spec, path, model = realistic
    tok = model.tokenizer
    for i, token in spec.special_tokens.items():
        assert tok.convert_tokens_to_ids(token) == i
        assert tok(token, add_special_tokens=False)["input_ids"] == [i], f"{token} is not one token"
    inputs = model.mc_inputs(video(spec), QUESTION, OPTIONS, answer="B", n_frames=N_FRAMES, fps=2.0)
    ids = inputs["input_ids"][0]
    hf_config = model.hf_model.config
    vision = torch.tensor([seg == "video" for seg in inputs.layout.segment])
    assert vision.any() and set(ids[vision].tolist()) <= set(spec.special_tokens), "video positions hold other ids"
    per_frame = torch.bincount(inputs.layout.frame[inputs.layout.frame >= 0]).tolist()
    if spec.tokens_per_frame is not None:
        assert set(per_frame) == {spec.tokens_per_frame}, per_frame
    # the letters: one token each, the ones a reply of that letter starts with
    letters = model.answer_letter_ids(4)
    assert len(set(letters)) == 4
    for letter, i in zip(LETTERS, letters):
        assert _squash(tok.decode([i])) == letter

    hf = getattr(transformers, hf_config.architectures[0]).from_pretrained(path, attn_implementation="sdpa").eval()
    spec_ko = ko.Edges("last", ("question", "option")) | ko.Edges(ko.option(correct=True), "vision")
    layer = ko.layers([1])
    with torch.no_grad():
        ref = hf(**inputs).logits
        ours = model(inputs)
        hooks = spec_ko.hooks(inputs, layers=layer)
        knocked = model.run_with_hooks(inputs, fwd_hooks=hooks)
        with hf_knockout(hf, {1: hooks[0][1].blocked_full(inputs.seq_len, "cpu")}):
            knocked_ref = hf(**inputs).logits
    assert (ours - ref).abs().max().item() <= 1e-4
    assert (knocked - knocked_ref).abs().max().item() <= 1e-4
    assert (knocked - ours).abs().max().item() > 1e-6


def test_roles_spell_their_text_under_the_real_tokenizer(realistic):
    spec, _, model = realistic
    inputs = model.mc_inputs(video(spec, n=2), QUESTION, OPTIONS, answer="B", n_frames=2, fps=2.0)
    assert spelled(model, inputs, ko.role("question")) == _squash(QUESTION)
    for letter, option in zip(LETTERS, OPTIONS):
        assert spelled(model, inputs, ko.option(letter)) == _squash(f"{letter}. {option}")
    assert inputs.layout.role[-1] == "last"
    assert torch.equal(ko.option(correct=True)(inputs.layout), ko.option("B")(inputs.layout))


WORDS = st.sampled_from(
    ["ball", "A", "(B)", "C.", "left,", "right?", "don't", "x-axis", "3", "ÄÖ", "red/blue", '"up"', "B)", "a:b"]
)
TEXTS = st.lists(WORDS, min_size=1, max_size=6).map(" ".join)


@pytest.mark.parametrize("name", ["llava-onevision-qwen2-0.5b-ov-hf", "LLaVA-NeXT-Video-7B-hf", "Perception-LM-1B"])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=TEXTS, options=st.lists(TEXTS, min_size=2, max_size=5), system=st.sampled_from([None, "Be brief."]))
def test_roles_hold_for_any_prompt(name, question, options, system, tmp_path_factory):
    """Questions and options with letters glued to punctuation, quotes, digits and non-ASCII:
    every role still spells its text and the letters are read as the model writes them."""
    model = _model(name, tmp_path_factory)
    spec = realistic_spec(name)
    inputs = model.mc_inputs(
        video(spec, n=1), question, options, answer=len(options) - 1, n_frames=1, system_prompt=system, fps=2.0
    )
    assert spelled(model, inputs, ko.role("question")) == _squash(question)
    for letter, option in zip(LETTERS, options):
        assert spelled(model, inputs, ko.option(letter)) == _squash(f"{letter}. {option}")
    letters = model.answer_letter_ids(len(options), system_prompt=system)
    prompt = model.processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "text", "text": "?"}]}], add_generation_prompt=True, tokenize=False
    )
    replies = [
        model.processor.apply_chat_template(
            [
                {"role": "user", "content": [{"type": "text", "text": "?"}]},
                {"role": "assistant", "content": [{"type": "text", "text": letter}]},
            ],
            tokenize=False,
        )
        for letter in LETTERS[: len(options)]
    ]
    assert letters == reply_letter_ids(model.tokenizer, prompt, replies)


_MODELS: dict[str, HookedVideoLLM] = {}


def _model(name, tmp_path_factory) -> HookedVideoLLM:
    if name not in _MODELS:
        spec = realistic_spec(name)
        where = tmp_path_factory.mktemp(f"prop-{name}") / "ckpt"
        _MODELS[name] = HookedVideoLLM.from_pretrained(
            make_realistic(name, where, real_tokenizer(spec.vocab), n_layers=1, vision_layers=1)
        )
    return _MODELS[name]


def test_bad_realistic_builds_are_refused(tmp_path):
    with pytest.raises(RealisticError, match="no realistic spec"):
        realistic_spec("llava-onevision-qwen2-72b")
    with pytest.raises(RealisticError, match="needs the qwen2 vocabulary"):
        make_realistic("Qwen2-VL-7B-Instruct", tmp_path, real_tokenizer("llama-spm"))
    qwen = real_tokenizer("qwen2")
    with pytest.raises(RealisticError, match="not a padding placeholder"):
        place_special_tokens(qwen, {151644: "<video>"})  # <|im_start|>
    with pytest.raises(RealisticError, match="no placeholder there"):
        place_special_tokens(real_tokenizer("llama-spm"), {32005: "<video>"})
    with pytest.raises(RealisticError, match="already id"):
        place_special_tokens(qwen, {151646: "<|im_end|>"})


def test_placed_tokens_keep_the_base_tokenization():
    """Placing the media tokens changes no other text's ids (llama.cpp's own token tests)."""
    from real_vocab import llama_cpp_cases

    for name, vocab in [("Qwen2-VL-7B-Instruct", "qwen2"), ("LLaVA-NeXT-Video-7B-hf", "llama-spm")]:
        spec = realistic_spec(name)
        placed = place_special_tokens(real_tokenizer(vocab), spec.special_tokens, named=spec.named_tokens)
        for text, want in llama_cpp_cases(vocab)[:30]:
            assert placed(text, add_special_tokens=False)["input_ids"] == want


def test_onevision_images_at_real_anyres_grids_equal_hf(tmp_path):
    """An image beside the video at LLaVA-OV's real anyres grids (384 × 1..6): the tiles, the
    unpadding and the newlines are HF's, and so are the logits."""
    import transformers

    spec = realistic_spec("llava-onevision-qwen2-0.5b-ov-hf")
    path = make_realistic(spec.checkpoint, tmp_path / "ov", real_tokenizer("qwen2"), n_layers=1, vision_layers=1)
    model = HookedVideoLLM.from_pretrained(path)
    hf = transformers.LlavaOnevisionForConditionalGeneration.from_pretrained(path).eval()
    image = (np.random.RandomState(3).rand(500, 700, 3) * 255).astype("uint8")
    inputs = model.to_inputs(video(spec, n=2), QUESTION, images=image, n_frames=2)
    assert {"image", "video"} <= set(inputs.layout.segment)
    with torch.no_grad():
        assert (model(inputs) - hf(**inputs).logits).abs().max().item() <= 1e-4
