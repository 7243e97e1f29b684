"""Attention knockouts inside the vision tower: which of the tower's edges carry what.

    from vlens import vision_knockout as vko
    hooks = vko.AcrossWindows().hooks(model)                  # Qwen2.5-VL's full-attention layers
    logits = model.run_with_hooks(inputs, fwd_hooks=hooks)
    hooks = (vko.WithinWindow() | vko.AcrossWindows()).hooks(model, layers=[1])

A spec names a set of tower edges (query token → key token) by the tower's own structure; its
hooks add −∞ to those edges' scores on `vision.blocks.{l}.attn.hook_attn_scores` (the tower's hooked
eager attention, vlens.model.vision_hooks), so the softmax renormalises over the edges left — the
LM knockouts' definition (vlens.interventions.knockout), inside the tower.

Where towers attend (what edges exist to remove):

- Per-frame towers (SigLIP, CLIP, InternViT, SmolVLM's, PerceptionLM's) run one row per frame:
  attention never crosses frames.
- Packed towers (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, GLM-4.1V, VideoLLaMA3) attend inside each
  `cu_seqlens` group: one temporal patch group (Qwen/GLM: 2 frames fused by the 3-D patch
  embedding, before any attention) or one frame. No tower edge crosses frames, so `AcrossFrames`
  is refused with that explanation rather than removing nothing.
- Qwen2.5-VL alone has windows: its window layers attend within a window of
  `window_size` pixels, its `fullatt_block_indexes` layers across the whole group. `AcrossWindows`
  (edges between different windows of one group, full layers only) and `WithinWindow` (edges
  between different tokens of one window, keeping each token's edge to itself, so no row is
  emptied) split the full layers' edges in two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Bool
from torch import Tensor

from vlens.model.vision_hooks import TowerCall


class VisionKnockoutError(ValueError):
    """A vision knockout that this model's tower cannot run (the message says why and what can)."""


@dataclass(frozen=True)
class VisionSpec:
    """A set of tower edges, defined per attention call by `blocked(call)`."""

    name = ""
    needs_windows = False

    def blocked(self, call: TowerCall) -> Bool[Tensor, "q k"]:
        """Edges removed in this call (True = removed), over the call's packed tokens."""
        raise NotImplementedError

    def default_layers(self, model) -> list[int]:
        """The tower layers `hooks()` uses when none are given: every block of the model's tower."""
        return list(range(len(model.vision_hooks.blocks)))

    def check(self, model, layers: list[int]) -> None:
        """Raise `VisionKnockoutError` before any forward when this tower cannot run the spec."""
        vh = model.vision_hooks
        family = model.family.name
        if vh.tower is None or not vh.pattern_layers():
            raise VisionKnockoutError(
                f"{self.name}: the {family} tower's attention does not run through transformers' AttentionInterface, "
                "so its edges cannot be removed (vision hook_z / resid / mlp hooks are available)"
            )
        depth = len(vh.blocks)
        bad = [l for l in layers if not 0 <= l < depth]
        if bad:
            raise VisionKnockoutError(
                f"{self.name}: layers {bad} out of range: the {family} tower has {depth} blocks, 0..{depth - 1}"
            )
        if self.needs_windows and not vh.tower.windows:
            raise VisionKnockoutError(
                f"{self.name}: the {family} tower has no window attention ({_how_it_attends(model)}); "
                "only Qwen2.5-VL's tower has windows"
            )

    def hooks(self, model, layers: Sequence[int] | None = None) -> list[tuple[str, VisionKnockoutHook]]:
        """`(hook name, hook)` pairs for `run_with_hooks`, on the given tower layers (the spec's
        default layers when None). Checked against the model before anything runs.

        Raises:
            VisionKnockoutError: the tower has no such edges, or a layer is out of range.
        """
        chosen = self.default_layers(model) if layers is None else [int(l) for l in layers]
        self.check(model, chosen)
        hook = VisionKnockoutHook(self)
        return [(f"vision.blocks.{l}.attn.hook_attn_scores", hook) for l in chosen]

    def __or__(self, other: VisionSpec) -> VisionSpec:
        return VisionUnion((self, other))


@dataclass(frozen=True)
class VisionUnion(VisionSpec):
    """The union of several specs' edges (`a | b`)."""

    parts: tuple[VisionSpec, ...] = ()

    @property
    def name(self) -> str:  # type: ignore[override]
        """The parts' names joined with ` | ` (what errors and reprs show)."""
        return " | ".join(p.name for p in self.parts)

    @property
    def needs_windows(self) -> bool:  # type: ignore[override]
        """True when any part needs a windowed tower (Qwen2.5-VL's)."""
        return any(p.needs_windows for p in self.parts)

    def blocked(self, call: TowerCall) -> Tensor:
        """The union (logical or) of the parts' removed edges in this call: [q, k] bool over the call's tokens."""
        out = self.parts[0].blocked(call)
        for p in self.parts[1:]:
            out = out | p.blocked(call)
        return out

    def default_layers(self, model) -> list[int]:
        """Every layer that any part uses by default (sorted)."""
        return sorted(set().union(*(p.default_layers(model) for p in self.parts)))

    def check(self, model, layers: list[int]) -> None:
        # each part's own refusals (a tower without windows, AcrossFrames) hold; a window layer
        # in the union's layers is fine as long as another part removes edges there
        """Raise `VisionKnockoutError` when any part cannot run on this tower (AcrossFrames always refuses)."""
        for p in self.parts:
            if isinstance(p, AcrossFrames):
                p.check(model, layers)
            VisionSpec.check(p, model, layers)


