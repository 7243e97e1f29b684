"""The model organism: training lowers the loss, the shipped checkpoint reaches its documented
held-out accuracy, knockouts of language→video take the video-dependent kinds to chance, and
`vlens demo` runs end to end."""

from __future__ import annotations

import json

import pytest

from vlens import knockout as ko
from vlens.organism import checkpoint_dir
from vlens.organism.evaluate import evaluate

# docs/organism.md: held-out accuracy of the shipped checkpoint, seed 1, n = 240 (tolerance: the
# numbers are deterministic on CPU fp32; 1 point covers BLAS differences between machines)
DOCUMENTED = json.loads((checkpoint_dir() / "heldout_accuracy.json").read_text())


def test_short_training_run_lowers_the_loss(tmp_path):
    from vlens.organism.train import train

    log = train(tmp_path / "org", steps=24, batch_size=8, warmup=4, log_every=8)
    assert log["loss"][-1] < log["loss"][0] - 0.2, log["loss"]
    assert (tmp_path / "org" / "train_log.json").exists() and (tmp_path / "org" / "config.json").exists()


def test_shipped_checkpoint_reaches_its_documented_accuracy():
    acc = evaluate(n=240)
    for kind, documented in DOCUMENTED.items():
        assert acc[kind] == pytest.approx(documented, abs=0.01), kind
    assert acc["all"] > 0.9  # far above chance (≈ 29% for this mix of 2- and 4-option questions)
    for kind, a in acc.items():  # and every kind well above its own chance
        if kind != "all":
            assert a >= (0.5 if kind == "color_change" else 0.25) + 0.4, (kind, a)


def test_lv_knockout_in_all_layers_takes_every_kind_to_chance():
    acc = evaluate(n=120, fwd_hooks=lambda inputs: ko.LV().hooks(inputs))
    for kind, a in acc.items():
        chance = 0.5 if kind == "color_change" else 0.25
        if kind != "all":
            assert a <= chance + 0.2, (kind, a)  # without the video it is guessing (n = 20 per kind)


def test_demo_end_to_end_reduced(tmp_path, capsys):
    from vlens.demo import main

    assert main(tmp_path / "demo", n=6, protocols="global2,windows,lens") == 0
    out = capsys.readouterr().out
    assert "accuracy by question kind" in out and "no-video prior" in out
    for name in ("report.md", "global2.png", "windows.png", "lens.png", "layers.png"):
        assert (tmp_path / "demo" / name).exists(), name
