"""Multiple-choice scoring from the logits at the answer position, and aggregates.

Per sample and configuration: the predicted letter (the option letter with the highest logit;
ties go to the earliest letter), whether it is correct, p(correct) under a softmax over the option
letters and over the full vocabulary, the logit difference correct − best wrong, and
KL(p_clean ‖ p_knocked) over the option letters. Aggregates: accuracy, performance ratio
(knocked / clean accuracy), percentile-bootstrap confidence intervals seeded from the run key.

Open-ended answers (`match_answer`, `score_open`): a generated text against one or more reference
answers, after `normalise_answer` (NFKC, case-folded, every character that is not a letter or a
digit becomes a space, runs of spaces collapse, the ends are stripped). Articles are kept: "A" is
an option letter. `exact`: the normalised texts are equal; `contains`: the normalised reference
occurs in the normalised prediction as whole words ("red" is in "it is red", not in "bored");
`starts`: the prediction begins with the reference's words (an answer, then anything the model
goes on to write); or a function `fn(prediction, references) -> bool` that sees the raw texts.
"""

from __future__ import annotations

import hashlib
import math
import unicodedata
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from vlens.arguments import ArgumentError, as_index, as_token_ids
from vlens.inputs.prompts import LETTERS


def score(logits: Float[Tensor, " d_vocab"], letter_ids: Sequence[int], answer: int | None) -> dict:
    """Score one answer position's logits on the option letters.

    Args:
        logits: the last position's logits [d_vocab].
        letter_ids: token id of each option letter (A, B, ...).
        answer: the correct option's index, or None.

    Returns:
        `pred` (the top letter; ties go to the earliest) and `letter_logits`; with an answer also
        `answer`, `correct`, `p_correct` (softmax over the letters), `p_correct_vocab`, `correct_vocab`
        (the answer letter is the top token of the whole vocabulary) and `logit_diff` (answer − best wrong).

    Raises:
        ArgumentError: a letter id outside the vocabulary, or an answer outside
            `0..len(letter_ids)-1` (negative answers are refused, not wrapped)."""
    letter_ids = as_token_ids(letter_ids, "letter_ids", int(logits.shape[-1]), min_len=1)
    if answer is not None:
        answer = as_index(answer, "answer", len(letter_ids), what="option index")
    letters = logits.float()[letter_ids]
    best = float(letters.max())
    pred = int((letters == best).nonzero()[0])  # ties → earliest letter, deterministically
    out = {"pred": LETTERS[pred], "letter_logits": [round(float(x), 6) for x in letters]}
    if answer is not None:
        p_letters = letters.softmax(-1)
        p_vocab = logits.float().log_softmax(-1)[letter_ids[answer]].exp()
        wrong = torch.cat([letters[:answer], letters[answer + 1 :]])
        out.update(
            answer=LETTERS[answer],
            correct=pred == answer,
            p_correct=float(p_letters[answer]),
            p_correct_vocab=float(p_vocab),
            # the answer letter is the top token of the whole vocabulary (map-the-flow's correctness)
            correct_vocab=int(logits.argmax()) == letter_ids[answer],
            logit_diff=float(letters[answer] - wrong.max()),
        )
    return out


def kl_letters(clean: Sequence[float], knocked: Sequence[float]) -> float:
    """KL(p_clean ‖ p_knocked) of the softmax over option-letter logits."""
    c, k = torch.tensor(clean).log_softmax(-1), torch.tensor(knocked).log_softmax(-1)
    return float((c.exp() * (c - k)).sum())


def accuracy(correct: Sequence[bool]) -> float:
    """The fraction of True in `correct` (NaN for no samples)."""
    return float(np.mean(correct)) if len(correct) else math.nan


def performance_ratio(knocked_acc: float, clean_acc: float) -> float:
    """knocked accuracy / clean accuracy; NaN, with a warning, when clean accuracy is 0 or NaN."""
    if not clean_acc or math.isnan(clean_acc):
        warnings.warn("clean accuracy is 0: the performance ratio is undefined (NaN)", stacklevel=2)
        return math.nan
    return knocked_acc / clean_acc