def _full_layers(model) -> list[int]:
    return list(model.vision_hooks.tower.root.config.fullatt_block_indexes)


def _window_check(spec: VisionSpec, model, layers: list[int]) -> None:
    VisionSpec.check(spec, model, layers)
    if isinstance(spec, AcrossWindows):
        windowed = [l for l in layers if l not in _full_layers(model)]
        if windowed:
            raise VisionKnockoutError(
                f"AcrossWindows: tower layers {windowed} attend within windows already (no edge crosses a window); "
                f"the full-attention layers are {_full_layers(model)}"
            )


@dataclass(frozen=True)
class AcrossWindows(VisionSpec):
    """Qwen2.5-VL: edges between tokens of different windows of one group (full-attention layers)."""

    name = "AcrossWindows"
    needs_windows = True

    def blocked(self, call: TowerCall) -> Tensor:
        """Edges between tokens of different windows: [q, k] bool over the call's tokens."""
        w = _windows(call)
        return w[:, None] != w[None, :]

    def default_layers(self, model) -> list[int]:
        """Qwen2.5-VL's full-attention layers (`fullatt_block_indexes`); none for a tower without windows."""
        return _full_layers(model) if model.vision_hooks.tower is not None and model.vision_hooks.tower.windows else []

    def check(self, model, layers: list[int]) -> None:
        """Raise `VisionKnockoutError` for a tower without windows, or a window layer (no edge crosses a window there)."""
        _window_check(self, model, layers)


@dataclass(frozen=True)
class WithinWindow(VisionSpec):
    """Qwen2.5-VL: edges between different tokens of one window (each token keeps its own)."""

    name = "WithinWindow"
    needs_windows = True

    def blocked(self, call: TowerCall) -> Tensor:
        """Edges between different tokens of one window (the diagonal kept): [q, k] bool."""
        w = _windows(call)
        same = w[:, None] == w[None, :]
        return same & ~torch.eye(len(w), dtype=torch.bool, device=w.device)

    def check(self, model, layers: list[int]) -> None:
        """Raise `VisionKnockoutError` for a tower without windows or a layer out of range."""
        _window_check(self, model, layers)


@dataclass(frozen=True)
class AcrossFrames(VisionSpec):
    """Edges between frames inside the tower: no supported tower has any (refused, saying how it attends)."""

    name = "AcrossFrames"

    def blocked(self, call: TowerCall) -> Tensor:  # pragma: no cover - check() always refuses
        """Never reached: `check` refuses the spec on every supported tower."""
        raise VisionKnockoutError("AcrossFrames has no edges to remove")

    def check(self, model, layers: list[int]) -> None:
        """Always raise `VisionKnockoutError`: no supported tower attends across frames (the message says how it attends)."""
        raise VisionKnockoutError(
            f"AcrossFrames: the {model.family.name} tower has no across-frame edges ({_how_it_attends(model)}); "
            "frames meet only in the language model: use the LM knockouts (vlens.knockout), e.g. ko.Edges between frames"
        )


def _how_it_attends(model) -> str:
    tower = model.vision_hooks.tower
    if tower is None:
        return "no hookable tower"
    if any(b.packed for b in tower.blocks):
        cfg = tower.root.config
        tp = getattr(cfg, "temporal_patch_size", 1)
        fused = f" ({tp} frames fused by the patch embedding, before any attention)" if tp > 1 else ""
        return f"it attends within one temporal patch group{fused} via cu_seqlens"
    return "it runs one row per frame: attention stays inside a frame"


def _windows(call: TowerCall) -> Tensor:
    if call.window is None:
        raise VisionKnockoutError("this attention call has no window ids (not a Qwen2.5-VL tower)")
    return call.window.to(call.group.device if call.group is not None else "cpu")


class VisionKnockoutHook:
    """The hook on `vision.blocks.{l}.attn.hook_attn_scores` that puts −∞ on a spec's edges."""

    def __init__(self, spec: VisionSpec):
        self.spec = spec

    def __call__(self, scores: Tensor, hook) -> Tensor:
        call: TowerCall = hook.tower
        blocked = self.spec.blocked(call).to(scores.device)
        if blocked.shape != scores.shape[-2:]:
            raise VisionKnockoutError(
                f"{self.spec.name}: edges over {tuple(blocked.shape)} tokens, the attention has {tuple(scores.shape[-2:])}"
            )
        return scores.masked_fill(blocked, float("-inf"))

    def __repr__(self) -> str:
        return f"VisionKnockoutHook({self.spec.name})"
