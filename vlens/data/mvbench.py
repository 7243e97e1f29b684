"""MVBench (the OpenGVLab release): DIR/json/<task>.json and DIR/video/<source>/... .
The answer is the index of `answer` in `candidates`; tasks with a time bound carry start/end;
episodic_reasoning is frame folders at 3 fps."""

from __future__ import annotations

import json
from pathlib import Path

from vlens.data import DatasetError, Sample, inside

# task json stem → (task name, source folder under video/, frame folders?, time bound?)
TASKS = {
    "action_sequence": ("Action Sequence", "star/Charades_v1_480", False, True),
    "action_prediction": ("Action Prediction", "star/Charades_v1_480", False, True),
    "action_antonym": ("Action Antonym", "ssv2_video", False, False),
    "fine_grained_action": ("Fine-grained Action", "Moments_in_Time_Raw/videos", False, False),
    "unexpected_action": ("Unexpected Action", "FunQA_test/test", False, False),
    "object_existence": ("Object Existence", "clevrer/video_validation", False, False),
    "object_interaction": ("Object Interaction", "star/Charades_v1_480", False, True),
    "object_shuffle": ("Object Shuffle", "perception/videos", False, False),
    "moving_direction": ("Moving Direction", "clevrer/video_validation", False, False),
    "action_localization": ("Action Localization", "sta/sta_video", False, True),
    "scene_transition": ("Scene Transition", "scene_qa/video", False, False),
    "action_count": ("Action Count", "perception/videos", False, False),
    "moving_count": ("Moving Count", "clevrer/video_validation", False, False),
    "moving_attribute": ("Moving Attribute", "clevrer/video_validation", False, False),
    "state_change": ("State Change", "perception/videos", False, False),
    "fine_grained_pose": ("Fine-grained Pose", "nturgbd", False, False),
    "character_order": ("Character Order", "perception/videos", False, False),
    "egocentric_navigation": ("Egocentric Navigation", "vlnqa", False, False),
    "episodic_reasoning": ("Episodic Reasoning", "tvqa/frames_fps3_hq", True, True),
    "counterfactual_inference": ("Counterfactual Inference", "clevrer/video_validation", False, False),
}
FRAME_FPS = 3.0


def _task_key(name: str) -> str:
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    if key not in TASKS:
        raise DatasetError(f"unknown MVBench task {name!r}; tasks: {', '.join(TASKS)}")
    return key


def load(root: str, *, task=None) -> list[Sample]:
    root_p = Path(root)
    json_dir = root_p / "json"
    if not json_dir.is_dir():
        raise DatasetError(f"MVBench annotations not found: expected the folder {json_dir} with <task>.json files")
    present = [p.stem for p in sorted(json_dir.glob("*.json")) if p.stem in TASKS]
    if task:
        wanted = [_task_key(t) for t in ([task] if isinstance(task, str) else task)]
        missing = [t for t in wanted if t not in present]
        if missing:
            raise DatasetError(f"MVBench task file(s) not found: {[str(json_dir / (t + '.json')) for t in missing]}")
        present = [t for t in present if t in wanted]  # keep the table's order
    if not present:
        raise DatasetError(f"no MVBench task files in {json_dir} (expected e.g. {json_dir / 'action_sequence.json'})")
    order = list(TASKS)
    samples = []
    for key in sorted(present, key=order.index):
        name, source, frames, bounded = TASKS[key]
        source_dir = root_p / "video" / source
        if not source_dir.is_dir():
            raise DatasetError(f"MVBench task {name!r}: its videos are missing, expected the folder {source_dir}")
        for i, item in enumerate(json.loads((json_dir / f"{key}.json").read_text())):
            candidates = tuple(str(c) for c in item["candidates"])
            if item["answer"] not in candidates:
                raise DatasetError(
                    f"{json_dir / (key + '.json')} item {i}: answer {item['answer']!r} is not a candidate"
                )
            path = inside(source_dir, item["video"], f"MVBench {key}.json item {i}")
            meta = {"task": key, "task_name": name}
            if not path.exists():
                meta["missing"] = f"video not found: {path}"
            start = float(item["start"]) if bounded and "start" in item else None
            end = float(item["end"]) if bounded and "end" in item else None
            samples.append(
                Sample(
                    f"mvbench/{key}/{i}",
                    str(path),
                    str(item["question"]),
                    candidates,
                    candidates.index(item["answer"]),
                    start=start,
                    end=end,
                    fps=FRAME_FPS if frames else None,
                    meta=meta,
                )
            )
    return samples
