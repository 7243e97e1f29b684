"""Interventions, passed per call: which attention edges a forward removes and which rows it drops.

The model core depends on the two small protocols below, never on the classes that implement
them (`vlens.interventions.knockout.KnockoutHook`, the sweep engine's per-row configurations, the efficient-
inference plan). A forward receives them in one `Interventions` object that was fully resolved
(layers against the model's depth) and checked against the batch it runs on *before* any block
runs; it lives only as long as that call. Nothing is stored on modules, so a call that raises —
a bad layer, a batch the knockout was not built for, a hook that fails, a KeyboardInterrupt —
cannot leave a knockout behind.

Positions are *sequence indices* (0 … n_pos−1 over the prompt and any generated tokens), not
rotary positions: masks are indexed by them, also after rows leave the sequence.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import torch
from jaxtyping import Bool, Int
from torch import Tensor

if TYPE_CHECKING:  # pragma: no cover
    from vlens.inputs.layout import VideoLayout

Site = Literal["pattern", "attn_scores"]


class InterventionError(ValueError):
    """An intervention cannot run on this call (wrong layers, a batch it was not built for)."""


class KnockoutError(InterventionError):
    """A knockout was asked for something it cannot do (bad layers, no video, wrong inputs)."""


@dataclass(frozen=True)
class BatchRows:
    """What a forward knows about its batch when it checks an intervention against it.

    `layouts` is None when the inputs are a plain dict (a decoding step, a sweep batch): then
    only the row count and the number of positions can be checked."""

    batch: int
    n_pos: int  # sequence positions covered so far: cached prefix + this call's rows
    q_start: int = 0  # the first row this call computes (> 0: decoding or a sweep's suffix)
    layouts: Sequence[VideoLayout] | None = None


@runtime_checkable
class EdgeRemoval(Protocol):
    """Attention edges (query row, key column) an intervention removes in some layers."""

    site: Site  # where hooks see it: "attn_scores" (−∞ before the softmax) or "pattern" (renormalised)

    def resolve_layers(self, n_layers: int) -> tuple[int, ...]:
        """The layers it acts in, for a model of `n_layers` (raise if any does not exist)."""
        ...

    def check_batch(self, rows: BatchRows) -> None:
        """Raise unless it was built for exactly this batch (row count, each row's layout)."""

    def mask_key(self, layer: int) -> Hashable:
        """Equal keys in two layers mean equal masks: they are built once and shared."""
        ...

    def blocked(self, layer: int, n_pos: int, device: torch.device) -> Bool[Tensor, "batch pos pos"]:
        """The removed edges of every row over sequence indices 0..n_pos−1."""
        ...


@runtime_checkable
class BlockedRows(Protocol):
    """An `EdgeRemoval` that can give the removed edges of some query rows only, built from the
    layout's structure (segments, frames): the query-chunked attention path
    (vlens.components.attention_chunked) then never holds a [pos, pos] tensor."""

    def blocked_rows(self, layer: int, rows: slice, n_pos: int, device: torch.device) -> Bool[Tensor, "batch rows pos"]:
        """The removed edges of query rows `rows` (sequence indices) over keys 0..n_pos−1:
        equal to `blocked(layer, n_pos, device)[:, rows]`."""
        ...


def blocked_rows(
    edit: EdgeRemoval, layer: int, rows: slice, n_pos: int, device: torch.device
) -> Bool[Tensor, "batch rows pos"]:
    """The removed edges of query rows `rows` (a slice of sequence indices) over keys 0..n_pos−1.

    From `edit.blocked_rows` where the edit has one (`BlockedRows`: no [pos, pos] tensor), else
    the rows of its dense `blocked` mask (which the edit builds once and keeps)."""
    if isinstance(edit, BlockedRows):
        return edit.blocked_rows(layer, rows, n_pos, device)
    return edit.blocked(layer, n_pos, device)[:, rows]


@runtime_checkable
class PerFrameBlocks(Protocol):
    """An `EdgeRemoval` whose edges are whole frames (temporal pruning): attention can run per frame."""

    def per_frame_blocks(self, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
        """(query rows, key columns, mask, other rows) of each frame's block, or None: the masked path."""
        ...


@runtime_checkable
class RowPlan(Protocol):
    """Rows that leave the sequence: from `exit_layer` on only `kept_rows` are computed."""

    exit_layer: int

    def check_batch(self, rows: BatchRows) -> None:
        """Raise unless it was built for exactly this batch (row count, each row's layout)."""
        ...

    def kept_rows(self, device: torch.device) -> Bool[Tensor, "batch pos"]:
        """Rows that stay from `exit_layer` on; every batch row keeps the same number."""
        ...

    def edge_removals(self) -> Sequence[EdgeRemoval]:
        """The plan's own attention interventions (merged into the forward's), possibly none."""
        ...


@dataclass(frozen=True)
class Interventions:
    """Everything one forward changes, resolved per layer. Empty by default (a clean run)."""

    by_layer: tuple[tuple[EdgeRemoval, ...], ...] = ()
    plan: RowPlan | None = None

    @classmethod
    def resolve(
        cls,
        edits: Sequence[EdgeRemoval],
        n_layers: int,
        plan: RowPlan | None = None,
        *,
        n_heads: int | None = None,
        n_kv_heads: int | None = None,
    ) -> Interventions:
        """Resolve every edit's layers against the depth, and the heads of edits restricted to
        some heads against `n_heads` (raises before anything runs)."""
        per_layer: list[list[EdgeRemoval]] = [[] for _ in range(n_layers)]
        for edit in edits:
            if not isinstance(edit, EdgeRemoval):
                raise InterventionError(f"{edit!r} is not an attention intervention (it has no resolve_layers/blocked)")
            check_heads = getattr(edit, "check_heads", None)
            if n_heads is not None and check_heads is not None:
                check_heads(n_heads, n_kv_heads or n_heads)
            for layer in edit.resolve_layers(n_layers):
                per_layer[layer].append(edit)
        if plan is not None and not 0 <= plan.exit_layer <= n_layers:
            raise InterventionError(f"the plan exits at layer {plan.exit_layer}; the model has {n_layers} layers")
        return cls(tuple(tuple(p) for p in per_layer), plan)

    def merged(self, other: Interventions) -> Interventions:
        """Both sets of edits (nested `model.hooks()` contexts compose); at most one plan."""
        if self.plan is not None and other.plan is not None:
            raise InterventionError("two efficient-inference plans in one call; pass one")
        plan = self.plan or other.plan
        if not self.by_layer or not other.by_layer:
            return Interventions(self.by_layer or other.by_layer, plan)
        return Interventions(tuple(a + b for a, b in zip(self.by_layer, other.by_layer)), plan)

    def at(self, layer: int) -> tuple[EdgeRemoval, ...]:
        """The edge removals acting in `layer` (an empty tuple when the call has none)."""
        return self.by_layer[layer] if self.by_layer else ()

    def all_edits(self) -> list[EdgeRemoval]:
        """Every edge removal of the call once, in first-seen order (one object may act in many layers)."""
        seen: dict[int, EdgeRemoval] = {}
        for edits in self.by_layer:
            for e in edits:
                seen.setdefault(id(e), e)
        return list(seen.values())

    def check(self, rows: BatchRows) -> None:
        """Every edit and the plan must have been built for this batch."""
        for edit in self.all_edits():
            edit.check_batch(rows)
        if self.plan is not None:
            self.plan.check_batch(rows)

    def __bool__(self) -> bool:
        return self.plan is not None or any(self.by_layer)


def same_layout(a: VideoLayout, b: VideoLayout) -> bool:
    """Two layouts label every position identically (layouts compare by identity otherwise)."""
    if a is b:
        return True
    return (
        a.segment == b.segment
        and torch.equal(a.frame, b.frame)
        and torch.equal(a.row, b.row)
        and torch.equal(a.col, b.col)
    )


def check_layouts(
    what: str, built_for: Sequence[VideoLayout], rows: BatchRows, error: type[ValueError] = InterventionError
) -> None:
    """The shared batch check of interventions built from `VideoInputs` (knockouts, plans).

    Raises `error` (an InterventionError by default) naming the mismatch: never broadcast one
    row's mask onto a batch."""
    if len(built_for) != rows.batch:
        raise error(
            f"{what} was built for {len(built_for)} row(s) but the batch has {rows.batch}; build it from "
            "the same inputs you run (e.g. ko.LV().hooks(inputs, ...) with this batch's inputs)"
        )
    n_built = len(built_for[0])
    # a continuation (q_start > 0) may run past the prompt: generated tokens are text
    if rows.n_pos < n_built or (rows.q_start == 0 and rows.n_pos != n_built):
        raise error(
            f"{what} was built for inputs of {n_built} positions but the model ran on {rows.n_pos}; "
            "build it from the same inputs you run"
        )
    if rows.layouts is not None:
        for i, (ours, theirs) in enumerate(zip(built_for, rows.layouts)):
            if len(ours) != len(theirs) or not same_layout(ours, theirs):
                raise error(
                    f"{what} was built for a different row {i} (its layout: {ours!r}; the inputs': {theirs!r}); "
                    "build it from the same inputs you run"
                )


def index_rows(t: Tensor, dim: int, index: Int[Tensor, " n"] | slice) -> Tensor:
    """`t` restricted to `index` along `dim` (a slice where the index is a contiguous range)."""
    if isinstance(index, slice):
        return t[(slice(None),) * dim + (index,)]
    return t.index_select(dim, index)
