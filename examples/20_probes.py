"""Linear probes at video positions: what each layer of the organism knows, where.

python examples/20_probes.py [N_SAMPLES] [OUT_DIR]

Caches the residual stream after every block at the video patches and the last position over
held-out synthetic clips (`vlens cache-activations`, run here through vlens.cli.main), then fits
linear probes per layer (vlens.features.probes): the answer, the question kind and the motion at
the last position, the object's colour and motion from a clip's video positions (their mean), and
the frame index from each frame's patches (their mean); 4-fold cross-validated by clip. Prints the held-out accuracies with 95%
bootstrap intervals and writes probes.png (accuracy against layer). Rerunning resumes the cache.
"""

import sys
import tempfile
import time
from pathlib import Path

from vlens.cli import main
from vlens.features.probes import probe_store, results_table
from vlens.figures.probes import plot_probes
from vlens.organism import checkpoint_dir

n = int(sys.argv[1]) if len(sys.argv) > 1 else 180
out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp(prefix="vlens-probes-"))
store = out / "acts"

t0 = time.perf_counter()
argv = ["cache-activations", "--model", str(checkpoint_dir()), "--data", f"synthetic:1,n={n}", "--frames", "8"]
argv += ["--hooks", "blocks.*.hook_resid_post", "--positions", "video,last", "--out", str(store), "--quiet"]
print("vlens " + " ".join(f"'{a}'" if "*" in a else a for a in argv))
if main(argv) != 0:
    sys.exit(1)
t1 = time.perf_counter()

results = probe_store(store, ["answer", "kind", "direction"], groups="last")
results += probe_store(store, ["color", "direction"], groups="video", pool="sample")
results += probe_store(store, "frame", groups="video", pool="frame")
t2 = time.perf_counter()

print(f"\norganism, {n} held-out clips (seed 1); each clip scored by a probe fitted without it (4 folds)\n")
print(results_table(results))
figure = plot_probes(results, out / "probes.png", title=f"Linear probes on the organism ({n} clips, seed 1)")
print(f"\ncache {t1 - t0:.0f} s, probes {t2 - t1:.0f} s; figure: {figure}")
