"""The study machinery that `vlens.run` drives: protocols, the per-sample loop, the resumable store, the analysis.

| room | what it holds |
|---|---|
| `registry` | the protocols by name, `register_protocol` |
| `protocols` | what the per-sample loop computes for one sample (knockouts, prior, patching, lens, ...) |
| `study` | the study's three knockout protocols as configurations (`configs_for`) |
| `flow_protocol` | `vlens run flow`: map-the-flow's protocols |
| `heads_protocol` | `vlens run heads`: heads ranked by attribution, the top K verified exactly |
| `heads_analysis` | `vlens run heads` records → layer × head summaries and agreement |
| `runner` | the one per-sample loop every protocol runs in |
| `store` | the append-only, resumable JSONL result store |
| `analysis` | store records → typed summaries (the layer the figures and report read) |
| `distributed` | torchrun / accelerate: shards and devices per process |
"""
