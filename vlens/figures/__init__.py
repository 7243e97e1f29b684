"""Figures like the study's, in one style, and the markdown report of a run directory.

| room | what it holds |
|---|---|
| `style` | colours, labels, the matplotlib style, error bars, saving in every format |
| `summary` | a run directory read for the figures (settings, records, per-configuration summary) |
| `study` | global setting 1, global setting 2, the windows |
| `layers` | patching, the logit lens, and all of them on one layer axis |
| `flow` | the figure of `vlens run flow` |
| `report` | `write_report(run_dir)`: the markdown report with its tables and figures |
"""
