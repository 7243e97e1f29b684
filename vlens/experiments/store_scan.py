"""Reading one part file of a run directory: its lines, checked against the one record schema
every read uses (resume, `report`, `store check`, `store repair`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

_NUMBER = (int, float)
# One schema for every record, checked on every read (resume, `report`, `store check`): the
# fields every record has, and the types of the scoring fields whenever a record has them. A
# scoring field holds one value (a configuration's score) or a list of them (per layer, as the
# lens writes); protocol-specific fields not named here are kept as written.
RECORD_FIELDS: dict[str, tuple[type, ...]] = {
    "sample": (str,),
    "config": (str,),
    "skipped": (str,),
    "meta": (dict,),
    "pred": (str,),
    "answer": (str,),
    "correct": (bool,),
    "correct_vocab": (bool,),
    "p_correct": _NUMBER,
    "p_correct_vocab": _NUMBER,
    "logit_diff": _NUMBER,
    "kl": _NUMBER,
    "letter_logits": _NUMBER,
}
REQUIRED_FIELDS = ("sample", "config")
_SCALAR_ONLY = ("sample", "config", "skipped", "meta")


def _fits(value: object, types: tuple[type, ...]) -> bool:
    """`value` is one of `types` (bool is not a number here), None, or a (nested) list of such."""
    if value is None:
        return True
    if isinstance(value, list):
        return all(_fits(v, types) for v in value)
    return isinstance(value, types) and not (bool not in types and isinstance(value, bool))


def record_problem(record: object) -> str | None:
    """Why `record` does not fit the store's schema (`RECORD_FIELDS`), naming the field; None when it fits."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not a result record"
    for name in REQUIRED_FIELDS:
        if name not in record:
            return f"field {name!r} is missing"
    for name, types in RECORD_FIELDS.items():
        if name not in record:
            continue
        value = record[name]
        if name in _SCALAR_ONLY:
            ok = isinstance(value, types)
        else:
            ok = _fits(value, types)
        if not ok:
            allowed = " or ".join(t.__name__ for t in types)
            return f"field {name!r} is {value!r:.60} ({type(value).__name__}), expected {allowed}"
    return None


@dataclass
class _Scan:
    """What one part file holds: records (with line numbers), bad lines, a torn tail."""

    records: list[tuple[int, dict]] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)  # (1-based line, text) before the end
    torn: bytes = b""  # an incomplete last line (no newline, or not JSON)
    why: dict[int, str] = field(default_factory=dict)  # line → what is wrong with it


def _has_keys(record: object) -> bool:
    return isinstance(record, dict) and all(k in record for k in REQUIRED_FIELDS)


def _scan(path: Path) -> _Scan:
    scan = _Scan()
    if not path.exists():
        return scan
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    if tail:
        scan.torn = tail
    for i, raw in enumerate(lines, 1):
        try:
            record = json.loads(raw)
        except ValueError:
            if i == len(lines) and not tail:  # the last whole line: a write torn by a kill
                scan.torn = raw + b"\n"
            else:
                scan.bad.append((i, raw.decode("utf-8", "replace")))
                scan.why[i] = "not JSON"
            continue
        problem = record_problem(record)
        if problem is not None and i == len(lines) and not tail and not _has_keys(record):
            scan.torn = raw + b"\n"  # as before: a last line without sample/config is a torn write
            continue
        if problem is not None:  # a record with a field of the wrong type: bad wherever it is
            scan.bad.append((i, raw.decode("utf-8", "replace")))
            scan.why[i] = problem
            continue
        scan.records.append((i, record))
    return scan
