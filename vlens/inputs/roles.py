"""Text roles: which part of the prompt each text position is (`layout.role`).

| role            | positions                                                                  |
|-----------------|----------------------------------------------------------------------------|
| `system`        | the system message's text (when given as `system_prompt`)                  |
| `question`      | the question's text                                                        |
| `option`        | one option's line `B. text` (`layout.option_letter`: its letter; `layout.correct`: the answer's, when known) |
| `answer_prompt` | the instruction line and the chat template's generation prompt after the user turn, except the last position |
| `last`          | the last position: the one whose logits are scored                         |
| `template`      | every other text token (chat-template markers, role headers, newlines between lines) |
| `generated`     | tokens generated after the prompt (`layout.extend`)                        |

Vision and pad positions have role `""`. Roles are derived from the prompt builder's own
character spans (`vlens.inputs.prompts.mc_spans`) mapped to tokens: the templated prompt
(`inputs.prompts`) is tokenised with the tokenizer's offsets (`return_offsets_mapping`), its ids
aligned with the row's text positions (the processor only expanded the media placeholders), the
user text found in the prompt, and a token takes the role of the span holding its first non-space
character. User text that cannot be found is an error, never a guess.

    inputs = model.to_inputs(video, mc_question(q, options), n_frames=8)
    inputs = with_roles(model, inputs, q, options, answer="B")
    ko.Edges("last", ko.option(correct=True))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from vlens.inputs.layout import LayoutError, VideoLayout
from vlens.inputs.prompts import mc_spans


def _char_spans(tokenizer, prompt: str, ids: list[int], layout: VideoLayout) -> dict[int, tuple[int, int]]:
    """Character range in `prompt` of each text position of the row.

    The prompt (before the processor expanded the media placeholders) is tokenised with offsets;
    its ids are aligned with the row's ids (difflib: equal runs match, the placeholder the
    processor expanded and tokens it added match nothing). Only text positions are mapped.
    """
    import difflib

    enc = tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
    p_ids, p_off = list(enc["input_ids"]), list(enc["offset_mapping"])
    text_pos = [i for i, s in enumerate(layout.segment) if s in ("system", "text", "marker")]
    row_ids = [ids[i] for i in text_pos]
    out: dict[int, tuple[int, int]] = {}
    matcher = difflib.SequenceMatcher(None, row_ids, p_ids, autojunk=False)
    for a, b, size in matcher.get_matching_blocks():
        for j in range(size):
            out[text_pos[a + j]] = tuple(p_off[b + j])
    return out


def layout_roles(
    layout: VideoLayout,
    tokenizer,
    input_ids: Sequence[int],
    prompt: str,
    question: str,
    options: Sequence[str] | None = None,
    answer: str | int | None = None,
    system_prompt: str | None = None,
) -> VideoLayout:
    """The layout with text roles, option letters and the correct letter filled in.

    Args:
        layout: the row's layout (`inputs.layouts[row]`).
        tokenizer: the checkpoint's tokenizer (`model.tokenizer`).
        input_ids: the row's token ids (`inputs["input_ids"][row]`).
        prompt: the row's templated prompt text (`inputs.prompts[row]`).
        question: the question as given to `mc_question` (or the whole user text when `options`
            is None).
        options: the option texts, or None for a plain question.
        answer: the correct option's letter ("B") or index (1), when known.
        system_prompt: the system message given to `to_inputs`, if any.

    Returns:
        A new `VideoLayout` (segments unchanged) with `role`, `option_letter` and `correct`.

    Raises:
        LayoutError: the user text (or the system prompt) is not in the row's text, or
            `input_ids` and the layout differ in length.
        ValueError: `answer` is not one of the options' letters.
    """
    from vlens.inputs.prompts import LETTERS

    ids = [int(t) for t in input_ids]
    if len(ids) != len(layout):
        raise LayoutError(f"input_ids has {len(ids)} positions but the layout {len(layout)}; pass the same row")
    user, spans = mc_spans(question, options)
    correct = None
    if answer is not None:
        n_opt = len(options or ())
        correct = LETTERS[answer] if isinstance(answer, int) and 0 <= answer < n_opt else answer
        if not isinstance(correct, str) or correct not in LETTERS[:n_opt]:  # an int out of range too
            raise ValueError(
                f"answer {answer!r} is not one of the options' letters {tuple(LETTERS[:n_opt])} (or their indices)"
            )
    prompt_text = prompt
    base = prompt_text.find(user)
    found_user = base >= 0
    todo = [(r, l, base + a, base + b) for r, l, a, b in spans] if found_user else []
    if found_user:  # the generation prompt: everything after the user text
        todo.append(("answer_prompt", "", base + len(user), len(prompt_text) + 1))
    found_system = False
    if system_prompt and (s0 := prompt_text.find(system_prompt.strip())) >= 0:
        found_system = True
        todo.append(("system", "", s0, s0 + len(system_prompt.strip())))
    role = [("" if s in ("video", "separator", "image", "pad") else "template") for s in layout.segment]
    letter = [""] * len(ids)
    for i, (a, b) in _char_spans(tokenizer, prompt_text, ids, layout).items():
        piece = prompt_text[a:b]
        # a token belongs to the span holding its first non-space character (whitespace-only
        # tokens: where they start); the generation-prompt span is listed last, so it only
        # takes what no line of the user text holds
        first = a + (len(piece) - len(piece.lstrip())) if piece.strip() else a
        for r, l, s, e in todo:
            if s <= first < e:
                role[i], letter[i] = r, l
                break
    if not found_user:
        raise LayoutError(
            f"the user text {user[:40]!r}… is not in the row's prompt; pass the question (and options) "
            "exactly as given to mc_question / to_inputs"
        )
    if system_prompt and not found_system:
        raise LayoutError(f"the system prompt {system_prompt[:40]!r} is not in the row's text")
    last = max(i for i, s in enumerate(layout.segment) if s != "pad")
    role[last], letter[last] = "last", ""
    return dataclasses.replace(layout, role=tuple(role), option_letter=tuple(letter), correct=correct)


def with_roles(model, inputs, question, options=None, answer=None, system_prompt: str | None = None):
    """`inputs` with text roles in every row's layout (see `layout_roles`).

    Args:
        model: the HookedVideoLLM that built `inputs` (its tokenizer decodes the rows).
        inputs: VideoInputs from `model.to_inputs`.
        question: the question (a list: one per row).
        options: the option texts (a list of lists for a batch), or None.
        answer: the correct letter or index (a list for a batch), or None.
        system_prompt: the system message given to `to_inputs`, if any.

    Returns:
        A new VideoInputs, the same tensors, layouts with roles.
    """
    from vlens.inputs.video_inputs import VideoInputs

    n = len(inputs.layouts)
    qs = [question] * n if isinstance(question, str) else list(question)
    opts = [options] * n if options is None or (options and isinstance(options[0], str)) else list(options)
    ans = [answer] * n if answer is None or isinstance(answer, (str, int)) else list(answer)
    if not len(qs) == len(opts) == len(ans) == n:
        raise ValueError(f"a batch of {n} rows needs {n} questions, option lists and answers")
    layouts = [
        layout_roles(
            inputs.layouts[r],
            model.tokenizer,
            inputs["input_ids"][r].tolist(),
            inputs.prompts[r],
            qs[r],
            opts[r],
            ans[r],
            system_prompt,
        )
        for r in range(n)
    ]
    return VideoInputs(dict(inputs), layouts, inputs.videos, inputs.prompts)
