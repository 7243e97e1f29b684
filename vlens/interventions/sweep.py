"""A sweep engine: many knockout configurations of one sample for a fraction of the naive cost.

The naive loop runs a full forward per configuration. Three exact savings:

* **Prefix reuse across layers.** A knockout whose first knocked layer is s leaves the residual
  stream entering block s unchanged, so each configuration starts from the clean
  `blocks.{s}.hook_resid_pre`, cached once per sample.
* **Row reuse.** Let r0 be the first query row that loses an edge (for LV-K: the first question
  token). By causality rows < r0 are identical to the clean run in every layer, so only rows ≥ r0
  are recomputed, attending to the clean keys/values of rows < r0 (cached once per sample). r0 is
  derived from the spec's mask, not from its name: it holds for any knockout.
* **Batched configurations.** Configurations that share (s, r0) run as one batch, one mask per
  batch row, in chunks sized by a memory budget.

Results equal the naive loop's (tested to 1e-4 in fp32). Only the last position's logits are
returned, which is all multiple-choice scoring reads.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from vlens.components.kv_cache import KVCache
from vlens.components.per_call import Interventions, Site
from vlens.inputs.layout import VideoLayout
from vlens.interventions.flops import suffix_layer_flops, unembed_per_row
from vlens.interventions.knockout import KnockoutError, LayerSelection, Spec


@dataclass(frozen=True)
class SweepConfig:
    """One knockout configuration of a sweep: `spec` in `layers`."""

    name: str
    spec: Spec
    layers: LayerSelection


class ConfigurationRows:
    """An attention intervention whose batch row b is configuration b (its own spec in its own
    layers) of one sample: the engine runs many configurations as one batch. It composes the
    configurations' specs; nothing is subclassed."""

    site: Site = "pattern"

    def __init__(self, configs: Sequence[SweepConfig], n_layers: int, layout: VideoLayout):
        self.configs, self.layout = list(configs), layout
        self.layer_sets = [set(c.layers.resolve(n_layers)) for c in self.configs]
        self._by_spec: dict = {}
        self._by_layers: dict = {}

    def resolve_layers(self, n_layers: int) -> tuple[int, ...]:
        """Every layer in which at least one configuration acts (sorted)."""
        return tuple(sorted(set().union(*self.layer_sets)))

    def check_batch(self, rows) -> None:
        """Raise unless the batch has one row per configuration over this sample's positions."""
        if rows.batch != len(self.configs) or rows.n_pos != len(self.layout):
            raise KnockoutError(
                f"{self!r} hold one row per configuration over {len(self.layout)} positions; the call has "
                f"{rows.batch} rows over {rows.n_pos}"
            )

    def mask_key(self, layer: int) -> object:
        """Layers in which the same configurations are active share one mask."""
        return (id(self), tuple(layer in s for s in self.layer_sets))

    def blocked(self, layer: int, n_pos: int, device) -> Tensor:
        """Removed edges [batch, pos, pos] in `layer`: row b holds configuration b's spec where it acts in `layer`, nothing elsewhere."""
        active = tuple(layer in s for s in self.layer_sets)
        if active not in self._by_layers:
            rows = []
            for cfg, on in zip(self.configs, active):
                if on:
                    key = repr(cfg.spec)
                    if key not in self._by_spec:
                        self._by_spec[key] = cfg.spec.blocked(self.layout).to(device)
                    rows.append(self._by_spec[key])
                else:
                    rows.append(torch.zeros(n_pos, n_pos, dtype=torch.bool, device=device))
            self._by_layers[active] = torch.stack(rows)
        return self._by_layers[active]

    def blocked_rows(self, layer: int, rows: slice, n_pos: int, device) -> Tensor:
        """Rows `rows` of `blocked(layer, n_pos, device)` [batch, rows, pos]; from the layout when
        every configuration's spec is structural (the chunked path builds no [pos, pos] mask)."""
        if not all(c.spec.structural for c in self.configs) or n_pos != len(self.layout):
            return self.blocked(layer, n_pos, device)[:, rows]
        memo: dict = {}
        n_rows = len(range(n_pos)[rows])
        out = [
            c.spec.blocked_rows(self.layout, rows, memo) if layer in s else torch.zeros(n_rows, n_pos, dtype=torch.bool)
            for c, s in zip(self.configs, self.layer_sets)
        ]
        return torch.stack(out).to(device)

    def __repr__(self) -> str:
        return f"{len(self.configs)} configurations"


