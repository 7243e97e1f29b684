"""The protocols `vlens run` knows, by name: the built-in ones and those added with
`register_protocol` (see vlens.experiments.protocols for what a protocol is).

This module sits above every protocol's own module (protocols.py, flow_protocol.py, heads_protocol.py), so it can import
them all; the protocols never import it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vlens.arguments import ArgumentError
from vlens.data import Sample
from vlens.experiments import flow_protocol as flow
from vlens.experiments import heads_protocol as heads
from vlens.experiments import open_protocol
from vlens.experiments.protocols import (
    AttributionProtocol,
    EfficientProtocol,
    KnockoutProtocol,
    LensProtocol,
    PatchingProtocol,
    PriorProtocol,
    Protocol,
)
from vlens.experiments.study import configs_for, with_controls

ProtocolFactory = Callable[..., Protocol]  # factory(config: RunConfig, model, dataset) -> Protocol

KNOCKOUT_PROTOCOLS = ("global1", "global2", "windows")
EXCLUSIVE = {"efficient", "attribution"}  # run on their own: they have their own settings and names


def _patching(config, model, dataset) -> Protocol:
    return PatchingProtocol(config.site, config.corruption, dataset)


def _lens(config, model, dataset) -> Protocol:
    return LensProtocol()


def _efficient(config, model, dataset) -> Protocol:
    from vlens.interventions.efficient import EfficientConfig

    scaled = EfficientConfig.scaled(model.cfg.n_layers)
    cfg = EfficientConfig(
        scaled.exit_layer if config.exit_layer is None else config.exit_layer,
        scaled.temporal_prune_layers if config.prune_layers is None else config.prune_layers,
    )
    return EfficientProtocol(cfg, model.cfg.n_layers)


def _attribution(config, model, dataset) -> Protocol:
    opts = dict(config.options.get("attribution", {}))
    configs = [c for p in KNOCKOUT_PROTOCOLS for c in configs_for(p, model.cfg.n_layers, window=config.window)]
    return AttributionProtocol(
        configs, model.cfg.n_layers, readout=opts.get("readout", "letters"), verify_top=int(opts.get("verify_top", 0))
    )


_REGISTRY: dict[str, ProtocolFactory] = {
    "patching": _patching,
    "lens": _lens,
    "efficient": _efficient,
    "attribution": _attribution,
    "flow": flow.factory,
    "heads": heads.factory,
    "open": open_protocol.factory,
}
# options checked when a RunConfig is built (before any model loads): protocol → check(options[protocol])
_OPTION_CHECKS: dict[str, Callable] = {
    "flow": flow.check_options,
    "heads": heads.check_options,
    "open": open_protocol.check_options,
}


def register_protocol(name: str, factory: ProtocolFactory, *, exclusive: bool = False) -> None:
    """Make `name` a protocol of `vlens run` / `RunConfig(protocols=...)`.

    Args:
        name: the protocol's name on the command line (no comma).
        factory: `factory(config, model, dataset) -> Protocol`; options in `config.options[name]`.
        exclusive: the protocol must run on its own (like `efficient`).

    Raises:
        ValueError: the name is taken or malformed.
    """
    if not name or "," in name or name in KNOCKOUT_PROTOCOLS or name in _REGISTRY:
        raise ValueError(f"protocol name {name!r} is empty, has a comma, or is taken ({', '.join(available())})")
    _REGISTRY[name] = factory
    if exclusive:
        EXCLUSIVE.add(name)


def available() -> tuple[str, ...]:
    """Every protocol name `run` accepts."""
    return (*KNOCKOUT_PROTOCOLS, *_REGISTRY)


def build_protocols(config, model, dataset: Sequence[Sample]) -> list[Protocol]:
    """The Protocol objects of `config.protocols`, in a fixed order (knockouts and the prior first).

    Raises:
        ValueError: an unknown protocol, or an exclusive protocol combined with others.
    """

    check_names(config.protocols)
    knockouts = [p for p in KNOCKOUT_PROTOCOLS if p in config.protocols]
    out: list[Protocol] = []
    if knockouts:
        configs = [c for p in knockouts for c in configs_for(p, model.cfg.n_layers, window=config.window)]
        configs = with_controls(configs, getattr(config, "controls", 0), getattr(config, "seed", 0))
        max_memory = None if config.max_memory_gib is None else int(config.max_memory_gib * 2**30)
        out += [
            KnockoutProtocol(configs, model.cfg.n_layers, engine=config.engine, max_memory=max_memory),
            PriorProtocol(dataset),
        ]
    out += [_REGISTRY[p](config, model, dataset) for p in config.protocols if p in _REGISTRY]
    return out


def check_options(protocols: Sequence[str], options) -> None:
    """Checks the options of the chosen protocols that can be checked without a model.

    Raises:
        ValueError / TypeError: a bad option value, named with the flag that sets it.
    """
    for p in protocols:
        if p in _OPTION_CHECKS and p in options:
            _OPTION_CHECKS[p](options[p])


def check_names(protocols: Sequence[str]) -> None:
    """Raises ArgumentError (a ValueError) for an unknown name, a duplicate, or an exclusive protocol with others."""
    unknown = [p for p in protocols if not isinstance(p, str) or p not in available()]
    if unknown:
        raise ArgumentError(f"unknown protocol(s) {unknown}; choose from {', '.join(available())}")
    if not protocols:
        raise ArgumentError(f"no protocol given; choose from {', '.join(available())}")
    if len(set(protocols)) != len(protocols):
        raise ArgumentError(f"protocol listed twice in {list(protocols)}")
    for p in protocols:
        if p in EXCLUSIVE and len(protocols) > 1:
            raise ArgumentError(
                f"run `{p}` on its own (it has its own settings), not with {[q for q in protocols if q != p]}"
            )
