"""The tutorials (docs/tutorials/*.py, jupytext py:percent): paired notebooks, pages in sync with
the scripts (fast), and every tutorial executed on the organism (slow; .ci/docs.sh executes them
all by rendering the pages)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
pytest.importorskip("jupytext", reason="the tutorials need jupytext: pip install -e '.[docs]'")


def _renderer():
    spec = importlib.util.spec_from_file_location("render_tutorials", DOCS / "render_tutorials.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


render = _renderer()
SCRIPTS = render.tutorials()


def test_four_tutorials_in_the_docs_nav():
    names = [p.stem for p in SCRIPTS]
    assert names == ["01_getting_started", "02_the_study", "03_patching_and_lens", "04_efficient_inference"]
    nav = (DOCS.parent / "mkdocs.yml").read_text()
    assert all(f"tutorials/{n}.md" in nav for n in names)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_paired_and_page_in_sync(script):
    import jupytext

    cells = render.cells(script)
    code = [src for kind, src in cells if kind == "code"]
    assert len(code) >= 3 and cells[0][0] == "markdown" and cells[0][1].startswith("# ")
    for i, src in enumerate(code):
        compile(src, f"{script.name}[code cell {i}]", "exec")
    nb = jupytext.reads(jupytext.writes(jupytext.read(script), fmt="ipynb"), fmt="ipynb")  # the pairing round-trips
    assert [c.source for c in nb.cells if c.source.strip()] == [src for _, src in cells]
    page = (script.parent / f"{script.stem}.md").read_text()
    missing = [src.splitlines()[0] for _, src in cells if src not in page]
    assert not missing, f"docs/tutorials/{script.stem}.md is stale (run python docs/render_tutorials.py): {missing}"
    assert "```text" in page  # rendered with outputs


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_tutorial_executes(script, tmp_path):
    run = render.execute(script, workdir=tmp_path)
    printed = "".join(r["text"] for r in run)
    assert printed.strip() and all(r["kind"] in ("code", "markdown") for r in run)
    if script.stem == "03_patching_and_lens":
        assert (tmp_path / "organism_view.html").stat().st_size > 10_000