@dataclass
class SweepPlan:
    """What the engine will run: groups of configurations sharing (start layer, first row)."""

    groups: dict[tuple[int, int], list[int]]
    n_layers: int
    seq_len: int

    def flops(self, cfg) -> tuple[float, float]:
        """(engine, naive) FLOPs of the sweep, counted analytically from the config: per row and
        layer the q/k/v/o projections and the MLP, plus causal attention (QKᵀ and AV over the
        row's keys); the unembedding of the last position only (what scoring reads)."""

        def layer_rows(r0: int) -> float:
            f = suffix_layer_flops(cfg, self.seq_len, r0)
            return f.attention + f.linear

        unembed = unembed_per_row(cfg)
        full = self.n_layers * layer_rows(0) + unembed
        n_configs = sum(len(v) for v in self.groups.values())
        engine = full + sum(
            len(idx) * ((self.n_layers - s) * layer_rows(r0) + unembed) for (s, r0), idx in self.groups.items()
        )
        return engine, (n_configs + 1) * full

    def relative_cost(self, cfg=None) -> float:
        """Engine FLOPs / naive FLOPs (with a unit-shaped config when none is given)."""
        if cfg is None:
            from types import SimpleNamespace

            cfg = SimpleNamespace(n_heads=1, n_key_value_heads=1, d_head=1, d_model=1, d_mlp=1, d_vocab=1)
        engine, naive = self.flops(cfg)
        return engine / naive


def plan(configs: Sequence[SweepConfig], layout: VideoLayout, n_layers: int) -> SweepPlan:
    """Group configurations for the sweep engine by (first layer they act in, first row they change).

    Args:
        configs: the configurations (spec + layer selection) of one sample.
        layout: that sample's layout.
        n_layers: the model's depth.

    Returns:
        The `SweepPlan`: each group shares the clean prefix up to its start layer and first row,
        so it reruns only the suffix."""
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    first_rows: dict[str, int] = {}
    for i, cfg in enumerate(configs):
        key = repr(cfg.spec)
        if key not in first_rows:
            rows = cfg.spec.blocked(layout).any(-1).nonzero()
            first_rows[key] = int(rows[0]) if len(rows) else len(layout) - 1
        # Batching only configurations that share both keeps every saving exact and minimal:
        # merging an LV-K (question rows) with a VT-K (all video rows) would recompute video rows.
        groups[(min(cfg.layers.resolve(n_layers)), first_rows[key])].append(i)
    groups = dict(groups)
    return SweepPlan(groups, n_layers, len(layout))


def _bytes_per_config(model, n_rows: int, n_keys: int, n_layers_run: int) -> int:
    """Rough peak memory of one batch row: its K/V across the layers run, a few residual-sized
    activations, the MLP hidden state and the attention mask."""
    c = model.cfg
    item = torch.finfo(c.dtype).bits // 8
    kv = 2 * n_layers_run * n_keys * c.n_key_value_heads * c.d_head * item
    acts = n_rows * (6 * c.d_model + 3 * c.d_mlp) * item
    mask = n_rows * n_keys * 2
    return kv + acts + mask + c.d_vocab * 4


