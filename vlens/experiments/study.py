"""The study's three knockout protocols (Gou et al.) as lists of sweep configurations.

| protocol | configurations |
|---|---|
| `global1` | LV-K on layers ≥ i, for every i (x = fraction of layers knocked) |
| `global2` | LV-K, VT-K, VS-K and all three, each in all layers |
| `windows` | each of LV/VT/VS on every window of k consecutive layers (x = window end layer) |

One clean pass per sample is shared by all configurations of that sample; the sweep engine
(vlens.interventions.sweep) runs them (`engine="naive"` keeps the reference loop: one forward each).
"""

from __future__ import annotations

from vlens.interventions import knockout as ko
from vlens.interventions.sweep import SweepConfig

PROTOCOLS = ("global1", "global2", "windows")


def configs_for(protocol: str, n_layers: int, *, window: int = 4) -> list[SweepConfig]:
    if protocol == "global1":
        return [SweepConfig(f"global1/from{i}", ko.LV(), ko.from_layer(i)) for i in range(n_layers)]
    if protocol == "global2":
        return [SweepConfig(f"global2/{n}", ko.from_name(n), ko.all_layers()) for n in ("lv", "vt", "vs", "all")]
    if protocol == "windows":
        if not 1 <= window <= n_layers:
            raise ValueError(f"window size {window} must be between 1 and the model's {n_layers} layers")
        return [
            SweepConfig(f"windows/{n}/{x}", ko.from_name(n), ko.window(x, window))
            for n in ("lv", "vt", "vs")
            for x in range(window - 1, n_layers)
        ]
    raise ValueError(f"unknown protocol {protocol!r}; protocols: {', '.join(PROTOCOLS)}")