def seed_from(key: str) -> int:
    """A deterministic 64-bit seed from a string key (the first 8 bytes of its SHA-256)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")


def bootstrap_ci(
    clean: Sequence[bool], knocked: Sequence[bool], key: str, n: int = 1000, level: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Percentile intervals for knocked accuracy and the performance ratio, resampling samples
    (paired) with a generator seeded from `key`: the same run reports the same intervals."""
    c, k = np.asarray(clean, dtype=float), np.asarray(knocked, dtype=float)
    if len(c) == 0:
        return {"accuracy": (math.nan, math.nan), "ratio": (math.nan, math.nan)}
    rng = np.random.default_rng(seed_from(key))
    idx = rng.integers(0, len(c), size=(n, len(c)))
    acc_k, acc_c = k[idx].mean(1), c[idx].mean(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(acc_c > 0, acc_k / acc_c, np.nan)
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    r = ratio[~np.isnan(ratio)]
    return {
        "accuracy": (float(np.percentile(acc_k, lo)), float(np.percentile(acc_k, hi))),
        "ratio": (float(np.percentile(r, lo)), float(np.percentile(r, hi))) if len(r) else (math.nan, math.nan),
    }


def bootstrap_mean_ci(values: Sequence[float], key: str, n: int = 1000, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean of `values` (in a stable order), resampled with a generator
    seeded from `key`: the same run reports the same interval."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed_from(key))
    means = v[rng.integers(0, len(v), size=(n, len(v)))].mean(1)
    return (float(np.percentile(means, (1 - level) / 2 * 100)), float(np.percentile(means, (1 + level) / 2 * 100)))


def language_prior(samples) -> list[int | None]:
    """A no-video baseline from the answer distribution: for each sample, the option whose text is
    most often the answer among the *other* samples with the same question (leave-one-out; ties →
    the earliest option). What a model that never looks at the video could score at best by
    knowing the dataset's answer statistics. None for samples without an answer key."""
    from collections import Counter

    by_question: dict[str, Counter] = {}
    for s in samples:
        if s.answer is not None:
            by_question.setdefault(s.question, Counter())[s.options[s.answer]] += 1
    preds = []
    for s in samples:
        if s.answer is None:
            preds.append(None)
            continue
        counts = by_question[s.question].copy()
        counts[s.options[s.answer]] -= 1
        preds.append(max(range(len(s.options)), key=lambda i: (counts[s.options[i]], -i)))
    return preds


MATCHES = ("exact", "contains", "starts")
AnswerMatch = Callable[[str, Sequence[str]], bool]  # fn(prediction, references) -> correct


def normalise_answer(text: str) -> str:
    """`text` for comparison: NFKC, case-folded, non-letters/digits → spaces, spaces collapsed, stripped.

    Raises:
        ArgumentError: `text` is not a string."""
    if not isinstance(text, str):
        raise ArgumentError(f"an answer must be a string, got {type(text).__name__} {text!r}")
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    kept = "".join(c if unicodedata.category(c)[0] in "LN" else " " for c in folded)
    return " ".join(kept.split())


def match_name(how: str | AnswerMatch) -> str:
    """The name a match is stored under: `exact`, `contains`, `starts`, or a function's
    `module.qualname` (part of the run key, so another function is another run).

    Raises:
        ArgumentError: an unknown name, or neither a name nor a callable."""
    if isinstance(how, str):
        if how not in MATCHES:
            raise ArgumentError(f"match must be one of {', '.join(MATCHES)} or a function, got {how!r}")
        return how
    if not callable(how):
        raise ArgumentError(
            f"match must be one of {', '.join(MATCHES)} or fn(prediction, references) -> bool, got {how!r}"
        )
    return f"{getattr(how, '__module__', '?')}.{getattr(how, '__qualname__', type(how).__name__)}"


def match_answer(prediction: str, references: Sequence[str], how: str | AnswerMatch = "exact") -> bool:
    """Whether `prediction` matches any of `references` (see the module docstring for the matches).

    Args:
        prediction: the generated text.
        references: accepted answers (at least one that is not empty once normalised, for the
            built-in matches).
        how: `exact`, `contains`, `starts`, or `fn(prediction, references) -> bool`.

    Returns:
        True when it matches.

    Raises:
        ArgumentError: an unknown match, no usable reference, or a function that returns no bool."""
    match_name(how)
    if isinstance(references, str) or not isinstance(references, Sequence):
        raise ArgumentError(f"references must be a list of answer strings, got {references!r}")
    if callable(how):
        out = how(prediction, list(references))
        if not isinstance(out, (bool, np.bool_)):
            raise ArgumentError(f"the match function {match_name(how)} must return a bool, got {out!r}")
        return bool(out)
    pred = normalise_answer(prediction)
    refs = [r for r in (normalise_answer(x) for x in references) if r]
    if not refs:
        raise ArgumentError(f"references {list(references)!r} are empty once normalised: nothing to match against")
    if how == "exact":
        return pred in refs
    if how == "contains":
        return any(f" {r} " in f" {pred} " for r in refs)
    return any(f"{pred} ".startswith(f"{r} ") for r in refs)


def score_open(prediction: str, references: Sequence[str], how: str | AnswerMatch = "exact") -> dict:
    """One open-ended answer's record fields: `text`, `references`, `match` (its name), `correct`.

    Raises:
        ArgumentError: as `match_answer`."""
    return {
        "text": prediction,
        "references": list(references),
        "match": match_name(how),
        "correct": match_answer(prediction, references, how),
    }