@torch.no_grad()
def run_sweep(
    model,
    inputs,
    configs: Sequence[SweepConfig],
    *,
    max_memory: int | None = None,
    clean: bool = True,
    report: dict | None = None,
) -> dict[str, Float[Tensor, " d_vocab"]]:
    """Last-position logits of every configuration (and of the clean run under "clean") for one
    sample, equal to running each configuration's knockout hooks through `model.run_with_hooks`.

    `max_memory` (bytes) caps what the cached clean activations plus one batch of configurations
    may hold; configurations are batched as far as it allows (at least one at a time). Pass a
    dict as `report` to learn what it kept: cached bytes, batch sizes, estimated peak bytes."""
    if inputs.batch_size != 1:
        raise ValueError(f"run_sweep takes one sample (batch of 1), got {inputs.batch_size} rows")
    layout = inputs.layout
    L, N = model.cfg.n_layers, inputs.seq_len
    sweep_plan = plan(configs, layout, L)
    starts = {s for s, _ in sweep_plan.groups}
    names = {f"blocks.{s}.hook_resid_pre" for s in starts}
    names |= {f"blocks.{l}.attn.hook_{n}" for l in range(min(starts, default=L), L) for n in ("rot_k", "v")}
    n_deep = model.cfg.deepstack_layers  # Qwen3-VL: resumed rows need the DeepStack additions
    names |= {f"blocks.{l}.hook_deepstack" for l in range(min(starts, default=L), n_deep)}
    logits, cache = model.run_with_cache(
        inputs, names_filter=lambda n: n in names, logits_to_keep=1, return_cache_object=False
    )
    out: dict[str, Tensor] = {"clean": logits[0, -1]} if clean else {}
    cached_bytes = sum(t.numel() * t.element_size() for t in cache.values())
    budget = None if max_memory is None else max_memory - cached_bytes
    if budget is not None and budget <= 0:
        raise MemoryError(
            f"max_memory={max_memory} bytes cannot even hold the clean activations a sweep reuses "
            f"({cached_bytes} bytes); raise --max-memory or use --engine naive"
        )
    # cached K/V are [batch, pos, kv_head, d_head]; attention keeps [batch, kv_head, pos, d_head]
    kv = {
        l: (cache[f"blocks.{l}.attn.hook_rot_k"].transpose(1, 2), cache[f"blocks.{l}.attn.hook_v"].transpose(1, 2))
        for l in range(min(starts, default=L), L)
    }
    mask = inputs.get("attention_mask")
    positions = model.position_ids(inputs)  # [1, N] or [3, 1, N] (M-RoPE): rows r0.. continue them
    if report is not None:
        report.update(
            cached_bytes=cached_bytes,
            batches=[],
            peak_estimate=cached_bytes,
            relative_cost=sweep_plan.relative_cost(model.cfg),
        )
    for (s, r0), idx in sorted(sweep_plan.groups.items()):
        per_row = _bytes_per_config(model, N - r0, N, L - s)
        chunk = len(idx) if budget is None else max(1, min(len(idx), budget // per_row))
        if budget is not None and per_row > budget:
            raise MemoryError(
                f"max_memory={max_memory} bytes: one configuration needs ~{per_row} bytes beyond the "
                f"{cached_bytes} cached; raise --max-memory or use --engine naive"
            )
        if report is not None:
            report["batches"] += [min(chunk, len(idx) - c0) for c0 in range(0, len(idx), chunk)]
            report["peak_estimate"] = max(report["peak_estimate"], cached_bytes + chunk * per_row)
        resid = cache[f"blocks.{s}.hook_resid_pre"][:, r0:]
        for c0 in range(0, len(idx), chunk):
            part = [configs[i] for i in idx[c0 : c0 + chunk]]
            B = len(part)
            rows = ConfigurationRows(part, L, layout)
            past = KVCache.from_prefix(
                L,
                {
                    l: (kv[l][0][:, :, :r0].expand(B, -1, -1, -1), kv[l][1][:, :, :r0].expand(B, -1, -1, -1))
                    for l in range(s, L)
                },
            )
            step = {"input_ids": inputs["input_ids"][:, r0:].expand(B, -1), "position_ids": positions[..., r0:]}
            if mask is not None:
                step["attention_mask"] = mask.expand(B, -1)
            deep = {l: cache[f"blocks.{l}.hook_deepstack"][:, r0:].expand(B, -1, -1) for l in range(s, n_deep)}
            logits = model(
                step,
                start_at_layer=s,
                resid=resid.repeat(B, 1, 1),
                kv_cache=past,
                q_start=r0,
                logits_to_keep=1,
                interventions=Interventions.resolve([rows], L),
                deepstack_adds=deep,
            )
            for cfg, row in zip(part, logits[:, -1]):
                out[cfg.name] = row
    return out


@torch.no_grad()
def run_naive(model, inputs, configs: Sequence[SweepConfig], *, clean: bool = True) -> dict[str, Tensor]:
    """The reference loop: one full forward per configuration."""
    out = {"clean": model(inputs, logits_to_keep=1)[0, -1]} if clean else {}
    for cfg in configs:
        hooks = cfg.spec.hooks(inputs, layers=cfg.layers)
        out[cfg.name] = model.run_with_hooks(inputs, fwd_hooks=hooks, logits_to_keep=1)[0, -1]
    return out
