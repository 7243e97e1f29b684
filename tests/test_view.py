"""The attention viewer's data (against the cached patterns), its page, `vlens view DIR`, and the
report's baselines and figure formats. The page in a real browser: tests/test_view_browser.py."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
from conftest import frames

from vlens import knockout as ko
from vlens.viewer.maps import ViewError, attention_maps
from vlens.viewer.view import main, view_attention


@pytest.fixture(scope="module")
def inputs(model):
    return model.to_inputs(frames(4, seed=3), "What is moving in the clip? Answer with a letter.", n_frames=4)


def _page_data(path) -> dict:
    html = path.read_text()
    m = re.search(r'<script type="application/json" id="vlens-data">(.*?)</script>', html, re.S)
    return json.loads(m.group(1))


def test_maps_equal_the_cached_pattern(model, inputs):
    maps = attention_maps(model, inputs)
    _, cache = model.run_with_cache(inputs, names_filter=lambda n: n.endswith("hook_pattern"))
    layout = inputs.layout
    n, H = len(layout.segment), model.cfg.n_heads
    queries = {
        "answer": [n - 1],
        "question": [i for i in layout.positions("text").tolist() if layout.last_vision < i < n - 1],
    }
    assert maps.queries == ("answer", "question") and maps.layers == list(range(model.cfg.n_layers))
    for qi, q in enumerate(maps.queries):
        for layer in maps.layers:
            p = cache[f"blocks.{layer}.attn.hook_pattern"][0][:, queries[q]].mean(1)  # [head, key]
            for pos in layout.positions("video").tolist():
                f, r, c = (int(t[pos]) for t in (layout.frame, layout.row, layout.col))
                if r >= 0:
                    np.testing.assert_allclose(maps.maps[qi, layer, :H, f, r, c], p[:, pos].numpy(), atol=1e-6)
            for f in range(layout.n_frames):
                expect = p[:, layout.frame_positions(f)].sum(-1)
                np.testing.assert_allclose(maps.mass[qi, layer, :H, f], expect.numpy(), atol=1e-5)
            np.testing.assert_allclose(maps.maps[qi, layer, H], maps.maps[qi, layer, :H].mean(0), atol=1e-6)


def test_maps_under_a_knockout_show_no_attention_to_video(model, inputs):
    maps = attention_maps(model, inputs, layers=[1, 2], fwd_hooks=ko.LV().hooks(inputs, layers=ko.all_layers()))
    assert maps.maps.shape[:3] == (2, 2, model.cfg.n_heads + 1)
    assert np.abs(maps.maps).max() == 0 and np.abs(maps.mass).max() == 0  # LV-K removes every text→vision edge


def test_page_is_self_contained(model, inputs, tmp_path):
    hooks = {"LV-K all layers": ko.LV().hooks(inputs, layers=ko.all_layers())}
    path = view_attention(model, inputs, path=tmp_path / "v.html", knockouts=hooks, layers=[0, 3])
    html = path.read_text()
    assert not re.search(r"(src|href)=[\"'](https?:)?//", html) and "http://" not in html and "https://" not in html
    data = _page_data(path)
    layout = inputs.layout
    R, C = data["grid"]
    assert len(data["frames"]) == layout.n_frames and all(
        f["src"].startswith("data:image/png;base64,") for f in data["frames"]
    )
    q8 = base64.b64decode(data["maps"])
    assert len(q8) == len(data["queries"]) * 2 * (model.cfg.n_heads + 1) * layout.n_frames * R * C
    assert max(q8) == 255  # each (query, layer, head) map is scaled to its own maximum
    rows = data["knockouts"]["rows"]
    assert [r["cells"][0] for r in rows] == ["clean", "LV-K all layers"] and float(rows[1]["cells"][3]) > 0


def test_bad_requests_say_what_to_pass(model, inputs, tmp_path):
    with pytest.raises(ViewError, match="row=1 is out of range"):
        attention_maps(model, inputs, row=1)
    with pytest.raises(ViewError, match="not layers of this 4-layer model"):
        attention_maps(model, inputs, layers=[4])
    with pytest.raises(ViewError, match="frames must be"):
        view_attention(model, inputs, path=tmp_path / "x.html", frames=np.zeros((2, 8, 8, 3), np.uint8))


def _fake_run(tmp_path, onevision_dir):
    """A run directory as `vlens run` writes it (settings + records), without running the sweep."""
    from vlens.experiments.store import ResultStore

    settings = {
        "model": str(onevision_dir),
        "n_layers": 4,
        "data": "synthetic:1,n=2,frames=4",
        "task": None,
        "filters": {},
        "protocols": ["global2", "patching"],
        "window": 4,
        "frames": 4,
        "allow_repeat": False,
        "dtype": "float32",
        "prompt_format": "mc-v1",
        "vlens_version": "test",
    }
    store = ResultStore(tmp_path / "run", settings)
    recs = []
    for i, correct in enumerate([True, False]):
        base = {"sample": f"synthetic/1/{i}", "meta": {"kind": "color"}}
        recs += [
            {
                **base,
                "config": "clean",
                "correct": correct,
                "letter_logits": [1.0, 0.0, 0.0],
                "p_correct": 0.6,
                "logit_diff": 1.0,
            },
            {**base, "config": "prior", "correct": False},
            {
                **base,
                "config": "global2/lv",
                "correct": False,
                "letter_logits": [0.0, 0.0, 0.0],
                "p_correct": 0.3,
                "logit_diff": -0.1,
                "kl": 0.2,
                "layers": [0, 1, 2, 3],
            },
            {
                **base,
                "config": "patching/resid_pre/video",
                "groups": ["video", "final"],
                "layers": [0, 1, 2, 3],
                "raw": [[1.0, 0.0], [0.5, 0.2], [0.0, 0.6], [0.0, 1.0]],
                "clean_diff": 1.0,
                "corrupted_diff": 0.0,
            },
        ]
    store.append(recs)
    return tmp_path / "run"


def test_vlens_view_on_a_run_directory(onevision_dir, tmp_path, capsys):
    run = _fake_run(tmp_path, onevision_dir)
    assert main([str(run), "--layers", "0,2"]) == 0
    data = _page_data(run / "view.html")
    assert data["layers"] == [0, 2] and "synthetic/1/0" in data["title"]
    names = [r["cells"][0] for r in data["knockouts"]["rows"]]
    assert names == ["clean", "prior", "global2/lv"] and "Chance" in data["knockouts"]["note"]
    assert data["patching"][0]["effect"][3] == [0.0, 1.0]
    assert main([str(tmp_path / "nothing")]) == 2 and "not a vlens run directory" in capsys.readouterr().err
    assert main([str(run), "--sample", "synthetic/9/9"]) == 2 and "is not in" in capsys.readouterr().err


def test_report_baselines_and_formats(onevision_dir, tmp_path):
    from vlens.figures.report import write_report

    run = _fake_run(tmp_path, onevision_dir)
    text = write_report(run).read_text()
    assert text.startswith("# vlens report: global2, patching on synthetic")  # no Python list in the title
    assert "- chance (a uniform guess over each question's options): 33.3%" in text
    assert "| chance (uniform guess) | | | 33.3% | | 0.667 |" in text  # chance / clean accuracy (50%)
    prior = next(line for line in text.splitlines() if line.startswith("| prior"))
    assert "nan" not in prior and prior.endswith("| – | – | – |")
    assert "## Patching on one layer axis" in text and "logit lens" not in text  # headings only for what ran
    svg = write_report(run, format="svg").read_text()
    assert "![global2](global2.svg)" in svg and (run / "global2.svg").read_text().lstrip().startswith("<?xml")
    assert "[global2.pdf](global2.pdf)" in write_report(run, format="pdf").read_text()
    assert (run / "global2.pdf").read_bytes()[:5] == b"%PDF-"
    with pytest.raises(ValueError, match="format must be one of png, pdf, svg"):
        write_report(run, format="jpg")


def test_chance_from_option_counts():
    from vlens.figures.style import config_label
    from vlens.figures.summary import chance_accuracy

    recs = [
        {"config": "clean", "letter_logits": [0] * 4},
        {"config": "clean", "letter_logits": [0] * 2},
        {"config": "global2/lv", "letter_logits": [0] * 5},
    ]
    assert chance_accuracy(recs) == pytest.approx((1 / 4 + 1 / 2) / 2)
    assert chance_accuracy([]) is None
    assert (
        config_label("windows/vt/7", [4, 5, 6, 7]) == "windows/vt/4–7"
        and config_label("global2/lv", [0, 1]) == "global2/lv"
    )
