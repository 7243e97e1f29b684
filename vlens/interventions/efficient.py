"""Efficient inference from the study's findings: visual early exit + temporal pruning.

`EfficientConfig(exit_layer=E, temporal_prune_layers=P)`:

* layers ≥ E run **without the vision positions** (`video` and `separator`): their residual rows
  are dropped from the sequence (no projections, no MLP), their keys/values are no longer read.
  The remaining positions keep their original rotary positions (the family's own: 3-D for M-RoPE).
* layers < P: video tokens attend **block-diagonally** — each frame's video tokens see the
  non-video positions before that frame (system prompt, markers) and their own frame, causally —
  computed per frame (frames batched as one SDPA call), never as a masked N×N.

These are real savings with an exact equivalent through knockout hooks (`equivalent_hooks`):
from E on, every non-vision query may not see any vision key (LV-K extended to all non-vision
queries, covering markers between frames); below P, VT-K. The efficient run's logits at the
non-vision positions equal that knockout run's (tested to 1e-4 in fp32), which proves the savings
change nothing else. Depth scaling (docs/efficient.md): E = round(18/28·L), P = round(8/28·L).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from vlens.components.per_call import InterventionError, check_layouts
from vlens.inputs.layout import VideoLayout
from vlens.interventions import knockout as ko


@dataclass(frozen=True)
class EfficientConfig:
    """Efficient inference's two savings (docs/efficient.md).

    Attributes:
        exit_layer: from this layer on only the non-vision rows are computed (visual early exit;
            `n_layers` means no exit).
        temporal_prune_layers: in layers below it each frame's video rows attend only to the
            positions before the frame and to their own frame (VT-K's edges, computed per frame)."""

    exit_layer: int
    temporal_prune_layers: int = 0

    @classmethod
    def scaled(cls, n_layers: int) -> EfficientConfig:
        """The paper's E=18, P=8 of 28 layers, scaled to `n_layers`."""
        return cls(round(18 / 28 * n_layers), round(8 / 28 * n_layers))

    def check(self, n_layers: int) -> None:
        """Raise ValueError unless both layers are in 0..n_layers (the model's depth)."""
        if not 0 <= self.exit_layer <= n_layers:
            raise ValueError(
                f"exit_layer={self.exit_layer} must be in 0..{n_layers} (the model has {n_layers} layers; {n_layers} = no exit)"
            )
        if not 0 <= self.temporal_prune_layers <= n_layers:
            raise ValueError(f"temporal_prune_layers={self.temporal_prune_layers} must be in 0..{n_layers}")


def _non_vision_queries(layout: VideoLayout) -> Tensor:
    q = ~layout.is_vision & ~layout.mask("pad")
    return q[:, None] & layout.is_vision[None, :] & torch.ones(len(layout), len(layout), dtype=torch.bool).tril(-1)


def equivalent_hooks(inputs, config: EfficientConfig, n_layers: int) -> list:
    """Knockout hooks whose logits (at non-vision positions) equal the efficient run's."""
    config.check(n_layers)
    hooks = []
    if config.exit_layer < n_layers:
        exit_spec = ko.Custom(_non_vision_queries, "non-vision queries → vision")
        hooks += exit_spec.hooks(inputs, layers=ko.from_layer(config.exit_layer))
    prune = min(config.temporal_prune_layers, config.exit_layer)
    if prune > 0:
        hooks += ko.VT().hooks(inputs, layers=ko.layers(range(prune)))
    return hooks


@dataclass
class EfficientOutput:
    """What `efficient_forward` returns: the logits [batch, kept, d_vocab] of the kept
    (non-vision) rows and their original positions [batch, kept]."""

    logits: Float[Tensor, "batch kept d_vocab"]
    positions: Int[Tensor, "batch kept"]  # original positions of the kept (non-vision) rows


def _frame_blocks(layout: VideoLayout) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per frame: query positions [F, n], key positions [F, K] (padded with 0), key mask
    [F, n, K] for block-diagonal attention (non-video positions before the frame + own frame),
    and the other (non-video) rows [M], which attend causally over everything."""
    video = layout.is_video
    frames = sorted(set(layout.frame[video].tolist()))
    queries = [layout.frame_positions(f) for f in frames]
    n = max(len(q) for q in queries)
    if any(len(q) != n for q in queries):
        raise ValueError("temporal pruning needs frames with equal token counts")
    keep_before = (~video & ~layout.mask("pad")).nonzero().flatten()
    keys = [torch.cat([keep_before[keep_before < int(q[0])], q]) for q in queries]
    K = max(len(k) for k in keys)
    key_pos = torch.zeros(len(frames), K, dtype=torch.long)
    mask = torch.zeros(len(frames), n, K, dtype=torch.bool)
    for i, (q, k) in enumerate(zip(queries, keys)):
        key_pos[i, : len(k)] = k
        mask[i, :, : len(k)] = k[None, :] <= q[:, None]
    return torch.stack(queries), key_pos, mask, (~video).nonzero().flatten()


def _equal_frames(layout: VideoLayout) -> bool:
    """Every frame has as many video positions (not so after VideoLLaMA3's token compression)."""
    counts = torch.bincount(layout.frame[layout.is_video])
    return bool((counts[counts > 0] == counts.max()).all()) if len(counts) else True


class EfficientPlan:
    """An `EfficientConfig` bound to one batch: the rows that leave at the exit layer (a
    vlens.components.per_call.RowPlan) and temporal pruning as an edge removal that prefers the
    per-frame attention backend. Passed per call: `model(inputs, plan=plan)`."""

    def __init__(self, config: EfficientConfig, layouts, n_layers: int):
        config.check(n_layers)
        self.config, self.layouts = config, list(layouts)
        self.exit_layer = config.exit_layer
        self.prune = min(config.temporal_prune_layers, config.exit_layer)
        self._pruning = _TemporalPruning(self) if self.prune > 0 else None

    def check_batch(self, rows) -> None:
        """Built for this batch, and every row keeps the same positions (rows leave the sequence
        together at the exit layer): checked before the forward runs anything."""
        check_layouts(f"the efficient-inference plan {self.config}", self.layouts, rows)
        kept = self.kept_rows("cpu")
        if not bool((kept == kept[0]).all()):
            raise InterventionError(
                "the rows of this batch keep different positions (different layouts or padding); run an "
                "efficient-inference plan one sample at a time"
            )

    def kept_rows(self, device) -> Bool[Tensor, "batch pos"]:
        """The rows that stay from `exit_layer` on: every non-vision position of each row, [batch, pos] bool on `device`."""
        return torch.stack([~layout.is_vision for layout in self.layouts]).to(device)

    def edge_removals(self) -> list:
        """The plan's attention interventions: temporal pruning's edges when it prunes any layer, else none."""
        return [self._pruning] if self._pruning is not None else []


class _TemporalPruning:
    """Layers < P: VT-K's edges, computed per frame where the batch allows (one row, no pad)."""

    site = "pattern"

    def __init__(self, plan: EfficientPlan):
        self.plan = plan
        self._blocked: dict = {}
        self._blocks: dict = {}

    def resolve_layers(self, n_layers: int) -> tuple[int, ...]:
        return tuple(range(self.plan.prune))

    def check_batch(self, rows) -> None:
        self.plan.check_batch(rows)

    def mask_key(self, layer: int) -> object:
        return id(self)

    def blocked(self, layer: int, n_pos: int, device) -> Tensor:
        key = (n_pos, str(device))
        if key not in self._blocked:
            self._blocked[key] = torch.stack(
                [ko.VT().blocked(layout.extend(n_pos - len(layout))) for layout in self.plan.layouts]
            ).to(device)
        return self._blocked[key]

    def blocked_rows(self, layer: int, rows: slice, n_pos: int, device) -> Tensor:
        """VT-K's edges of query rows `rows` [batch, rows, n_pos], from the layouts (the chunked path)."""
        vt = ko.VT()
        return torch.stack(
            [vt.blocked_rows(layout.extend(n_pos - len(layout)), rows) for layout in self.plan.layouts]
        ).to(device)

    def per_frame_blocks(self, device):
        layouts = self.plan.layouts
        if len(layouts) != 1 or layouts[0].mask("pad").any() or not _equal_frames(layouts[0]):
            return None  # the masked SDPA path computes the same edges
        if str(device) not in self._blocks:
            self._blocks[str(device)] = tuple(t.to(device) for t in _frame_blocks(layouts[0]))
        return self._blocks[str(device)]


@torch.no_grad()
def efficient_forward(model, inputs, config: EfficientConfig) -> EfficientOutput:
    """Prefill with the savings of `config` through the model's own blocks (every hook fires on
    the rows computed); logits of the kept (non-vision) positions."""
    plan = EfficientPlan(config, inputs.layouts, model.cfg.n_layers)
    logits = model(inputs, plan=plan)
    kept = plan.kept_rows(logits.device)
    positions = torch.stack([row.nonzero().flatten() for row in kept])
    return EfficientOutput(logits, positions)


@torch.no_grad()
def generate_efficient(model, inputs, config: EfficientConfig, max_new_tokens: int = 20) -> Tensor:
    """Greedy decoding with a KV cache after an efficient prefill: generated tokens are text, so
    from E on they read only the non-vision keys the cache holds. Batch of one."""
    if inputs.batch_size != 1:
        raise ValueError("generate_efficient decodes one sample at a time")
    plan = EfficientPlan(config, inputs.layouts, model.cfg.n_layers)
    return model.generate(inputs, max_new_tokens, plan=plan)
