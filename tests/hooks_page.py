"""Reads docs/hooks.md's tables: the documented hook names, expanded for a model's depth."""

from __future__ import annotations

import re
from pathlib import Path

PAGE = Path(__file__).resolve().parent.parent / "docs" / "hooks.md"
DENSE_MLP = ("mlp.hook_pre", "mlp.hook_pre_linear", "mlp.hook_post")


def documented_hooks(n_layers: int) -> tuple[set[str], set[str]]:
    """(hooks every model has, family-specific hooks) as the page lists them."""
    general: set[str] = set()
    specific: set[str] = set()
    target = general
    for line in PAGE.read_text().splitlines():
        if line.startswith("## Family-specific"):
            target = specific
        if line.startswith("## Vision tower"):
            target = set()  # vision names: checked by documented_vision_hooks
        m = re.match(r"\| `([^`]+)` \| `\[", line)
        if not m:
            continue
        name = m.group(1)
        names = {name.replace("{l}", str(l)) for l in range(n_layers)} if "{l}" in name else {name}
        target |= names
    return general, specific


def documented_vision_hooks() -> list[re.Pattern]:
    """The vision tower section's names as patterns ({l}, {i}: any index)."""
    text = PAGE.read_text().split("## Vision tower", 1)[1].split("\n## ", 1)[0]
    names = re.findall(r"^\| `(vision\.[^`]+)` \| `\[", text, flags=re.M)
    return [re.compile(re.escape(n).replace(r"\{l\}", r"\d+").replace(r"\{i\}", r"\d+") + "$") for n in names]


def assert_hooks_documented(model) -> None:
    general, specific = documented_hooks(model.cfg.n_layers)
    actual = {n for n in model.hook_dict if not n.startswith("vision.")}
    vision = [n for n in model.hook_dict if n.startswith("vision.")]
    patterns = documented_vision_hooks()
    undocumented = [n for n in vision if not any(p.match(n) for p in patterns)]
    assert not undocumented, f"vision hooks missing from docs/hooks.md: {undocumented[:8]}"
    assert actual - general - specific == set(), (
        f"hooks missing from docs/hooks.md: {sorted(actual - general - specific)[:8]}"
    )
    # every model has the general hooks; a sparse-MoE block replaces the dense MLP's three
    sparse = {l for l, block in enumerate(model.blocks) if not hasattr(block.mlp, "hook_pre")}
    required = {n for n in general if not any(n == f"blocks.{l}.{h}" for l in sparse for h in DENSE_MLP)}
    assert required - actual == set(), f"docs/hooks.md lists hooks the model lacks: {sorted(required - actual)[:8]}"
