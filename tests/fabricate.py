"""Tiny benchmark directories in the released layouts (docs/datasets.md), with real mp4 files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vlens.data import synthetic
from vlens.inputs.video import write_video


def _clip(seed: int, n: int = 12, size: int = 32) -> np.ndarray:
    frames, *_ = synthetic.make_sample("direction", np.random.default_rng(seed), n_frames=n, size=size)
    return frames


def videomme(root: Path, n: int = 4, missing: int | None = None) -> Path:
    import pandas as pd

    rows = []
    for i in range(n):
        vid = f"vid{i:03d}"
        if i != missing:
            write_video(root / "data" / f"{vid}.mp4", _clip(i), fps=4)
        rows.append(
            {
                "video_id": f"{i:03d}",
                "duration": ["short", "medium"][i % 2],
                "domain": "Knowledge",
                "sub_category": "Humanity",
                "url": "",
                "videoID": vid,
                "question_id": f"{i:03d}-1",
                "task_type": ["Counting Problem", "Object Recognition"][i % 2],
                "question": "Which direction is the object moving?",
                "options": ["A. left", "B. right", "C. up", "D. down"],
                "answer": "ABCD"[i % 4],
            }
        )
    (root / "videomme").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(root / "videomme" / "test-00000-of-00001.parquet")
    return root


def mvbench(root: Path) -> Path:
    (root / "json").mkdir(parents=True, exist_ok=True)
    # a time-bounded task (Charades), a plain one, and the frame-folder task
    items = [
        {
            "video": f"c{i}.mp4",
            "question": "What color is the object?",
            "candidates": ["red", "blue", "green"],
            "answer": "blue",
            "start": 0.5,
            "end": 2.5,
        }
        for i in range(2)
    ]
    (root / "json" / "action_sequence.json").write_text(json.dumps(items))
    for i in range(2):
        write_video(root / "video" / "star" / "Charades_v1_480" / f"c{i}.mp4", _clip(10 + i), fps=4)
    items = [
        {
            "video": "m0.mp4",
            "question": "Which direction?",
            "candidates": ["up", "down", "left", "right"],
            "answer": "left",
        }
    ]
    (root / "json" / "moving_direction.json").write_text(json.dumps(items))
    write_video(root / "video" / "clevrer" / "video_validation" / "m0.mp4", _clip(20), fps=4)
    items = [
        {"video": "ep0", "question": "What happens?", "candidates": ["a", "b"], "answer": "b", "start": 0.0, "end": 3.0}
    ]
    (root / "json" / "episodic_reasoning.json").write_text(json.dumps(items))
    from PIL import Image

    folder = root / "video" / "tvqa" / "frames_fps3_hq" / "ep0"
    folder.mkdir(parents=True)
    for k, frame in enumerate(_clip(30, n=12)):
        Image.fromarray(frame).save(folder / f"{k + 1:05d}.jpg")
    return root


def egoschema(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    qs = []
    for i in range(3):
        uid = f"uid-{i}"
        write_video(root / "videos" / f"{uid}.mp4", _clip(40 + i), fps=4)
        qs.append(
            {
                "q_uid": uid,
                "google_drive_id": "x",
                "question": "What is the camera wearer doing?",
                **{f"option {k}": ["left", "right", "up", "down", "one"][k] for k in range(5)},
            }
        )
    (root / "questions.json").write_text(json.dumps(qs))
    (root / "subset_answers.json").write_text(json.dumps({"uid-0": 1, "uid-2": 4}))
    return root
