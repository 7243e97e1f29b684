"""Reads docs/hooks.md's table: the documented hook names, expanded for a model's depth."""

from __future__ import annotations

import re
from pathlib import Path

PAGE = Path(__file__).resolve().parent.parent / "docs" / "hooks.md"


def documented_hooks(n_layers: int) -> set[str]:
    names = set()
    for line in PAGE.read_text().splitlines():
        m = re.match(r"\| `([^`]+)` \| `\[", line)
        if not m:
            continue
        name = m.group(1)
        if "{l}" in name:
            names |= {name.replace("{l}", str(l)) for l in range(n_layers)}
        else:
            names.add(name)
    return names


def assert_hooks_documented(model) -> None:
    documented, actual = documented_hooks(model.cfg.n_layers), set(model.hook_dict)
    assert actual - documented == set(), f"hooks missing from docs/hooks.md: {sorted(actual - documented)[:8]}"
    assert documented - actual == set(), f"docs/hooks.md lists hooks the model lacks: {sorted(documented - actual)[:8]}"
