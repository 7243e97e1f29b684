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


# --- Layers (docs/architecture.md): a module imports only from its own layer or those below it. ---

LAYERS: dict[str, int] = {
    "inputs": 0,
    "arguments": 0,
    "config": 0,
    "components": 1,
    "metrics": 1,
    "data": 1,
    "families": 2,
    "model": 3,
    "interventions": 4,
    "features": 4,  # activations at video positions: reads the model and inputs, below the study
    "experiments": 5,
    "organism": 5,
    "testing": 5,
    "figures": 6,
    "viewer": 7,
    "run": 8,
    "check": 8,
    "cli": 9,
    "demo": 9,
    "__main__": 9,
}
VLENS = ROOT / "vlens"


def _room(module: str) -> str:
    """`vlens.model.loading` -> `model`; `vlens` itself -> `` (the lazy top-level namespace)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _library_files() -> list[Path]:
    return sorted(p for p in VLENS.rglob("*.py") if "checkpoint" not in p.relative_to(VLENS).parts)


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    import ast

    tree = ast.parse(path.read_text(), filename=str(path))
    here = _module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # `from vlens import model` names a room too.
            if target == "vlens":
                found += [(node.lineno, f"vlens.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name == "vlens" or name.startswith("vlens.")]


def test_every_room_has_a_layer():
    rooms = {_room(_module_name(p)) for p in _library_files()} - {""}
    assert rooms <= set(LAYERS), f"rooms without a layer in docs/architecture.md: {sorted(rooms - set(LAYERS))}"


def test_no_import_runs_from_a_lower_layer_up_to_a_higher_one():
    upward = []
    for path in _library_files():
        room = _room(_module_name(path))
        if not room:  # vlens/__init__.py: the lazy namespace over every layer
            continue
        for line, target in _imported_modules(path):
            target_room = _room(target)
            if target_room and target_room in LAYERS and LAYERS[target_room] > LAYERS[room]:
                upward.append(
                    f"{path.relative_to(ROOT)}:{line} ({room}, layer {LAYERS[room]}) imports {target} "
                    f"({target_room}, layer {LAYERS[target_room]})"
                )
    assert not upward, "imports that run back up the layers:\n" + "\n".join(upward)


# --- Size: a module over ~400 lines holds one idea, or it is split (issue 30, item 2). ---

MAX_LINES = 400
LONG_MODULES_ALLOWED = {
    "vlens/cli.py": "the argparse surface of every subcommand: one parser, each command a few lines",
    "vlens/run.py": "the run API: RunConfig, run and dry_run share the config's validation and the run key",
    "vlens/model/hooked_video_llm.py": "the forward and its hooks() context: one idea; loading, inputs "
    "and generation already live in their own mixins",
    "vlens/model/vision_hooks.py": "hook points on HF's vision tower: finding the tower and wrapping it are one mechanism",
    "vlens/experiments/analysis.py": "records → typed summaries: one dataclass and one aggregate per protocol",
    "vlens/interventions/knockout.py": "the knockout specs and the one hook that applies them (EdgeRemoval)",
    "vlens/families/llava_qwen_release.py": "one release format: its config, weight table, pooling and build",
    "vlens/families/internvideo2_5.py": "one release format: its token merging, weight table and build",
    "vlens/features/store.py": "the activation store's on-disk format: its writer and reader share the manifest, "
    "chunk and index layout (to split into writer/reader when SAEs land beside it)",
}


def test_no_module_over_400_lines_unless_it_holds_one_idea():
    long = {str(p.relative_to(ROOT)): n for p in _library_files() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    unexplained = {path: n for path, n in long.items() if path not in LONG_MODULES_ALLOWED}
    assert not unexplained, (
        f"modules over {MAX_LINES} lines: {unexplained}; split them along their ideas "
        "(docs/architecture.md), or add them to LONG_MODULES_ALLOWED with the reason they are one idea"
    )


# --- Docstrings: every public function, class and method says what it is. ---

# Public definitions that had no docstring when this guard was written (issue 30). New code may not
# add to this list; remove an entry when you document it.
UNDOCUMENTED_BEFORE_THE_GUARD = frozenset((ROOT / "tests" / "house_undocumented.txt").read_text().split())


def _public_definitions(path: Path):
    import ast

    def visit(body, prefix):
        for node in body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if node.name.startswith("_"):
                continue
            decorators = {d.attr if isinstance(d, ast.Attribute) else getattr(d, "id", "") for d in node.decorator_list}
            if decorators & {"overload", "setter", "deleter"}:
                continue
            yield f"{prefix}{node.name}", node
            if isinstance(node, ast.ClassDef):
                yield from visit(node.body, f"{prefix}{node.name}.")

    yield from visit(ast.parse(path.read_text()).body, "")


def _undocumented() -> set[str]:
    import ast

    out = set()
    for path in _library_files():
        rel = path.relative_to(ROOT)
        if any(part.startswith("_") and part not in ("__init__.py", "__main__.py") for part in rel.parts):
            continue
        out |= {f"{rel}::{name}" for name, node in _public_definitions(path) if ast.get_docstring(node) is None}
    return out


def test_every_public_definition_has_a_docstring():
    new = sorted(_undocumented() - UNDOCUMENTED_BEFORE_THE_GUARD)
    assert not new, "public definitions without a docstring (say what it is, its args, returns with shapes):\n" + (
        "\n".join(new)
    )


def test_the_top_level_all_is_the_lazy_namespace():
    import vlens

    # `__all__` is written out for type checkers; it must name exactly the lazily imported names
    assert sorted(vlens.__all__) == sorted(vlens._LAZY)
