"""Random-edge controls: is a knockout's effect more than removing as many arbitrary edges?

python examples/17_random_edge_controls.py [N_SAMPLES]

On the shipped organism: accuracy clean, under a knockout in all layers, and under its
random-edge control (the same number of edges removed in every query row, drawn with a seed;
vlens.interventions.controls), over several seeds. The knockout's effect minus its control's is
what the knockout itself explains. `vlens run global2 ... --controls 3` does the same for every
configuration of a study, with a paired bootstrap interval (docs/knockouts.md, Controls).
"""

import statistics
import sys

from vlens import knockout as ko
from vlens.interventions.controls import RandomEdges
from vlens.organism.evaluate import evaluate

n = int(sys.argv[1]) if len(sys.argv) > 1 else 48
clean = evaluate(n=n)["all"]
print(f"organism, {n} held-out clips: clean accuracy {clean:.1%}")
for spec in (ko.LV(), ko.VT()):
    knocked = evaluate(n=n, fwd_hooks=lambda inputs, spec=spec: spec.hooks(inputs))["all"]
    controls = [
        evaluate(n=n, fwd_hooks=lambda inputs, spec=spec, s=s: RandomEdges(spec, seed=s).hooks(inputs))["all"]
        for s in range(3)
    ]
    effect, baseline = knocked - clean, statistics.mean(controls) - clean
    print(
        f"{spec!s:>5} in all layers: {knocked:.1%} ({effect:+.1%}); random-edge control "
        f"{statistics.mean(controls):.1%} ({baseline:+.1%}, seeds 0-2: {', '.join(f'{c:.1%}' for c in controls)}); "
        f"effect beyond the control {effect - baseline:+.1%}"
    )
