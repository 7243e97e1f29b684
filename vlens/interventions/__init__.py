"""What a study does to the model and reads from it, per call: knockouts, patching, the logit lens,
attribution, the sweep engine and efficient inference.

| room | what it holds |
|---|---|
| `knockout` | knockout specs (`LV`, `VT`, `VS`, `Edges`, `Custom`, `|`) and their hooks (`from vlens import knockout as ko`) |
| `scaling` | a spec's edges weighted by α instead of removed (`spec.hooks(..., alpha=, renormalise=)`) |
| `dose_response` | a metric over a grid of α for a spec, layers and heads |
| `layer_selection` | `ko.all_layers()`, `ko.from_layer(i)`, `ko.window(x, k)`, `ko.layers([...])` |
| `flow` | map-the-flow's pathways as named `ko.Edges` specs, its effective pathway, attention flow |
| `sweep` | the sweep engine: many knockout configurations of one sample in one batched pass |
| `patching` | activation patching between a clean and a corrupted video question |
| `lens` | the logit lens and attention mass from the question to each frame |
| `attribution` | every knockout in every layer estimated from one backward |
| `attribution_validation` | the top estimates re-run exactly; rank agreement |
| `attribution_patching` | every activation patch estimated from one backward |
| `efficient` | visual early exit + temporal pruning (the study's efficiency application) |
| `flops` | FLOPs by formula: clean vs efficient inference, sweeps |
"""
