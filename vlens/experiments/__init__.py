"""The study machinery: a frozen `RunConfig` in, a typed `RunResult` out, results in a resumable store.

| room | what it holds |
|---|---|
| `run` | `RunConfig`, `run`, `dry_run`: what `vlens run` and `vlens demo` call |
| `registry` | the protocols by name, `register_protocol` |
| `protocols` | what the per-sample loop computes for one sample (knockouts, prior, patching, lens, ...) |
| `study` | the study's three knockout protocols as configurations (`configs_for`) |
| `flow_protocol` | `vlens run flow`: map-the-flow's protocols |
| `runner` | the one per-sample loop every protocol runs in |
| `store` | the append-only, resumable JSONL result store |
| `analysis` | store records → typed summaries (the layer the figures and report read) |
| `distributed` | torchrun / accelerate: shards and devices per process |
"""
