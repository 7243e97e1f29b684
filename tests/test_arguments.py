"""The shared argument vocabulary (vlens/arguments.py) and the entry points that use it: bad
arguments are an ArgumentError naming the argument, never a bare IndexError/TypeError or a result."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vlens.arguments import ArgumentError, as_index, as_layers, as_positive_int, as_token_ids
from vlens.interventions.patching import check_groups, logit_diff
from vlens.metrics import score

BAD_SCALARS = st.one_of(
    st.booleans(),
    st.floats(allow_nan=True),
    st.text(max_size=3),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.integers(max_value=-1),
)


@given(st.integers(min_value=0, max_value=50), st.integers(min_value=1, max_value=50))
def test_as_index_accepts_in_range(i, size):
    if i < size:
        assert as_index(i, "x", size) == i
        assert as_index(torch.tensor(i), "x", size) == i
    else:
        with pytest.raises(ArgumentError, match=r"x=\d+ is out of range"):
            as_index(i, "x", size)


@given(BAD_SCALARS)
def test_as_index_refuses_non_indices_naming_the_argument(value):
    with pytest.raises(ArgumentError, match="answer"):
        as_index(value, "answer", 4)


def test_negative_indices_are_refused_not_wrapped():
    with pytest.raises(ArgumentError, match="negative"):
        as_index(-1, "answer", 4)


def test_counts_and_layers():
    assert as_positive_int(3, "batch_size") == 3
    with pytest.raises(ArgumentError, match="batch_size"):
        as_positive_int(0, "batch_size")
    assert as_layers(None, "layers", 3) == [0, 1, 2]
    assert as_layers((2, 0), "layers", 3) == [2, 0]
    for bad in ([], [3], [-1], "01", 1, [1.0]):
        with pytest.raises(ArgumentError, match="layers"):
            as_layers(bad, "layers", 3)


@settings(max_examples=60, deadline=None)
@given(answer=BAD_SCALARS | st.integers(min_value=4, max_value=100))
def test_logit_diff_and_score_refuse_bad_answers(answer):
    logits = torch.randn(2, 10)
    with pytest.raises(ArgumentError, match="answer"):
        logit_diff(logits, [1, 2, 3, 4], answer)
    if answer is not None:  # score takes None: no answer key
        with pytest.raises(ArgumentError, match="answer"):
            score(logits[0], [1, 2, 3, 4], answer)


@settings(max_examples=40, deadline=None)
@given(
    ids=st.one_of(st.lists(st.integers(min_value=10, max_value=99), min_size=2, max_size=4), st.text(), st.integers())
)
def test_letter_ids_out_of_vocab_or_wrong_type(ids):
    with pytest.raises(ArgumentError, match="letter_ids"):
        logit_diff(torch.randn(1, 10), ids, 0)


def test_logit_diff_results_unchanged_for_valid_answers():
    logits = torch.randn(3, 10)
    ids = [1, 4, 7, 2]
    for a in range(4):
        letters = logits[:, ids]
        wrong = torch.cat([letters[:, :a], letters[:, a + 1 :]], 1).max(1).values
        torch.testing.assert_close(logit_diff(logits, ids, a), letters[:, a] - wrong, atol=0, rtol=0)
        assert score(logits[0], ids, a)["logit_diff"] == pytest.approx(float(letters[0, a] - wrong[0]), abs=1e-6)


def test_logit_diff_shape_error():
    with pytest.raises(ArgumentError, match="logits"):
        logit_diff(torch.randn(10), [1, 2], 0)


def test_check_groups():
    g = check_groups({"a": torch.tensor([0, 3]), "b": [1]}, 5)
    assert g["b"].tolist() == [1]
    for bad in ({}, {"a": torch.tensor([5])}, {"a": [-1]}, {"a": torch.tensor([0.5])}, {"a": []}, {"a": "x"}, [1]):
        with pytest.raises(ArgumentError, match="groups"):
            check_groups(bad, 5)


def test_token_ids_accepts_tensor():
    assert as_token_ids(torch.tensor([3, 4]), "letter_ids", 10) == [3, 4]


def test_frames_of_different_sizes_name_the_first_that_differs():
    import numpy as np

    from vlens.inputs.video import VideoError, stack_frames

    frames = [np.zeros((4, 4, 3), np.uint8)] * 2 + [np.zeros((4, 6, 3), np.uint8)]
    with pytest.raises(VideoError, match=r"frame 2 has shape \[4, 6, 3\]"):
        stack_frames(frames)
    assert stack_frames(frames[:2]).shape == (2, 4, 4, 3)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", None])
def test_corrupt_or_missing_settings_name_the_file(tmp_path, text):
    from vlens.experiments.store import SETTINGS, StoreError, load_results

    if text is not None:
        (tmp_path / SETTINGS).write_text(text)
    with pytest.raises(StoreError, match=SETTINGS):
        load_results(tmp_path)


@pytest.mark.parametrize(
    ("bad", "field"),
    [({"p_correct": "high"}, "p_correct"), ({"correct": 1}, "correct"), ({"letter_logits": ["a"]}, "letter_logits")],
)
def test_store_refuses_records_of_the_wrong_type_naming_line_and_field(tmp_path, bad, field):
    import json

    from vlens.experiments import store

    (tmp_path / store.SETTINGS).write_text("{}")
    good = {"sample": "s0", "config": "clean", "correct": True, "p_correct": 0.5, "letter_logits": [1.0, 2.0]}
    lines = [good, {**good, "sample": "s1", **bad}, {**good, "sample": "s2"}]
    part = tmp_path / "results.jsonl"
    part.write_text("".join(json.dumps(r) + "\n" for r in lines))
    with pytest.raises(store.CorruptStoreError, match=rf"line 2: .*{field}"):
        store.load_results(tmp_path)
    (report,) = store.check(tmp_path)
    assert report.bad_lines == (2,)
    store.repair(tmp_path)
    _, records = store.load_results(tmp_path)
    assert [r["sample"] for r in records] == ["s0", "s2"]
