"""Scoring open-ended answers (vlens.metrics): the normalisation's properties over arbitrary
strings (hypothesis), the three matches and a user function, and clear errors."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from vlens.arguments import ArgumentError
from vlens.metrics import match_answer, match_name, normalise_answer, score_open

texts = st.text(max_size=40)
words = st.lists(st.text(st.characters(categories=("Ll", "Lu", "Nd")), min_size=1, max_size=8), min_size=1, max_size=4)
noise = st.text(st.sampled_from(list(" \t\n.,;:!?\"'()-_/")), max_size=4)


@given(texts)
def test_normalise_is_idempotent_lowercase_and_single_spaced(s):
    n = normalise_answer(s)
    assert normalise_answer(n) == n
    assert n == n.strip() and "  " not in n
    assert all(c == " " or c.isalnum() for c in n)
    assert n.casefold() == n


@given(words, noise, noise)
def test_exact_ignores_case_punctuation_and_spacing(ws, before, after):
    ref = " ".join(ws)
    assume(normalise_answer(ref))
    # Unicode case mapping is not a round trip everywhere ("ı".upper() is "I", which folds to "i")
    assume(all(w.upper().casefold() == w.casefold() for w in ws))
    pred = before + "  ".join(w.upper() for w in ws) + after
    assert match_answer(pred, [ref], "exact")
    assert match_answer(pred, [ref], "starts") and match_answer(pred, [ref], "contains")


@given(words, words, words)
def test_contains_finds_whole_words_and_starts_the_first_ones(left, mid, right):
    ref = " ".join(mid)
    assume(normalise_answer(ref))
    pred = " ".join(left + mid + right)
    assert match_answer(pred, [ref], "contains")
    assert match_answer(" ".join(mid + right), [ref], "starts")
    # exact ⇒ starts ⇒ contains, whatever the strings
    for p in (pred, ref, " ".join(left)):
        e, s, c = (match_answer(p, [ref], how) for how in ("exact", "starts", "contains"))
        assert (not e or s) and (not s or c)


def test_matches_on_examples():
    assert match_answer("Red.", ["red"]) and not match_answer("red ball", ["red"])
    assert match_answer("It is RED!", ["red"], "contains") and not match_answer("bored", ["red"], "contains")
    assert match_answer("blue, because it is blue", ["blue"], "starts")
    assert not match_answer("blueish", ["blue"], "starts")
    assert match_answer("B", ["A", "B"])  # any reference
    assert match_answer("ＲＥＤ", ["red"])  # NFKC: full-width letters
    assert match_answer("Straße", ["STRASSE"])  # case-folded
    assert match_answer("a", ["A"])  # articles are kept: "A" is an option letter


def test_user_function_sees_the_raw_texts():
    seen = []

    def close_enough(prediction, references):
        seen.append((prediction, references))
        return prediction.startswith(references[0][:3])

    assert score_open("greenish", ["green"], close_enough) == {
        "text": "greenish",
        "references": ["green"],
        "match": f"{__name__}.test_user_function_sees_the_raw_texts.<locals>.close_enough",
        "correct": True,
    }
    assert seen == [("greenish", ["green"])]


@pytest.mark.parametrize(
    "args, match",
    [
        (("red", ["red"], "fuzzy"), "match must be one of exact, contains, starts or a function, got 'fuzzy'"),
        (("red", ["red"], 3), "match must be one of"),
        (("red", "red"), "references must be a list of answer strings"),
        (("red", ["", " ?! "]), "empty once normalised"),
        ((None, ["red"]), "an answer must be a string, got NoneType"),
        (("red", ["red"], lambda p, r: "yes"), "must return a bool, got 'yes'"),
    ],
)
def test_bad_scoring_arguments_are_named(args, match):
    with pytest.raises(ArgumentError, match=match):
        match_answer(*args)


def test_match_names():
    assert [match_name(m) for m in ("exact", "contains", "starts")] == ["exact", "contains", "starts"]
    assert match_name(match_answer) == "vlens.metrics.match_answer"
