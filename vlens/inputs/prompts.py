"""Multiple-choice prompts and the token ids of the option letters.

The user turn is the benchmarks' usual format (as in the LLaVA-OneVision / lmms-eval prompts):

    <question>
    A. <option>
    B. <option>
    ...
    Answer with the option's letter from the given choices directly.

The checkpoint's chat template wraps it (video first). The prediction is read from the logits of
the option letters at the last position: the token the assistant would write first.
"""

from __future__ import annotations

from collections.abc import Sequence

LETTERS = "ABCDEFGHIJ"
PROMPT_FORMAT = "mc-v1"  # part of every result key: change it when the text below changes
INSTRUCTION = "Answer with the option's letter from the given choices directly."


def mc_question(question: str, options: Sequence[str]) -> str:
    """The multiple-choice user turn: the question, one `X. option` line per option, the instruction.

    Args:
        question: the question text.
        options: 2 to 10 option texts, lettered A, B, … in order.

    Returns:
        The prompt text (the chat template is applied later, by `to_inputs`).

    Raises:
        ValueError: fewer than 2 or more than 10 options.
    """
    if not 2 <= len(options) <= len(LETTERS):
        raise ValueError(f"a multiple-choice question needs 2–{len(LETTERS)} options, got {len(options)}")
    lines = [question.strip()] + [f"{LETTERS[i]}. {o}" for i, o in enumerate(options)] + [INSTRUCTION]
    return "\n".join(lines)


def mc_spans(question: str, options: Sequence[str] | None = None) -> tuple[str, list[tuple[str, str, int, int]]]:
    """The user turn and where each part of it is, as character spans.

    Args:
        question: the question text.
        options: the option texts (None: a plain question, the whole text is the question).

    Returns:
        `(text, spans)`: `text` is exactly `mc_question(question, options)` (or `question` when
        there are no options); `spans` are `(role, letter, start, end)` with role `question`,
        `option` (letter A, B, …; the span covers `B. text`) or `answer_prompt` (the instruction).

    Raises:
        ValueError: fewer than 2 or more than 10 options.
    """
    if options is None:
        return question, [("question", "", 0, len(question))]
    text = mc_question(question, options)
    spans, pos = [], 0
    parts = [("question", "", question.strip())]
    parts += [("option", LETTERS[i], f"{LETTERS[i]}. {o}") for i, o in enumerate(options)]
    parts += [("answer_prompt", "", INSTRUCTION)]
    for role, letter, part in parts:  # the lines, in order, joined by "\n"
        spans.append((role, letter, pos, pos + len(part)))
        pos += len(part) + 1
    return text, spans


def letter_token_ids(tokenizer, n: int, context: str = "\n") -> list[int]:
    """Token id of each of the first `n` letters *as the assistant's first token*.

    Tokenizers differ: Qwen's BPE writes "A" after the generation prompt's newline, SentencePiece
    models "▁A", some vocabularies only have " A". The letter is tokenised after `context` (the
    end of the generation prompt) and the one new token is taken; a letter that does not come out
    as exactly one token is an error (scoring would silently compare the wrong things).

    Args:
        tokenizer: the checkpoint's tokenizer (`model.tokenizer`).
        n: number of options.
        context: text the letter follows (the end of the generation prompt).

    Returns:
        `n` token ids, for A, B, ….

    Raises:
        ValueError: a letter is not a single token, or two letters share a token id.
    """
    ids = []
    base = tokenizer(context, add_special_tokens=False)["input_ids"]
    for letter in LETTERS[:n]:
        full = tokenizer(context + letter, add_special_tokens=False)["input_ids"]
        if full[: len(base)] == base and len(full) == len(base) + 1:
            ids.append(full[-1])
            continue
        for variant in (letter, " " + letter):
            alone = tokenizer(variant, add_special_tokens=False)["input_ids"]
            if len(alone) == 1:
                ids.append(alone[0])
                break
        else:
            raise ValueError(f"option letter {letter!r} is not a single token for this tokenizer; cannot score")
    if len(set(ids)) != len(ids):
        raise ValueError(f"option letters map to repeated token ids {ids}; cannot score")
    return ids


class LetterReadoutError(ValueError):
    """The option letters cannot be read as the first token the model writes after its
    generation prompt (a letter that is not one token there, two letters on one id, or a
    template whose reply does not follow the generation prompt)."""


def reply_letter_ids(tokenizer, prompt: str, replies: Sequence[str], letters: Sequence[str] | None = None) -> list[int]:
    """Token id of each option letter as the model writes it right after its own generation prompt.

    `prompt` is the rendered prompt ending in the generation prompt (`apply_chat_template(...,
    add_generation_prompt=True)`); `replies[i]` is the same conversation rendered with the
    assistant's reply being letter i (`add_generation_prompt=False`). The letter's id is the
    first token after the prompt's tokens in the reply's tokens — the token the checkpoint
    was trained to emit there. Why not tokenise the letter after a fixed context: Vicuna's
    template ends the prompt with "ASSISTANT:" and renders a reply as "ASSISTANT: A", so the
    model emits "▁A" (Llama-2 id 319), while "A" tokenised after "\\n" or glued to ":" is the
    word-internal piece 29909: every score would read the wrong logit.

    Args:
        tokenizer: the checkpoint's tokenizer.
        prompt: the rendered prompt (text) ending in the generation prompt.
        replies: the conversation rendered with each letter as the reply, one per letter.
        letters: the letters (default A, B, … one per reply).

    Returns:
        One token id per letter, all distinct.

    Raises:
        LetterReadoutError: a reply's tokens do not start with the prompt's tokens, the first new
            token is not the letter (e.g. a template that opens the reply with a thinking block),
            or two letters share an id.
    """
    letters = list(LETTERS[: len(replies)] if letters is None else letters)
    if len(letters) != len(replies):
        raise LetterReadoutError(f"{len(letters)} letters for {len(replies)} rendered replies")
    base = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = []
    for letter, text in zip(letters, replies):
        full = tokenizer(text, add_special_tokens=False)["input_ids"]
        if full[: len(base)] != base or len(full) == len(base):
            raise LetterReadoutError(
                f"the reply {letter!r} rendered by the chat template does not continue the generation prompt's "
                f"tokens (prompt ends {tokenizer.convert_ids_to_tokens(base[-4:])}, the reply has "
                f"{tokenizer.convert_ids_to_tokens(full[max(0, len(base) - 4) : len(base) + 2])}); "
                "pass the letter ids yourself (letter_ids=)"
            )
        first = full[len(base)]
        piece = tokenizer.decode([first])
        if piece.strip() != letter:
            raise LetterReadoutError(
                f"after the generation prompt the reply {letter!r} starts with token {first} ({piece!r}), not the "
                "letter: the letter is not one token there (or the template opens the reply with other text); "
                "pass the letter ids yourself (letter_ids=)"
            )
        ids.append(first)
    if len(set(ids)) != len(ids):
        raise LetterReadoutError(f"option letters {letters} map to repeated token ids {ids}; cannot score")
    return ids
