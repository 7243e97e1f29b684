"""Multiple-choice scoring, aggregates and the result store."""

from __future__ import annotations

import json
import math
from typing import ClassVar

import pytest
import torch

from vlens.experiments.store import ResultStore, StoreError, load_results
from vlens.inputs.prompts import letter_token_ids, mc_question
from vlens.metrics import bootstrap_ci, kl_letters, performance_ratio, score


class SentencePieceLike:
    """Letters only exist as '▁A' (SentencePiece); a bare 'A' after a newline becomes '▁A'."""

    vocab: ClassVar[dict[str, int]] = {"\n": 1, "▁A": 2, "▁B": 3, "▁C": 4, "A": 9}

    def __call__(self, text, add_special_tokens=False):
        ids = []
        for ch in text:
            if ch == "\n":
                ids.append(1)
            else:
                ids.append(self.vocab["▁" + ch])
        return {"input_ids": ids}


class SpaceOnly:
    """Letters only exist with a leading space (' A'), and 'A' alone splits in two."""

    def __call__(self, text, add_special_tokens=False):
        table = {" A": [20], " B": [21], "A": [5, 6], "B": [5, 7], "\n": [1], "\nA": [1, 5, 6], "\nB": [1, 5, 7]}
        return {"input_ids": table[text]}


def test_letter_ids_for_different_tokenizers(model):
    plain = letter_token_ids(model.tokenizer, 4)
    assert model.tokenizer.convert_ids_to_tokens(plain) == ["A", "B", "C", "D"]
    assert letter_token_ids(SentencePieceLike(), 3) == [2, 3, 4]
    assert letter_token_ids(SpaceOnly(), 2) == [20, 21]


def test_prompt_format():
    text = mc_question("What color is the object?", ["red", "blue"])
    assert text.splitlines() == [
        "What color is the object?",
        "A. red",
        "B. blue",
        "Answer with the option's letter from the given choices directly.",
    ]
    with pytest.raises(ValueError, match="2–10 options"):
        mc_question("q", ["only"])


def test_score_ties_and_option_counts():
    logits = torch.zeros(10)
    logits[[3, 5]] = 2.0  # B and C tie at the top
    s = score(logits, [1, 3, 5], answer=2)
    assert s["pred"] == "B" and s["correct"] is False  # ties → the earliest letter
    assert s["logit_diff"] == 0.0
    assert s["p_correct"] == pytest.approx(math.exp(2) / (1 + 2 * math.exp(2)))
    five = score(torch.arange(10.0), [0, 2, 4, 6, 8], answer=4)
    assert five["pred"] == "E" and five["correct"] and five["logit_diff"] == pytest.approx(2.0)
    assert five["p_correct_vocab"] == pytest.approx(torch.arange(10.0).softmax(-1)[8].item())
    assert "correct" not in score(torch.arange(10.0), [0, 1], answer=None)
    # map-the-flow's correctness: the answer letter must be the whole vocabulary's top token
    assert five["correct_vocab"] is False  # token 9 (not a letter) beats E (token 8)
    top = torch.zeros(10)
    top[[2, 7]] = torch.tensor([3.0, 1.0])
    s = score(top, [2, 7], answer=0)
    assert s["correct"] and s["correct_vocab"]
    s = score(top, [5, 7], answer=1)
    assert s["correct"] and not s["correct_vocab"]


def test_kl_ratio_and_bootstrap():
    assert kl_letters([1.0, 2.0], [1.0, 2.0]) == pytest.approx(0.0, abs=1e-7)
    assert kl_letters([5.0, 0.0], [0.0, 5.0]) > 1
    with pytest.warns(UserWarning, match="clean accuracy is 0"):
        assert math.isnan(performance_ratio(0.5, 0.0))
    clean, knocked = [True, True, False, True] * 5, [True, False, False, True] * 5
    a, b = bootstrap_ci(clean, knocked, "key"), bootstrap_ci(clean, knocked, "key")
    assert a == b  # seeded from the run key
    assert a["accuracy"][0] <= 0.5 <= a["accuracy"][1]
    assert bootstrap_ci(clean, knocked, "other") != a


def test_store_resumes_repairs_and_refuses_other_settings(tmp_path):
    settings = {"model": "m", "frames": 8}
    store = ResultStore(tmp_path, settings)
    store.append(
        [{"sample": "s1", "config": "clean", "correct": True}, {"sample": "s1", "config": "x", "correct": False}]
    )
    store.append([{"sample": "s1", "config": "clean", "correct": True}])  # duplicate key: ignored
    with open(store.path, "a") as f:
        f.write('{"sample": "s2", "config": "clean", "corr')  # a write torn by a kill
    store.close()  # one writer per part: the next store of the same part opens after this one closed
    again = ResultStore(tmp_path, settings)
    assert again.done == {("s1", "clean"), ("s1", "x")}
    again.append([{"sample": "s2", "config": "clean", "correct": True}])
    lines = again.path.read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(l) for l in lines)
    _, records = load_results(tmp_path)
    assert len(records) == 3
    again.close()
    with pytest.raises(StoreError, match="frames: 8 there, 16 now"):
        ResultStore(tmp_path, {"model": "m", "frames": 16})

    nested = tmp_path / "nested"
    ResultStore(nested, {"model": "m", "flow": {"window": 3, "protocols": ["a"]}}).close()
    with pytest.raises(StoreError, match=r"\(flow\.window: 3 there, 5 now\)"):  # the one nested key, not both dicts
        ResultStore(nested, {"model": "m", "flow": {"window": 5, "protocols": ["a"]}})
    with pytest.raises(StoreError, match="not a vlens run directory"):
        load_results(tmp_path / "nothing")


def test_language_prior_is_leave_one_out_majority():
    from vlens.data import Sample
    from vlens.metrics import language_prior

    q = "What color is the object?"
    mk = lambda i, opts, ans: Sample(f"s{i}", None, q, opts, ans)
    samples = [
        mk(0, ("red", "blue"), 0),
        mk(1, ("blue", "red"), 1),
        mk(2, ("red", "green"), 0),
        mk(3, ("green", "blue"), 1),
        Sample("other", None, "Which way?", ("left", "right"), 1),
        Sample("nokey", None, q, ("red", "blue"), None),
    ]
    preds = language_prior(samples)
    # s0's answer "red" is excluded from its own count: others say red 2×, blue 1× → red (index 0)
    assert preds[0] == 0 and preds[1] == 1 and preds[2] == 0
    assert preds[3] == 0  # others answered red 3×: neither green nor blue ever → tie → earliest option
    assert preds[4] == 0  # alone with its question: no statistics, earliest option
    assert preds[5] is None
