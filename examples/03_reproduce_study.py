"""Reproduce the study's three protocols on a dataset, from Python (the same as `vlens run`).

    python examples/03_reproduce_study.py [CHECKPOINT_DIR] [DATA_SPEC]

Defaults: the shipped model organism if present (else a tiny random checkpoint) and 60 synthetic
clips. With a real checkpoint: DATA_SPEC like videomme:/data/Video-MME.
"""

import sys
import tempfile
from pathlib import Path

from vlens import HookedVideoLLM
from vlens.data import load_dataset
from vlens.experiments import configs_for, run_study
from vlens.plot import write_report
from vlens.store import ResultStore

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

model = HookedVideoLLM.from_pretrained(ckpt)
samples = load_dataset(data)
configs = [c for p in ("global1", "global2", "windows") for c in configs_for(p, model.cfg.n_layers)]
out = Path(tempfile.mkdtemp(prefix="vlens-study-"))
settings = {"model": str(ckpt), "data": data, "frames": 8, "n_layers": model.cfg.n_layers,
            "protocols": ["global1", "global2", "windows"], "dtype": "float32"}
store = ResultStore(out, settings)
print(run_study(model, samples, configs, store, n_frames=8))
print(write_report(out).read_text())
