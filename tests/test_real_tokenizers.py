"""The option letters under the real tokenizers and the real chat templates.

The tokenizers are the real vocabularies (llama.cpp's GGUF files, tests/real_vocab.py, checked
here against llama.cpp's own token tests); the templates are the checkpoints' published ones
(vlens/testing/templates/, with PROVENANCE.json). Each letter must be read as the token the
checkpoint writes first after its generation prompt.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from real_vocab import llama_cpp_cases, real_tokenizer

import vlens.testing
from vlens.inputs.prompts import LETTERS, LetterReadoutError, letter_token_ids, mc_question, reply_letter_ids

REALISTIC = Path(vlens.testing.__file__).parent / "templates"
# template file → the vocabulary its checkpoint's language model uses
PAIRS = {
    "llava-hf--llava-onevision-qwen2-0.5b-ov-hf.jinja": "qwen2",  # Qwen2-0.5B
    "llava-hf--llava-onevision-qwen2-7b-ov-hf.jinja": "qwen2",  # Qwen2-7B
    "Qwen--Qwen2-VL-7B-Instruct.jinja": "qwen2",
    "Qwen--Qwen2.5-VL-7B-Instruct.jinja": "qwen2",
    "OpenGVLab--InternVL3-8B-hf.jinja": "qwen2",  # Qwen2.5-7B
    "llava-hf--LLaVA-NeXT-Video-7B-hf.jinja": "llama-spm",  # Vicuna-7B (Llama 2)
    "facebook--Perception-LM-8B.jinja": "llama-bpe",  # Llama-3.1-8B
}


def template(name: str) -> str:
    return (REALISTIC / name).read_text(encoding="utf-8")


def render(tok, chat_template, question, system, reply=None, media="video"):
    messages = []
    if system is not None:
        messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
    messages.append({"role": "user", "content": [{"type": media}, {"type": "text", "text": question}]})
    if reply is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": reply}]})
    return tok.apply_chat_template(
        messages, chat_template=chat_template, add_generation_prompt=reply is None, tokenize=False
    )


def readout(tok, chat_template, question, system=None, n=4):
    prompt = render(tok, chat_template, question, system)
    replies = [render(tok, chat_template, question, system, reply=letter) for letter in LETTERS[:n]]
    return reply_letter_ids(tok, prompt, replies)


def test_the_templates_are_the_published_ones():
    provenance = json.loads((REALISTIC / "PROVENANCE.json").read_text())["files"]
    import hashlib

    for name in PAIRS:
        entry = provenance[name]
        assert entry["repo"] and entry["commit"]
        if "sha256" in entry:
            assert hashlib.sha256((REALISTIC / name).read_bytes()).hexdigest() == entry["sha256"]


@pytest.mark.parametrize("name", ["qwen2", "llama-spm", "llama-bpe"])
def test_real_tokenizers_pass_llama_cpp_token_tests(name):
    tok = real_tokenizer(name)
    cases = llama_cpp_cases(name)
    assert len(cases) > 40
    bad = [(t, want, tok(t, add_special_tokens=False)["input_ids"]) for t, want in cases]
    bad = [b for b in bad if b[1] != b[2]]
    assert not bad, f"{len(bad)} of {len(cases)} differ from llama.cpp, first: {bad[0]}"
    assert tok.vocab_size == {"qwen2": 151_936, "llama-spm": 32_000, "llama-bpe": 128_256}[name]


def test_vicuna_letters_are_the_ones_the_model_writes():
    """LLaVA-NeXT-Video's Vicuna template ends the prompt with "ASSISTANT:" and renders a reply as
    "ASSISTANT: A": the model writes "▁A" (319), not the word-internal "A" (29909) that a letter
    tokenised after a newline gives — the bug this readout fixes."""
    tok = real_tokenizer("llama-spm")
    ids = readout(tok, template("llava-hf--LLaVA-NeXT-Video-7B-hf.jinja"), mc_question("Which way?", list("wxyz")))
    assert ids == tok.convert_tokens_to_ids(["▁A", "▁B", "▁C", "▁D"]) == [319, 350, 315, 360]
    assert letter_token_ids(tok, 4) == [29909, 29933, 29907, 29928]  # the context-free reading, wrong here


def test_chatml_letters_follow_the_newline():
    tok = real_tokenizer("qwen2")
    ids = readout(tok, template("Qwen--Qwen2-VL-7B-Instruct.jinja"), "What colour?")
    assert ids == tok.convert_tokens_to_ids(list("ABCD"))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pair=st.sampled_from(sorted(PAIRS.items())),
    question=st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40),
    n=st.integers(2, 10),
    system=st.one_of(st.none(), st.sampled_from(["You are a helpful assistant.", "Answer briefly."])),
    style=st.sampled_from(["plain", "mc"]),
)
def test_letters_do_not_depend_on_the_question(pair, question, n, system, style):
    """Under every real template and tokenizer the letter ids are one token each, distinct,
    decode to the letter, and are the same whatever the question, option count or system
    prompt before them (BPE/SPM merges never reach across the generation prompt)."""
    name, vocab = pair
    tok = real_tokenizer(vocab)
    text = mc_question(question, [f"option {i}" for i in range(n)]) if style == "mc" and question.strip() else question
    try:
        ids = readout(tok, template(name), text, system, n)
    except LetterReadoutError as e:
        # a system message some templates do not render is fine; nothing else is
        pytest.fail(f"{name}: {e}")
    assert len(set(ids)) == n
    assert [tok.decode([i]).strip() for i in ids] == list(LETTERS[:n])
    assert ids == readout(tok, template(name), "What happens?", None, n)


def test_a_reply_that_does_not_start_with_the_letter_is_refused():
    tok = real_tokenizer("qwen2")
    chat = template("Qwen--Qwen2-VL-7B-Instruct.jinja")
    prompt = render(tok, chat, "q", None)
    thinking = [render(tok, chat, "q", None, reply=f"<think>\n</think>{x}") for x in "AB"]
    with pytest.raises(LetterReadoutError, match="starts with token"):
        reply_letter_ids(tok, prompt, thinking)
    with pytest.raises(LetterReadoutError, match="does not continue the generation prompt"):
        reply_letter_ids(tok, prompt + "x", [render(tok, chat, "q", None, reply=x) for x in "AB"])
    with pytest.raises(LetterReadoutError, match="repeated token ids"):
        reply_letter_ids(tok, prompt, [render(tok, chat, "q", None, reply="A")] * 2, letters=["A", "A"])


def test_the_model_reads_letters_through_its_own_template(tmp_path):
    """`HookedVideoLLM.answer_letter_ids` renders the checkpoint's template through its processor:
    with the real Vicuna template and Llama-2 tokenizer it gives the "▁A" ids."""
    from vlens import HookedVideoLLM, testing

    model = HookedVideoLLM.from_pretrained(testing.make_tiny_llava_next_video(tmp_path / "ckpt", n_layers=1))
    assert model.processor is not None
    model.processor.tokenizer = real_tokenizer("llama-spm")
    model.processor.chat_template = template("llava-hf--LLaVA-NeXT-Video-7B-hf.jinja")
    assert model.answer_letter_ids(4) == [319, 350, 315, 360]
    with pytest.raises(ValueError, match="number of options"):
        model.answer_letter_ids(1)
