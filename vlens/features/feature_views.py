"""Seeing a feature: its top clips with their frames, a heatmap over patches, its density, its logit lens.

    from vlens.features.feature_views import feature_views
    from vlens.figures.features import plot_feature

    views = feature_views("acts/", sae, [3, 17], model=model, samples=load_dataset("synthetic:1,n=180"))
    plot_feature(views[0], "feature3.png")

A feature is one row of an SAE (`vlens.features.sae.SAE`: its activation is `sae.encode(x)[f]`,
its direction the decoder row `W_dec[f]`) or of any direction matrix `[d_sae, d_model]` (a probe's
weights, difference-of-means directions: its activation is the projection `x · D[f]`, its
direction `D[f]`). Over every stored row of the hook, or of one position group (`group="video"`:
the patches alone), streamed from the activation store one chunk at a time:

- **top samples**: the samples with the largest activation over their stored rows (ties: the
  lower sample index first), each with where it peaks;
- **heatmap**: per top sample, the activation at each stored video patch placed at the row's
  (frame, patch row, patch column) from the store's metadata, `[frames, rows, cols]`, NaN where no
  row was stored (a per-frame extra token has no patch and is left out);
- **frames**: the sampled frame images of a top sample when `samples` (the dataset the store was
  written from) can still read its video: the same frames the model saw (the manifest's frame
  count and `allow_repeat`, the model family's sampling); else None and the figure shows the
  frame index;
- **density**: the fraction of the hook's stored rows where the activation is > 0;
- **logit lens** of the direction: `unembed(ln_final(d))` — the direction passed through the final
  norm as a residual-stream vector would be, then the unembedding — the tokens it promotes and
  suppresses (`apply_norm=False`: the unembedding alone, `d @ W_U`). The supported families' final
  norm is RMSNorm, so with the norm the ranking is that of `(d ⊙ w_ln) @ W_U` (the scale drops
  out). Only for a hook as wide as the residual stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from vlens.arguments import ArgumentError, as_index, as_positive_int
from vlens.features.probe_fit import ProbeError
from vlens.features.probes import group_mask
from vlens.features.sae import SAE
from vlens.features.store import ActivationStore

NORM_NOTE = {
    True: "unembed(ln_final(direction)): the final norm applied to the direction, then the unembedding",
    False: "direction @ W_U: the unembedding alone, no final norm",
}


class FeatureViewError(ArgumentError):
    """A feature view asked of an SAE, directions or store that do not fit one another."""


@dataclass
class TopSample:
    """One of a feature's top-activating samples.

    Attributes:
        sample: index into `ActivationStore.samples`.
        id: the sample's id.
        activation: the largest activation over its stored rows.
        position: the sequence position where it peaks.
        frame: that position's frame (−1 outside the video).
        heatmap: `[frames, rows, cols]` the activation at each stored video patch (NaN where none
            was stored), or None when the store holds no video patches of this sample.
        frame_images: `[frames, h, w, 3]` uint8, the frames shown to the model (the first of
            each temporal group), or None (no dataset given, or the video is missing).
        labels: the sample's labels from the store's index.
    """

    sample: int
    id: str
    activation: float
    position: int
    frame: int
    heatmap: Float[Tensor, "frame row col"] | None
    frame_images: np.ndarray | None
    labels: dict = field(default_factory=dict)


@dataclass
class DirectionLens:
    """The logit lens of a feature's direction.

    Attributes:
        top_tokens, top_ids, top_logits: the `n` tokens it promotes most, best first.
        bottom_tokens, bottom_ids, bottom_logits: the `n` it suppresses most, most suppressed first.
        norm: how the direction was decoded (`NORM_NOTE`).
    """

    top_tokens: list[str]
    top_ids: list[int]
    top_logits: list[float]
    bottom_tokens: list[str]
    bottom_ids: list[int]
    bottom_logits: list[float]
    norm: str


@dataclass
class FeatureView:
    """What one feature does over an activation store.

    Attributes:
        feature: the feature's index.
        hook: the hook its activations were computed at.
        density: fraction of the hook's stored rows where it is > 0.
        n_rows: the hook's stored rows.
        n_active: rows where it is > 0.
        top: the top-activating samples, largest first.
        lens: the logit lens of its direction, or None (see `lens_note`).
        lens_note: how the lens was computed, or why there is none.
        kind: "sae" (activation `encode(x)[f]`) or "directions" (activation `x · D[f]`).
    """

    feature: int
    hook: str
    density: float
    n_rows: int
    n_active: int
    top: list[TopSample]
    lens: DirectionLens | None
    lens_note: str
    kind: str


def _width(encoder: SAE | Tensor) -> tuple[int, int]:
    """(d_sae, d_in) of an SAE or a direction matrix."""
    if isinstance(encoder, SAE):
        return encoder.cfg.d_sae, encoder.cfg.d_in
    if not isinstance(encoder, Tensor) or encoder.ndim != 2:
        shape = tuple(encoder.shape) if isinstance(encoder, Tensor) else type(encoder).__name__
        raise FeatureViewError(
            f"encoder must be a vlens.features.sae.SAE or a [d_sae, d_model] direction matrix, got {shape}"
        )
    return int(encoder.shape[0]), int(encoder.shape[1])


def decoder_directions(encoder: SAE | Tensor) -> Float[Tensor, "d_sae d_model"]:
    """Each feature's direction in the activation space: an SAE's `W_dec`, or the matrix itself."""
    _width(encoder)
    return cast(Tensor, encoder.W_dec) if isinstance(encoder, SAE) else encoder


def feature_activations(
    encoder: SAE | Tensor, acts: Float[Tensor, "n d"], features: Sequence[int] | None = None
) -> Float[Tensor, "n f"]:
    """The activations of `features` (default: all) at rows `acts`: `encode(acts)[:, f]` for an
    SAE, `acts @ D[f]` for a direction matrix.

    Raises:
        FeatureViewError: rows of another width than the encoder reads; a feature out of range.
    """
    d_sae, d_in = _width(encoder)
    if acts.ndim != 2 or acts.shape[1] != d_in:
        raise FeatureViewError(
            f"the encoder reads {d_in}-wide activations but the rows are {tuple(acts.shape)}: use an SAE or "
            "directions trained on this hook's width"
        )
    idx = list(range(d_sae)) if features is None else [as_index(f, "feature", d_sae, "feature index") for f in features]
    if isinstance(encoder, SAE):
        with torch.no_grad():
            return encoder.encode(acts.to(cast(Tensor, encoder.W_enc).device))[:, idx].float().cpu()
    return (acts.to(encoder.device, encoder.dtype) @ encoder[idx].T).float().cpu()


@torch.no_grad()
def direction_lens(
    model: Any, direction: Float[Tensor, " d_model"], n: int = 10, apply_norm: bool = True
) -> DirectionLens:
    """The tokens a residual-stream direction promotes and suppresses through the model's unembedding
    (after the final norm by default: see the module docstring).

    Raises:
        FeatureViewError: a direction of another width than the residual stream.
    """
    n = as_positive_int(n, "n_tokens")
    if direction.ndim != 1 or direction.shape[0] != model.cfg.d_model:
        raise FeatureViewError(
            f"the logit lens needs a direction of the residual stream's width {model.cfg.d_model}, got "
            f"{tuple(direction.shape)}"
        )
    x = direction.to(model.unembed.lm_head.weight.device, model.unembed.lm_head.weight.dtype)[None, None]
    if apply_norm:
        x = model.ln_final(x)
    logits = model.unembed(x)[0, 0].float().cpu()
    n = min(n, int(logits.shape[0]))
    top, bottom = logits.topk(n), (-logits).topk(n)

    def names(ids: Tensor) -> list[str]:
        if getattr(model, "processor", None) is None:
            return [str(i) for i in ids.tolist()]
        return [str(t) for t in model.tokenizer.convert_ids_to_tokens(ids.tolist())]

    return DirectionLens(
        names(top.indices),
        top.indices.tolist(),
        top.values.tolist(),
        names(bottom.indices),
        bottom.indices.tolist(),
        (-bottom.values).tolist(),
        NORM_NOTE[apply_norm],
    )


def _pick_hook(store: ActivationStore, encoder: SAE | Tensor, hook: str | None) -> str:
    if hook is not None:
        if hook not in store.hooks:
            raise FeatureViewError(f"hook={hook!r} is not in the store {store.dir}; it holds {store.hooks}")
        return hook
    named = encoder.cfg.hook_name if isinstance(encoder, SAE) else None
    if named in store.hooks:
        return str(named)
    if len(store.hooks) == 1:
        return store.hooks[0]
    raise FeatureViewError(
        f"hook=None: the store holds {store.hooks} and the encoder names "
        f"{'no hook' if named is None else repr(named) + ', not among them'}; pass hook="
    )


def _heatmap(summary: dict, act: Tensor, frame: Tensor, row: Tensor, col: Tensor) -> Tensor | None:
    grid = summary["layout"].get("grid")
    patch = (row >= 0) & (col >= 0) & (frame >= 0)
    if grid is None or not bool(patch.any()):
        return None
    n_frames = max(int(summary["layout"]["n_frames"]), int(frame[patch].max()) + 1)
    heat = torch.full((n_frames, int(grid[0]), int(grid[1])), float("nan"))
    heat[frame[patch], row[patch], col[patch]] = act[patch]
    return heat


def _frame_images(model: Any, sample: Any, store: ActivationStore, summary: dict) -> np.ndarray | None:
    from vlens.inputs.video import load_video

    if sample is None or sample.missing is not None:
        return None
    m = store.manifest
    try:
        sampled = load_video(
            sample.video,
            int(m.get("frames", summary["layout"]["n_frames"])),
            start=sample.start,
            end=sample.end,
            fps=sample.fps,
            allow_repeat=bool(m.get("allow_repeat", False)),
            sampling=getattr(model.family, "default_sampling", "centres"),
        )
    except ValueError:  # VideoError: the video is gone or unreadable now; the frame index is shown
        return None
    group = max(1, int(summary["layout"].get("frames_per_group") or 1))
    return sampled.frames[::group]


def feature_views(
    store: str | Path | ActivationStore,
    encoder: SAE | Tensor,
    features: int | Sequence[int],
    *,
    hook: str | None = None,
    group: str = "all",
    k: int = 8,
    model: Any = None,
    samples: Sequence[Any] | None = None,
    n_tokens: int = 10,
    apply_norm: bool = True,
    batch_size: int = 65536,
) -> list[FeatureView]:
    """Per feature: its top-`k` samples with heatmaps (and frames), density and logit lens.

    Args:
        store: an activation store (directory or `ActivationStore`).
        encoder: an SAE, or a `[d_sae, d_model]` direction matrix.
        features: feature index or indices (0..d_sae-1).
        hook: the store's hook to read (default: the SAE's own hook, or the store's only hook).
        group: the stored rows that count (`"video"`, `"last"`, `"video,last"`, ...; default every
            stored row): the density, the top samples and their peaks are over these rows only.
        k: how many top samples.
        model: the `HookedVideoLLM` the store was written by (checked): needed for the logit lens
            and for frame images.
        samples: the dataset the store was written from (`vlens.data.Sample`s, matched by id), for
            the frame images; needs `model`.
        n_tokens: tokens in each end of the logit lens.
        apply_norm: the logit lens through `ln_final` first (see the module docstring).
        batch_size: rows read at a time.

    Returns:
        One `FeatureView` per feature, in the order given.

    Raises:
        FeatureViewError: a feature out of range, an encoder whose width is not the hook's, a hook
            not in the store, `samples` without `model`. ActivationStoreError: a store written by
            another model (with `model`), or an incomplete one.
    """
    if not isinstance(store, ActivationStore):
        store = ActivationStore(store, model=model)
    elif model is not None:
        store.check_model(model)
    d_sae, d_in = _width(encoder)
    scalar = isinstance(features, int) or (isinstance(features, Tensor) and features.ndim == 0)
    feats = [features] if scalar else list(features)  # type: ignore[arg-type]
    if not feats:
        raise FeatureViewError("features=[]: give at least one feature index")
    feats = [as_index(f, "feature", d_sae, "feature index") for f in feats]
    k = as_positive_int(k, "k")
    if samples is not None and model is None:
        raise FeatureViewError("samples= needs model= too: the frames are sampled as the model's family samples them")
    hook = _pick_hook(store, encoder, hook)
    width = store.widths.get(hook)
    if width is not None and width != d_in:
        raise FeatureViewError(
            f"the encoder reads {d_in}-wide activations but {hook} is {width} wide in the store: "
            f"{'SAE' if isinstance(encoder, SAE) else 'direction matrix'} of d_in={d_in} does not fit this hook"
        )
    parts: dict[str, list[Tensor]] = {k_: [] for k_ in ("act", "sample", "position", "frame", "row", "col")}
    for b in store.batches(hook, batch_size=batch_size):
        try:
            b = b.where(group_mask(b, group))
        except ProbeError as e:
            raise FeatureViewError(str(e).replace("groups:", "group=", 1)) from None
        parts["act"].append(feature_activations(encoder, b.acts, feats))
        for name in ("sample", "position", "frame", "row", "col"):
            parts[name].append(getattr(b, name))
    acts: Tensor = torch.cat(parts["act"]) if parts["act"] else torch.zeros(0, len(feats))
    if not len(acts):
        raise FeatureViewError(
            f"group={group!r}: {store.dir} holds no such rows of {hook} (its positions: {store.manifest['positions']})"
        )
    meta: dict[str, Int[Tensor, " n"]] = {k_: torch.cat(v) for k_, v in parts.items() if k_ != "act"}
    n_samples = len(store.samples)
    by_id = {s.id: s for s in samples} if samples is not None else {}
    views = []
    for j, f in enumerate(feats):
        a = acts[:, j]
        peak = torch.full((n_samples,), -torch.inf).scatter_reduce(0, meta["sample"], a, "amax")
        order = sorted((s for s in range(n_samples) if torch.isfinite(peak[s])), key=lambda s: (-float(peak[s]), s))
        top = []
        for s in order[:k]:
            rows = meta["sample"] == s
            ra = a[rows]
            at = int(ra.argmax())
            summary = store.samples[s]
            top.append(
                TopSample(
                    sample=s,
                    id=str(summary["sample"]),
                    activation=float(ra[at]),
                    position=int(meta["position"][rows][at]),
                    frame=int(meta["frame"][rows][at]),
                    heatmap=_heatmap(summary, ra, meta["frame"][rows], meta["row"][rows], meta["col"][rows]),
                    frame_images=_frame_images(model, by_id.get(summary["sample"]), store, summary)
                    if samples is not None
                    else None,
                    labels=dict(summary.get("labels", {})),
                )
            )
        lens, note = None, "no model given: no logit lens"
        if model is not None:
            if d_in != model.cfg.d_model:
                note = f"no logit lens: {hook} is {d_in} wide, the residual stream {model.cfg.d_model}"
            else:
                lens = direction_lens(model, decoder_directions(encoder)[f].detach(), n_tokens, apply_norm)
                note = lens.norm
        n_active = int((a > 0).sum())
        views.append(
            FeatureView(
                feature=f,
                hook=hook,
                density=n_active / len(a),
                n_rows=len(a),
                n_active=n_active,
                top=top,
                lens=lens,
                lens_note=note,
                kind="sae" if isinstance(encoder, SAE) else "directions",
            )
        )
    return views
