"""Reproduce the study's three protocols on a dataset, from Python (the same as `vlens run`).

    python examples/03_reproduce_study.py [CHECKPOINT_DIR] [DATA_SPEC]

Defaults: the shipped model organism if present (else a tiny random checkpoint) and 60 synthetic
clips. With a real checkpoint: DATA_SPEC like videomme:/data/Video-MME. examples/16_run_api.py
shows the run API in more detail (dry run, resume, the typed results).
"""

import sys
import tempfile

from vlens.run import RunConfig, run

if len(sys.argv) > 1:
    ckpt = sys.argv[1]
else:
    try:
        from vlens.organism import checkpoint_dir

        ckpt = checkpoint_dir()
    except FileNotFoundError:
        from vlens.testing import make_tiny_onevision

        ckpt = make_tiny_onevision(tempfile.mkdtemp() + "/tiny", n_layers=8)
data = sys.argv[2] if len(sys.argv) > 2 else "synthetic:1,n=60"

config = RunConfig(
    model=ckpt,
    data=data,
    out=tempfile.mkdtemp(prefix="vlens-study-"),
    protocols=("global1", "global2", "windows"),
    frames=8,
)
result = run(config)
print(result.to_pandas().round(3).to_string())
print(result.report.read_text())
