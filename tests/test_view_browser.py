"""The viewer in a real headless browser (Debian's chromium driven by playwright): the page loads
with no console error and no network request, and the sliders change the overlay. It writes the
screenshot docs/img/viewer.png uses (copied there when VLENS_DOCS_IMG=1, as .ci/docs.sh does).

Skips, saying why, where playwright or a chromium binary is missing (`apt-get install chromium`,
`pip install -e ".[docs]"`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

DOCS_IMG = Path(__file__).resolve().parents[1] / "docs" / "img" / "viewer.png"


def _chromium() -> str | None:
    for name in (os.environ.get("VLENS_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed: pip install -e '.[docs]'"
    )
    exe = _chromium()
    if exe is None:
        pytest.skip("no chromium binary on PATH (apt-get install chromium, or set VLENS_CHROMIUM=/path/to/chrome)")
    with sync_api.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        except Exception as e:  # a binary that cannot start here (no sandbox support, missing libs)
            pytest.skip(f"chromium at {exe} does not start headless: {e}")
        yield b
        b.close()


@pytest.fixture(scope="module")
def page_file(tmp_path_factory):
    """The viewer on the model organism: one held-out clip, two knockouts, a patching heatmap."""
    import torch

    from vlens import HookedVideoLLM
    from vlens import knockout as ko
    from vlens.data import load_dataset
    from vlens.inputs.prompts import letter_token_ids, mc_question
    from vlens.interventions.patching import corrupt, patch_sweep
    from vlens.organism import checkpoint_dir
    from vlens.viewer.view import view_attention

    model = HookedVideoLLM.from_pretrained(checkpoint_dir())
    s, other = load_dataset("synthetic:1,n=2,frames=8")
    inputs = model.to_inputs(s.video, mc_question(s.question, s.options), n_frames=8, fps=s.fps)
    corrupted = corrupt(model, inputs, "video", other=model.to_inputs(other.video, "x", n_frames=8).videos[0])
    res = patch_sweep(model, inputs, corrupted, letter_token_ids(model.tokenizer, len(s.options)), s.answer)
    knockouts = {
        "LV-K all layers": ko.LV().hooks(inputs, layers=ko.all_layers()),
        "VT-K all layers": ko.VT().hooks(inputs, layers=ko.all_layers()),
    }
    with torch.no_grad():
        return view_attention(
            model,
            inputs,
            path=tmp_path_factory.mktemp("view") / "organism.html",
            knockouts=knockouts,
            patching={
                "patching/resid_pre/video": {"effect": res.effect, "layers": res.layers, "groups": res.groups, "n": 1}
            },
            title="vlens view · the model organism · one held-out clip",
        )


def test_viewer_in_chromium(browser, page_file, tmp_path):
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
    page.goto(page_file.as_uri())
    page.wait_for_function("window.vlensReady === true", timeout=20_000)

    def overlay() -> str:
        return page.evaluate(
            "document.getElementById('frame-0').toDataURL() + document.getElementById('frame-1').toDataURL()"
        )

    def move(slider: str, value: int) -> None:  # what dragging does: set the value, fire `input`
        page.evaluate(
            "([id, v]) => { const s = document.getElementById(id); s.value = v; "
            "s.dispatchEvent(new Event('input', {bubbles: true})); }",
            [slider, value],
        )

    first, state = overlay(), page.evaluate("document.body.dataset.state")
    assert state == "0/0/4"  # query answer, layer 0, mean over the organism's 4 heads
    move("layer", 6)
    assert page.evaluate("document.body.dataset.state") == "0/6/4" and overlay() != first
    assert page.inner_text("#layer-out").startswith("6 (blocks.6.attn.hook_pattern)")
    at_layer6 = overlay()
    move("head", 1)
    assert overlay() != at_layer6 and page.inner_text("#head-out") == "head 1"
    page.select_option("#query", "1")
    assert page.evaluate("document.body.dataset.state") == "1/6/1"
    assert page.locator("#knockouts tr").count() == 4  # header, clean, two knockouts
    assert page.locator("#patching table.heat tr").count() == 1 + 8  # header + one row per layer
    move("head", 4)
    move("layer", 2)
    page.select_option("#query", "0")
    shot = tmp_path / "viewer.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert errors == [] and requests == []
    if os.environ.get("VLENS_DOCS_IMG") == "1":
        shutil.copy(shot, DOCS_IMG)
    page.close()
