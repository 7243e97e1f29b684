"""EgoSchema (the GitHub release): DIR/questions.json, DIR/subset_answers.json, DIR/videos/<q_uid>.mp4.
Questions outside the public subset have answer None (predictions only)."""

from __future__ import annotations

import json
from pathlib import Path

from vlens.data import DatasetError, Sample, inside


def load(root: str, *, task=None) -> list[Sample]:
    root_p = Path(root)
    questions = root_p / "questions.json"
    if not questions.exists():
        raise DatasetError(f"EgoSchema questions not found: expected {questions}")
    answers_file = root_p / "subset_answers.json"
    answers = json.loads(answers_file.read_text()) if answers_file.exists() else {}
    samples = []
    for q in json.loads(questions.read_text()):
        uid = q["q_uid"]
        options = tuple(str(q[f"option {i}"]) for i in range(5))
        path = inside(root_p / "videos", f"{uid}.mp4", f"EgoSchema question {uid!r}")
        meta = {} if path.exists() else {"missing": f"video not found: {path}"}
        answer = answers.get(uid)
        samples.append(
            Sample(
                f"egoschema/{uid}",
                str(path),
                str(q["question"]),
                options,
                None if answer is None else int(answer),
                meta=meta,
            )
        )
    return samples
