"""The run API from a notebook: a frozen RunConfig, the bill before paying it, run → RunResult.

    python examples/16_run_api.py [CHECKPOINT_DIR] [DATA_SPEC]

Defaults: the shipped model organism and 24 held-out synthetic clips (about a minute on a laptop
CPU). What `vlens run` does is exactly this: the CLI only builds the RunConfig.
"""

import dataclasses
import sys
import tempfile

from vlens.experiments.analysis import analyse
from vlens.run import RunConfig, dry_run, run

if len(sys.argv) > 1:
    ckpt = sys.argv[1]
else:
    from vlens.organism import checkpoint_dir

    ckpt = checkpoint_dir()
data = sys.argv[2] if len(sys.argv) > 2 else "synthetic:1,n=24,frames=8"
out = tempfile.mkdtemp(prefix="vlens-run-api-")

config = RunConfig(model=ckpt, data=data, out=out, protocols="global2,windows,lens", frames=8, progress=False)

# 1. The bill: forwards, engine FLOPs, and seconds measured on this machine (writes nothing).
print(dry_run(config).describe())

# 2. Half the run (as if interrupted), then all of it: the second call resumes from the store.
first = run(dataclasses.replace(config, limit=12, report=False))
print(f"first call: {first.counts.scored} scored")
result = run(config)
print(f"second call: {result.counts.scored} scored, {result.counts.already} already in the store")

# 3. Typed results: one row per configuration, every number of report.md.
table = result.to_pandas()
print(table[["n", "accuracy", "accuracy_lo", "accuracy_hi", "ratio"]].round(3).to_string())
lv = result.summary["global2/lv"]
print(
    f"LV-K in all layers: ratio {lv.ratio:.2f} (95% CI {lv.ratio_ci[0]:.2f}–{lv.ratio_ci[1]:.2f}) over {lv.n} samples"
)

# 4. Later, from the directory alone (any machine, any number of part files): the same analysis.
again = analyse(out)
assert again.to_pandas().equals(table)
print(f"lens: correct letter ranked first at the output for {float(again.lens.top1[-1]):.0%} of samples")
print(f"report: {result.report}")
