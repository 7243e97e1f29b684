"""The study's three knockout protocols (Gou et al.) as lists of sweep configurations.

| protocol | configurations |
|---|---|
| `global1` | LV-K on layers ≥ i, for every i (x = fraction of layers knocked) |
| `global2` | LV-K, VT-K, VS-K and all three, each in all layers |
| `windows` | each of LV/VT/VS on every window of k consecutive layers (x = window end layer) |

One clean pass per sample is shared by all configurations of that sample; the sweep engine
(vlens.interventions.sweep) runs them (`engine="naive"` keeps the reference loop: one forward each).

`with_controls(configs, n, seed)` adds, for every configuration, its random-edge controls
(`vlens run --controls N --seed S`): `RandomEdges(spec, seed=s)` in the same layers for s = S … S+N−1,
named `control/<configuration>/seed<s>` (`control_name`, read back by `parse_control`), so the
analysis pairs each control with its configuration.
"""

from __future__ import annotations

from collections.abc import Sequence

from vlens.interventions import knockout as ko
from vlens.interventions.controls import RandomEdges
from vlens.interventions.sweep import SweepConfig

PROTOCOLS = ("global1", "global2", "windows")
CONTROL_PREFIX = "control/"


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


def control_name(name: str, seed: int) -> str:
    """The record name of configuration `name`'s random-edge control with `seed`."""
    return f"{CONTROL_PREFIX}{name}/seed{seed}"


def parse_control(name: str) -> tuple[str, int] | None:
    """`(configuration, seed)` of a control's record name (`control_name`), None for any other name."""
    if not name.startswith(CONTROL_PREFIX):
        return None
    base, sep, seed = name[len(CONTROL_PREFIX) :].rpartition("/seed")
    return (base, int(seed)) if sep and base and seed.isdigit() else None


def control_seeds(n: int, seed: int = 0) -> list[int]:
    """The seeds of `n` controls starting at `seed`: seed, seed+1, …, seed+n−1."""
    return list(range(seed, seed + n))


def with_controls(configs: Sequence[SweepConfig], n: int, seed: int = 0) -> list[SweepConfig]:
    """`configs` followed by `n` random-edge controls of each (`RandomEdges(spec, seed=s)` in the
    same layers: as many edges per query row as the spec removes, in the same rows and layers).

    Args:
        configs: the knockout configurations to control.
        n: controls per configuration (0: `configs` unchanged).
        seed: the first control's seed; the others take the next integers.
    """
    controls = [
        SweepConfig(control_name(c.name, s), RandomEdges(c.spec, seed=s), c.layers)
        for c in configs
        for s in control_seeds(n, seed)
    ]
    return [*configs, *controls]
