"""The house rules, checked: examples numbered once and listed in the README."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README_EXAMPLE_ROW = re.compile(r"^\| `examples/([^`]+\.py)` \|", re.MULTILINE)


def test_readme_examples_table_lists_exactly_the_files_in_examples():
    listed = README_EXAMPLE_ROW.findall((ROOT / "README.md").read_text())
    on_disk = sorted(p.name for p in (ROOT / "examples").glob("*.py"))
    assert len(listed) == len(set(listed)), f"README lists an example twice: {listed}"
    assert sorted(listed) == on_disk, (
        f"README's examples table ({sorted(listed)}) must list exactly examples/*.py ({on_disk}); "
        "add a row `| `examples/NN_name.py` | what it teaches |` for a new example"
    )


def test_each_example_number_is_used_once_and_names_say_what_they_teach():
    names = sorted(p.stem for p in (ROOT / "examples").glob("*.py"))
    numbers = [name.split("_", 1)[0] for name in names]
    assert all(re.fullmatch(r"\d{2}_[a-z0-9_]+", name) for name in names), names
    duplicated = sorted({n for n in numbers if numbers.count(n) > 1})
    assert not duplicated, f"example numbers used more than once: {duplicated} in {names}"
    assert [int(n) for n in numbers] == list(range(1, len(names) + 1)), f"numbers must run 01..NN: {names}"
