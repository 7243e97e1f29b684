"""`vlens run` / `vlens report` end to end on fabricated release layouts; kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fabricate
import pytest
import torch

from vlens import knockout as ko
from vlens.cli import main
from vlens.data import load_dataset
from vlens.experiments.runner import sample_inputs
from vlens.experiments.store import load_results
from vlens.inputs.prompts import letter_token_ids
from vlens.metrics import score


def _records(out: Path) -> dict:
    _, records = load_results(out)
    return {(r["sample"], r["config"]): r for r in records}


@pytest.mark.parametrize("layout", ["videomme", "mvbench", "egoschema"])
def test_run_all_protocols_and_report_match_direct_recomputation(layout, onevision_dir, model, tmp_path):
    root = getattr(fabricate, layout)(tmp_path / layout)
    out = tmp_path / "run"
    argv = [
        "run",
        "global1,global2,windows",
        "--model",
        str(onevision_dir),
        "--data",
        f"{layout}:{root}",
        "--frames",
        "4",
        "--out",
        str(out),
        "--quiet",
        "--window",
        "2",
    ]
    if layout == "mvbench":
        argv += ["--task", "action_sequence", "--allow-repeat"]
    assert main(argv) == 0
    for name in ("report.md", "global1.png", "global2.png", "windows.png"):
        assert (out / name).exists(), name
    records = _records(out)
    L = model.cfg.n_layers
    assert len({c for _, c in records}) == 2 + L + 4 + 3 * (L - 1)  # clean, prior, global1, global2, windows
    samples = list(load_dataset(f"{layout}:{root}", task="action_sequence" if layout == "mvbench" else None))
    scored = [s for s in samples if s.missing is None and s.answer is not None]
    sample = scored[0]
    inputs = sample_inputs(model, sample, 4, allow_repeat=True)
    letters = letter_token_ids(model.tokenizer, len(sample.options))
    for config, spec, sel in [
        ("global1/from2", ko.LV(), ko.from_layer(2)),
        ("windows/vt/2", ko.VT(), ko.window(2, 2)),
        ("global2/all", ko.LV() | ko.VT() | ko.VS(), ko.all_layers()),
    ]:
        with torch.no_grad():
            logits = model.run_with_hooks(inputs, fwd_hooks=spec.hooks(inputs, layers=sel))[0, -1]
        direct = score(logits, letters, sample.answer)
        stored = records[(sample.id, config)]
        assert stored["pred"] == direct["pred"]
        assert stored["logit_diff"] == pytest.approx(direct["logit_diff"], abs=1e-4)
    report = (out / "report.md").read_text()
    assert "| global2/lv |" in report
    if layout == "videomme":
        fabricate.videomme(tmp_path / "vm2", n=3, missing=1)
        out2 = tmp_path / "run2"
        assert (
            main(
                [
                    "run",
                    "global2",
                    "--model",
                    str(onevision_dir),
                    "--data",
                    f"videomme:{tmp_path / 'vm2'}",
                    "--frames",
                    "4",
                    "--out",
                    str(out2),
                    "--quiet",
                ]
            )
            == 0
        )
        skipped = [r for r in _records(out2).values() if "skipped" in r]
        assert skipped and "vid001.mp4" in skipped[0]["skipped"]
        assert "## Skipped samples" in (out2 / "report.md").read_text()


def test_bad_cli_input(onevision_dir, tmp_path, capsys):
    base = ["--model", str(onevision_dir), "--data", "synthetic:0,n=2", "--frames", "8", "--quiet"]
    assert main(["run", "global3", *base, "--out", str(tmp_path / "a")]) == 2
    assert "unknown protocol" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "global1", *base, "--out", str(tmp_path / "b"), "--shard", "4/4"])
    assert "out of range" in capsys.readouterr().err
    assert main(["run", "global2", *base, "--out", str(tmp_path / "c")]) == 0
    assert main(["run", "global2", *base[:-2], "4", "--quiet", "--out", str(tmp_path / "c")]) == 2
    assert "frames: 8 there, 4 now" in capsys.readouterr().err
    assert (
        main(
            [
                "run",
                "global2",
                "--model",
                str(onevision_dir),
                "--data",
                f"egoschema:{tmp_path}",
                "--out",
                str(tmp_path / "d"),
            ]
        )
        == 2
    )
    assert "questions.json" in capsys.readouterr().err


def test_killed_run_resumes_to_the_same_store(onevision_dir, tmp_path):
    args = [
        "run",
        "global1,global2",
        "--model",
        str(onevision_dir),
        "--data",
        "synthetic:0,n=30",
        "--frames",
        "8",
        "--engine",
        "naive",
        "--quiet",
        "--no-report",
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vlens.cli", *args, "--out", str(killed)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results = killed / "results.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not results.exists() or results.stat().st_size < 2000):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(_records(killed))
    assert 0 < partial < 30 * 10, "the kill should land mid-run"
    assert main([*args, "--out", str(killed)]) == 0  # resume
    full = tmp_path / "full"
    assert main([*args, "--out", str(full)]) == 0
    a, b = _records(killed), _records(full)
    assert a.keys() == b.keys() and len(a) == 30 * 10  # clean, prior, 4 global1, 4 global2
    lines = results.read_text().splitlines()
    assert len(lines) == len({(json.loads(l)["sample"], json.loads(l)["config"]) for l in lines}), "duplicate keys"
    for key in a:
        assert a[key]["pred"] == b[key]["pred"]
        if key[1] != "prior":  # the no-video baseline has no logits
            assert a[key]["letter_logits"] == pytest.approx(b[key]["letter_logits"], abs=1e-5)


def test_shards_merge(onevision_dir, tmp_path):
    base = [
        "run",
        "global2",
        "--model",
        str(onevision_dir),
        "--data",
        "synthetic:0,n=6",
        "--frames",
        "8",
        "--quiet",
        "--out",
        str(tmp_path / "s"),
    ]
    assert main([*base, "--shard", "0/2"]) == 0
    assert main([*base, "--shard", "1/2"]) == 0
    assert len({s for s, _ in _records(tmp_path / "s")}) == 6


def test_help_starts_without_loading_torch():
    """`vlens --help` and `vlens run --help` answer without importing torch/transformers (the
    package's names are imported on first use), so they take well under 2 s."""
    import subprocess
    import sys

    for args in (["--help"], ["run", "--help"], ["report", "--help"]):
        code = (
            f"import sys\nfrom vlens.cli import main\ntry:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, sorted(sys.modules)[:5]\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert "usage: vlens" in done.stdout
