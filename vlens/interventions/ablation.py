"""Mean, resample and zero ablation of the video features, beside the knockouts.

A knockout removes attention edges and keeps every activation; an ablation keeps every edge and
replaces what the video positions carry. Reviewers ask for both: an effect that survives mean
ablation of a frame's tokens is not explained by the frame's content alone. The replacement is
done where the vision path hands its features to the language model (`hook_video_features`,
[batch, n_vision, d_model], the video and separator positions in sequence order), so every LM
hook and knockout composes with it:

    reference = video_features(model, [inputs_a, inputs_b, inputs_c])  # [3, n_vision, d_model]
    hooks = mean_ablation(reference, inputs, frames=[0, 1])
    logits = model.run_with_hooks(inputs, fwd_hooks=hooks)

- `mean_ablation`: each position's mean over reference samples with the same vision layout
  (`per_position=True`), or one mean vector over every reference position (`per_position=False`:
  for references whose layouts differ).
- `resample_ablation`: another sample's features at the same positions (its layout must match).
- `zero_ablation`: zeros (off-distribution; for comparison with the literature).

`frames=` restricts the replacement to those frames' tokens (separators stay unless `frames` is
None); everything else is the clean run's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

HOOK = "hook_video_features"


class AblationError(ValueError):
    """An ablation that cannot be applied as asked (no video, mismatched layouts, bad frames)."""


@torch.no_grad()
def video_features(model, samples: Sequence) -> Float[Tensor, "sample n_vision d_model"]:
    """The video features of each sample (one `VideoInputs` row each), as the LM receives them.

    Raises:
        AblationError: no samples, a sample without video, or samples whose vision positions
            differ in number (stack those separately, or use `per_position=False`).
    """
    if not samples:
        raise AblationError("video_features needs at least one sample")
    got: list[Tensor] = []
    for i, inputs in enumerate(samples):
        seen: list[Tensor] = []
        model.run_with_hooks(
            inputs, fwd_hooks=[(HOOK, lambda t, hook, seen=seen: seen.append(t.detach().clone()))], stop_at_layer=0
        )
        if not seen:
            raise AblationError(f"sample {i} has no video (no {HOOK} ran): ablations need video inputs")
        if seen[0].shape[0] != 1:
            raise AblationError(f"sample {i} is a batch of {seen[0].shape[0]}; give one row per sample")
        got.append(seen[0][0])
    sizes = {t.shape[0] for t in got}
    if len(sizes) > 1:
        raise AblationError(
            f"the samples have different numbers of vision positions {sorted(sizes)}: build them with the same "
            "n_frames and resolution, or pass them one by one to mean_ablation(per_position=False)"
        )
    return torch.stack(got)


def _selected(inputs, frames: Sequence[int] | None) -> Tensor:
    """[batch, n_vision] bool: the vision positions to replace."""
    layouts = getattr(inputs, "layouts", None)
    if not layouts:
        raise AblationError("ablations need VideoInputs with layouts (from model.to_inputs / mc_inputs)")
    rows = []
    for layout in layouts:
        vision_frames = layout.frame[layout.is_vision]
        if frames is None:
            rows.append(torch.ones_like(vision_frames, dtype=torch.bool))
            continue
        n = int(layout.frame.max()) + 1
        bad = [f for f in frames if not isinstance(f, int) or isinstance(f, bool) or not 0 <= f < n]
        if bad:
            raise AblationError(f"frames {bad} are not frame indices of this input (0..{n - 1}; negatives refused)")
        rows.append(torch.isin(vision_frames, torch.tensor(list(frames), dtype=vision_frames.dtype)))
    width = max(len(r) for r in rows)
    return torch.stack([torch.nn.functional.pad(r, (0, width - len(r))) for r in rows])


def _hook(replacement: Tensor, where: Tensor):
    def replace(features: Tensor, hook) -> Tensor:
        if features.shape[1] != where.shape[1]:
            raise AblationError(
                f"{HOOK} has {features.shape[1]} positions, the ablation was built for {where.shape[1]}: "
                "build it from these inputs"
            )
        out = features.clone()
        mask = where.to(features.device)
        out[mask] = replacement.to(features)[mask]
        return out

    return replace


def _as_rows(reference: Tensor, inputs, where: Tensor) -> Tensor:
    """`reference` [n_vision, d] or [d] broadcast to [batch, n_vision, d]."""
    batch, n = where.shape
    if reference.dim() == 1:
        return reference.expand(batch, n, -1)
    if reference.shape[0] != n:
        raise AblationError(
            f"the reference has {reference.shape[0]} vision positions, these inputs {n}: build both with the same "
            "n_frames and resolution, or use per_position=False"
        )
    return reference.expand(batch, -1, -1)


def mean_ablation(
    reference: Float[Tensor, "sample n_vision d_model"],
    inputs,
    *,
    frames: Sequence[int] | None = None,
    per_position: bool = True,
) -> list[tuple[str, object]]:
    """Forward hooks that replace the video features of `inputs` with the reference mean.

    Args:
        reference: `video_features` of the reference samples.
        inputs: the `VideoInputs` the hooks will run on.
        frames: only these frames' tokens, as the layout numbers them (temporal groups where frames
            share tokens, e.g. Qwen-VL); default every vision position, separators included.
        per_position: the mean at each position (True) or one mean over all positions (False).

    Returns:
        `[(hook_name, fn)]` for `run_with_hooks` / `hooks()`.

    Raises:
        AblationError: a reference that is not [sample, n_vision, d_model], or one whose positions
            differ from the inputs' (per_position=True), or bad frames.
    """
    if reference.dim() != 3 or reference.shape[0] == 0:
        raise AblationError(
            f"reference must be [sample, n_vision, d_model] from video_features, got {tuple(reference.shape)}"
        )
    where = _selected(inputs, frames)
    mean = reference.mean(0) if per_position else reference.flatten(0, 1).mean(0)
    return [(HOOK, _hook(_as_rows(mean, inputs, where), where))]


def resample_ablation(
    other: Float[Tensor, "n_vision d_model"], inputs, *, frames: Sequence[int] | None = None
) -> list[tuple[str, object]]:
    """Forward hooks that put another sample's video features (`video_features(model, [o])[0]`)
    at the same positions of `inputs`.

    Raises:
        AblationError: `other` not [n_vision, d_model] of the inputs' layout, or bad frames.
    """
    if other.dim() != 2:
        raise AblationError(f"other must be one sample's [n_vision, d_model] features, got {tuple(other.shape)}")
    where = _selected(inputs, frames)
    return [(HOOK, _hook(_as_rows(other, inputs, where), where))]


def zero_ablation(inputs, *, frames: Sequence[int] | None = None, d_model: int) -> list[tuple[str, object]]:
    """Forward hooks that zero the video features of `inputs` (at `frames`, or everywhere)."""
    where = _selected(inputs, frames)
    return [(HOOK, _hook(torch.zeros(d_model).expand(*where.shape, -1), where))]
