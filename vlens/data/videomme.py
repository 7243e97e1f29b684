"""Video-MME (the lmms-lab release): DIR/videomme/test-00000-of-00001.parquet + DIR/data/<videoID>.mp4
(or DIR/video/). Filters: duration (short/medium/long), domain, task_type."""

from __future__ import annotations

import re
from pathlib import Path

from vlens.data import DatasetError, Sample, inside

PARQUET = Path("videomme") / "test-00000-of-00001.parquet"
LETTER = re.compile(r"^\s*([A-Z])[.)]\s*")


def _strip_letter(option: str) -> str:
    return LETTER.sub("", str(option), count=1).strip()


def load(root: str, *, task=None, duration=None, domain=None, task_type=None) -> list[Sample]:
    import pandas as pd

    root_p = Path(root)
    table = root_p / PARQUET
    if not table.exists():
        raise DatasetError(f"Video-MME annotations not found: expected {table} (the lmms-lab release's parquet)")
    df = pd.read_parquet(table)
    wanted = {"duration": duration, "domain": domain, "task_type": task_type or task}
    for col, value in wanted.items():
        if value is None:
            continue
        values = [value] if isinstance(value, str) else list(value)
        known = sorted(set(df[col].astype(str)))
        bad = [v for v in values if v not in known]
        if bad:
            raise DatasetError(f"Video-MME has no {col} {bad}; known: {known}")
        df = df.loc[df[col].astype(str).isin(values)]
    video_dirs = [root_p / "data", root_p / "video"]
    samples = []
    for row in df.to_dict("records"):
        vid = str(row["videoID"])
        where = f"Video-MME question {row['question_id']}"
        candidates = [inside(d, f"{vid}.mp4", where) for d in video_dirs]
        path = next((c for c in candidates if c.exists()), candidates[0])
        options = tuple(_strip_letter(o) for o in row["options"])
        answer = ord(str(row["answer"]).strip()[0]) - ord("A")
        meta = {
            "duration": row["duration"],
            "domain": row["domain"],
            "sub_category": row["sub_category"],
            "task_type": row["task_type"],
        }
        if not path.exists():
            meta["missing"] = f"video not found: {path} (or {video_dirs[1] / (vid + '.mp4')})"
        samples.append(
            Sample(f"videomme/{row['question_id']}", str(path), str(row["question"]), options, answer, meta=meta)
        )
    return samples
