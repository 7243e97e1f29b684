"""What a forward's dense attention masks (and explicit patterns) would take, refused before it runs.

On the dense paths a layer's mask is [batch, head, q, k] bool (head 1 unless an intervention acts
on chosen heads), built once per forward for every distinct set of interventions and kept until
the forward ends; each knockout hook also keeps its [batch, pos, pos] removed edges. A layer on
the explicit path (something hooks `attn_scores`/`pattern`) holds its [batch, head, q, k] scores
and fp32 softmax while it runs. At 256 frames × 196 tokens (N ≈ 50k) one [pos, pos] bool mask is
N² ≈ 2.5 GB a row, the fp32 pattern of one head 10 GB. `check` estimates these bytes before the
forward and raises `MaskMemoryError` (the estimate and the options: the chunked path, fewer
frames, a GPU) instead of an out-of-memory error halfway through; the "chunked" path
(vlens.components.attention_chunked) builds no [pos, pos] tensor and is not checked.

`model.mask_memory_budget` sets the limit: "auto" (the memory now available on the device), a
size ("40GB", bytes) or None (no check). The estimate counts the tensors named above (not
torch's kernel workspace), so it is a lower bound on what the masks cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vlens.components.per_call import Interventions
from vlens.model.cache_memory import available_bytes, budget_bytes, n_bytes


class MaskMemoryError(MemoryError, ValueError):
    """A forward's dense attention masks (and explicit patterns) would not fit in memory."""


@dataclass(frozen=True)
class MaskEstimate:
    """Bytes of one forward's dense attention masks and explicit-path tensors.

    Attributes:
        masks: the layer masks kept through the forward ([batch, head, q, k] bool: allowed and
            causal/removed edges, per distinct set of interventions) and the hooks' removed edges.
        patterns: the largest transient of one layer: the explicit path's scores and fp32
            pattern, or the fused kernel's float copy of a bool mask.
        n_masks: distinct layer masks.
    """

    masks: int
    patterns: int
    n_masks: int

    @property
    def total(self) -> int:
        """All of it, in bytes."""
        return self.masks + self.patterns

    def __str__(self) -> str:
        out = f"{n_bytes(self.masks)} of attention masks ({self.n_masks} distinct [batch, head, q, k] masks)"
        return out + (
            f" + {n_bytes(self.patterns)} while a layer runs (scores/pattern or a float mask)" if self.patterns else ""
        )


def estimate(
    model,
    batch: int,
    n_rows: int,
    n_keys: int,
    interventions: Interventions,
    padded: bool,
    path: str = "auto",
) -> MaskEstimate:
    """Bytes the dense paths would hold for masks and explicit patterns in one forward.

    Args:
        model: a HookedVideoLLM (its config and hook points).
        batch: rows of the batch.
        n_rows: query rows computed (the new positions).
        n_keys: keys (cached prefix + new positions).
        interventions: the call's interventions.
        padded: the batch has padding (then even a clean forward builds a mask).
        path: the attention path ("chunked" builds none: 0).

    Returns:
        The `MaskEstimate`."""
    if path == "chunked":
        return MaskEstimate(0, 0, 0)
    cfg = model.cfg
    H, elt = cfg.n_heads, torch.empty((), dtype=cfg.dtype).element_size()
    area = batch * n_rows * n_keys
    keys: set = set()
    masks = patterns = 0
    for layer, block in enumerate(model.blocks):
        edits = interventions.at(layer)
        attn = block.attn
        hooked = any(p._forward_hooks or p._backward_hooks for p in (attn.hook_attn_scores, attn.hook_pattern))
        unnormalised = any(getattr(e, "alpha", None) is not None and not getattr(e, "renormalise", True) for e in edits)
        explicit = path == "explicit" or hooked or unnormalised
        heads = H if any(getattr(e, "heads", None) is not None for e in edits) else 1
        if explicit:  # scores, their masked copy and the fp32 softmax, while the layer runs
            patterns = max(patterns, batch * H * n_rows * n_keys * (2 * elt + 4))
        if not edits and not padded and n_rows in (n_keys, 1):
            continue  # plain causal: the causal kernel needs no mask (explicit: one triangle)
        if not explicit:  # the fused kernel's float copy of the bool mask (measured on CPU SDPA)
            patterns = max(patterns, 4 * area * heads)
        key = tuple(e.mask_key(layer) for e in edits)
        if key in keys:
            continue
        keys.add(key)
        masks += area  # causal ∧ padding
        masks += area * heads if edits else 0  # allowed
        masks += area * heads if heads > 1 else 0  # the removed edges on chosen heads
        masks += sum(4 * area * heads for e in edits if getattr(e, "alpha", None) not in (None, 0))  # log α
    masks += sum(batch * n_keys * n_keys for _ in interventions.all_edits())  # each hook's removed edges
    return MaskEstimate(masks, patterns, len(keys))


def check(
    model, batch: int, n_rows: int, n_keys: int, interventions: Interventions, padded: bool
) -> MaskEstimate | None:
    """Refuse a forward whose dense masks would not fit (see the module docstring).

    Returns:
        The estimate (None when nothing is checked: no budget, or no dense mask).

    Raises:
        MaskMemoryError: the estimate is above `model.mask_memory_budget`; it names the options."""
    budget = getattr(model, "mask_memory_budget", "auto")
    path = model.attention_path
    if budget is None or path == "chunked":
        return None
    est = estimate(model, batch, n_rows, n_keys, interventions, padded, path)
    if est.total == 0:
        return None
    device = model.cfg.device
    limit = available_bytes(device) if budget == "auto" else budget_bytes(budget, device)
    if limit is None or est.total <= limit:
        return est
    where = "the memory now available" if budget == "auto" else "model.mask_memory_budget"
    raise MaskMemoryError(
        f"this forward ({batch} row(s), {n_rows} query rows × {n_keys} keys) would build {est} on {device}, "
        f"over {n_bytes(limit)} ({where}). Options: run it on the chunked attention path, which builds no "
        "[pos, pos] tensor (with model.attention_path_as('chunked', chunk=1024): ...); sample fewer frames; "
        "run fewer rows at a time; or use a device with more memory (a GPU). "
        + (
            "Hooks on attn_scores/pattern need the N×N tensors: leave them out or hook fewer layers. "
            if est.patterns
            else ""
        )
        + "To skip this check: model.mask_memory_budget = None."
    )
