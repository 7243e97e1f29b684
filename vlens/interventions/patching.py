"""Activation patching between a clean and a corrupted video question.

Knockouts say which attention *edges* matter; patching says which *activations* carry the answer:
run the corrupted input, overwrite one activation (a site in a layer, at a group of positions) with
its value from the clean run, and see how much of the clean answer comes back.

    corrupted = corrupt(model, clean, "shuffle")                # or reverse / replace / other video / question
    result = patch_sweep(model, clean, corrupted, letter_ids, answer, site="resid_pre")
    result.effect      # [layer, group]  normalised logit difference: 0 = corrupted, 1 = clean
    result.groups      # ["frame 0", …, "video", "question", "final"]

Position groups come from the layout: each frame's video positions, all vision positions, the
question text, and the final position. Sites: `resid_pre`, `attn_out`, `mlp_out` (hook names
`blocks.{l}.hook_<site>`) and `z` (per head: `blocks.{l}.attn.hook_z`, result [layer, head, group]).

Sweeps are batched, one (layer, group[, head]) patch per batch row, and skip what cannot change:
the corrupted run is cached once, and a batch starts at its lowest patched layer from the
corrupted residual stream there (the vision tower and the blocks below run once, not per patch). `transformer_lens.patching` works on HookedVideoLLM
too (VideoInputs has the `.shape` it reads), per position; tests compare against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from vlens.arguments import ArgumentError, as_index, as_layers, as_positive_int, as_token_ids
from vlens.inputs.layout import VideoLayout
from vlens.inputs.sampling import SampledVideo

SITES = ("resid_pre", "attn_out", "mlp_out", "z")
CORRUPTIONS = ("shuffle", "reverse", "replace", "video", "question")


class PatchingError(ValueError):
    """Clean and corrupted inputs cannot be patched into each other."""


def position_groups(layout: VideoLayout) -> dict[str, Tensor]:
    """Named groups of positions: 'frame i' for each frame, 'video' (all vision positions),
    'question' (text after the video, without the final position), 'final'.

    Args:
        layout: the layout of one sequence.

    Returns:
        `{name: positions}`, each a LongTensor `[n]` of sequence positions; empty groups are left out.
    """
    groups = {f"frame {f}": layout.frame_positions(f) for f in range(layout.n_frames)}
    groups["video"] = layout.positions("video", "separator")
    n = len(layout)
    text = layout.positions("text")
    groups["question"] = text[text < n - 1]
    groups["final"] = torch.tensor([n - 1])
    return {k: v for k, v in groups.items() if v.numel()}


def check_same_layout(clean, corrupted) -> None:
    """Check that two inputs can be patched into each other, position for position.

    Args:
        clean: `VideoInputs` of the clean run.
        corrupted: `VideoInputs` of the corrupted run.

    Raises:
        PatchingError: a row's segments or frame labels differ, or the batch sizes differ.
    """
    for i, (a, b) in enumerate(zip(clean.layouts, corrupted.layouts)):
        if a.segment != b.segment or not torch.equal(a.frame, b.frame):
            raise PatchingError(
                f"row {i}: clean and corrupted inputs have different layouts ({a} vs {b}); patching needs the "
                "same frame count, frame size and token count — corrupt the video or reword the question "
                "keeping its length"
            )
    if clean.batch_size != corrupted.batch_size:
        raise PatchingError(f"clean has {clean.batch_size} rows, corrupted {corrupted.batch_size}")


def corrupt(model, clean, kind: str, *, frame: int = 0, other=None, question: str | None = None, seed: int = 0):
    """Corrupted inputs for a clean sample (batch of one): frames `shuffle`d (seeded) or
    `reverse`d, one `replace`d (frame `frame` by the first frame of `other`, or by black), a
    different `video` (`other`, same question), or a different `question` (same token count).

    Args:
        model: the `HookedVideoLLM` that built `clean`.
        clean: `VideoInputs` of one sample, carrying its sampled video.
        kind: one of `shuffle`, `reverse`, `replace`, `video`, `question`.
        frame: `replace`: the sampled frame to overwrite.
        other: `replace` / `video`: a `SampledVideo` or anything `load_video` reads; frames are
            resized to the clean frames' size.
        question: `question`: the new question text (it must tokenize to the same length).
        seed: `shuffle`: the permutation's seed (never the identity for more than one frame).

    Returns:
        `VideoInputs` with the same layout as `clean`.

    Raises:
        PatchingError: an unknown kind, a batch of more than one, a missing `other`/`question`, a
            frame out of range, or a corrupted input whose layout differs from the clean one.
    """
    if kind not in CORRUPTIONS:
        raise PatchingError(f"unknown corruption {kind!r}; choose from {', '.join(CORRUPTIONS)}")
    if clean.batch_size != 1:
        raise PatchingError("corrupt() takes one clean sample (batch of one)")
    video: SampledVideo = clean.videos[0]
    frames = video.frames.copy()
    prompt = clean.prompts[0]
    if kind == "shuffle":
        order = np.random.default_rng(seed).permutation(len(frames))
        if len(frames) > 1:
            while (order == np.arange(len(frames))).all():
                order = np.random.default_rng(seed := seed + 1).permutation(len(frames))
        frames = frames[order]
    elif kind == "reverse":
        frames = frames[::-1].copy()
    elif kind == "replace":
        if not 0 <= frame < len(frames):
            raise PatchingError(f"frame {frame} out of range: the clip has {len(frames)} sampled frames")
        replacement = np.zeros_like(frames[0]) if other is None else _frames_of(other, len(frames))[0]
        frames[frame] = _resize_like(replacement, frames[0])
    elif kind == "video":
        if other is None:
            raise PatchingError("corruption 'video' needs other= (a video with the same number of frames)")
        frames = np.stack([_resize_like(f, frames[0]) for f in _frames_of(other, len(frames))])
    else:
        if question is None:
            raise PatchingError("corruption 'question' needs question= (a question with the same token count)")
        new = model.processor.apply_chat_template(
            model.family.messages(question, None), add_generation_prompt=True, tokenize=False
        )
        prompt = new
    corrupted = model.inputs_from_prompts(
        [prompt], [SampledVideo(frames, video.indices, video.timestamps, video.fps, f"{kind}:{video.source}")]
    )
    check_same_layout(clean, corrupted)
    return corrupted


def _frames_of(other, n: int) -> np.ndarray:
    from vlens.inputs.video import load_video

    return other.frames if isinstance(other, SampledVideo) else load_video(other, n).frames


def _resize_like(frame: np.ndarray, like: np.ndarray) -> np.ndarray:
    if frame.shape == like.shape:
        return frame
    from PIL import Image

    return np.asarray(Image.fromarray(frame).resize((like.shape[1], like.shape[0])))


def logit_diff(logits: Float[Tensor, "batch d_vocab"], letter_ids: Sequence[int], answer: int) -> Tensor:
    """Correct option letter's logit minus the best wrong one, per row.

    Args:
        logits: logits at the answer position, `[batch, d_vocab]`.
        letter_ids: token id of each option letter, in option order.
        answer: index of the correct option.

    Returns:
        `[batch]` logit differences.

    Raises:
        ArgumentError: logits not `[batch, d_vocab]`, a letter id outside the vocabulary, or an
            answer outside `0..len(letter_ids)-1` (negative answers are refused, not wrapped).
    """
    if not isinstance(logits, Tensor) or logits.ndim != 2:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ArgumentError(f"logits must be a [batch, d_vocab] tensor, got {shape}")
    letter_ids = as_token_ids(letter_ids, "letter_ids", int(logits.shape[-1]))
    answer = as_index(answer, "answer", len(letter_ids), what="option index")
    letters = logits[:, letter_ids].float()
    wrong = torch.cat([letters[:, :answer], letters[:, answer + 1 :]], dim=1)
    return letters[:, answer] - wrong.max(dim=1).values


@dataclass
class PatchingResult:
    """What `patch_sweep` measured.

    Attributes:
        effect: `[layer, group]` (site `z`: `[layer, head, group]`) normalised logit difference,
            (patched − corrupted) / (clean − corrupted): 0 = the corrupted answer, 1 = the clean one;
            NaN everywhere when clean and corrupted give the same difference.
        raw: the patched runs' logit differences, same shape.
        clean_diff: logit difference of the clean run.
        corrupted_diff: logit difference of the corrupted run.
        groups: names of the position groups (the last axis).
        site: the patched site.
        layers: the patched layers (the first axis).
    """

    effect: Tensor  # [layer, group] or [layer, head, group]: normalised logit difference
    raw: Tensor  # the patched runs' logit differences, same shape
    clean_diff: float
    corrupted_diff: float
    groups: list[str]
    site: str
    layers: list[int]


@torch.no_grad()
def patch_sweep(
    model,
    clean,
    corrupted,
    letter_ids: Sequence[int],
    answer: int,
    *,
    site: str = "resid_pre",
    layers: Sequence[int] | None = None,
    groups: dict[str, Tensor] | None = None,
    batch_size: int = 16,
) -> PatchingResult:
    """Patch the clean `site` activation into the corrupted run at every (layer, group[, head]).

    Args:
        model: a `HookedVideoLLM`.
        clean: `VideoInputs` of one sample.
        corrupted: `VideoInputs` with the same layout (see `corrupt`).
        letter_ids: token id of each option letter.
        answer: index of the correct option.
        site: `resid_pre`, `attn_out`, `mlp_out` (hook `blocks.{l}.hook_<site>`) or `z`
            (`blocks.{l}.attn.hook_z`, one patch per head).
        layers: layers to patch (default: all).
        groups: `{name: positions}` (default: `position_groups(clean.layout)`).
        batch_size: patched runs per forward.

    Returns:
        `PatchingResult` with effect `[layer, group]` (`z`: `[layer, head, group]`).

    Raises:
        PatchingError: an unknown site, a batch of more than one, or different layouts.
    """
    if site not in SITES:
        raise PatchingError(f"unknown site {site!r}; sites: {', '.join(SITES)}")
    check_same_layout(clean, corrupted)
    if clean.batch_size != 1:
        raise PatchingError("patch_sweep takes one sample (batch of one)")
    L = model.cfg.n_layers
    letter_ids = as_token_ids(letter_ids, "letter_ids", model.cfg.d_vocab)
    answer = as_index(answer, "answer", len(letter_ids), what="option index")
    layers = as_layers(layers, "layers", L)
    batch_size = as_positive_int(batch_size, "batch_size")
    groups = position_groups(clean.layout) if groups is None else check_groups(groups, clean.shape[-1])
    hook_name = (lambda l: f"blocks.{l}.attn.hook_z") if site == "z" else (lambda l: f"blocks.{l}.hook_{site}")
    names = {hook_name(l) for l in layers}
    starts = {f"blocks.{l}.hook_resid_pre" for l in layers}
    clean_logits, cache = model.run_with_cache(
        clean, names_filter=lambda n: n in names, logits_to_keep=1, return_cache_object=False
    )
    n_deep = model.cfg.deepstack_layers  # Qwen3-VL: runs resumed below it need the DeepStack additions
    starts |= {f"blocks.{l}.hook_deepstack" for l in range(min(layers, default=n_deep), n_deep)}
    corr_logits, corr_cache = model.run_with_cache(
        corrupted, names_filter=lambda n: n in starts, logits_to_keep=1, return_cache_object=False
    )
    clean_diff = float(logit_diff(clean_logits[:, -1], letter_ids, answer)[0])
    corr_diff = float(logit_diff(corr_logits[:, -1], letter_ids, answer)[0])
    heads = range(model.cfg.n_heads) if site == "z" else [None]
    jobs = [(l, h, g) for l in layers for h in heads for g in groups]
    # Blocks below the patched layer see only the corrupted input: each batch starts at its lowest
    # patched layer from the corrupted residual there (the embedding and vision tower run once).
    positions = model.position_ids(corrupted)
    diffs = []
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        B = len(chunk)

        def make_hook(layer, chunk=chunk):
            rows = [(b, h, groups[g]) for b, (l, h, g) in enumerate(chunk) if l == layer]

            def hook(act, hook):
                for b, h, pos in rows:
                    if h is None:
                        act[b, pos] = cache[hook_name(layer)][0, pos]
                    else:
                        act[b, pos, h] = cache[hook_name(layer)][0, pos, h]
                return act

            return hook

        fwd = [(hook_name(l), make_hook(l)) for l in sorted({l for l, _, _ in chunk})]
        step = {k: v.expand(B, -1) for k, v in corrupted.items() if k in ("input_ids", "attention_mask")}
        step["position_ids"] = positions
        s = min(l for l, _, _ in chunk)
        resid = corr_cache[f"blocks.{s}.hook_resid_pre"].repeat(B, 1, 1)  # a copy per row: hooks write in place
        deep = {l: corr_cache[f"blocks.{l}.hook_deepstack"].expand(B, -1, -1) for l in range(s, n_deep)}
        logits = model.run_with_hooks(
            step, fwd_hooks=fwd, start_at_layer=s, resid=resid, logits_to_keep=1, deepstack_adds=deep
        )
        diffs.append(logit_diff(logits[:, -1], letter_ids, answer))
    raw = torch.cat(diffs)
    shape = (len(layers), len(groups)) if site != "z" else (len(layers), model.cfg.n_heads, len(groups))
    raw = raw.view(shape)
    denom = clean_diff - corr_diff
    effect = (raw - corr_diff) / denom if abs(denom) > 1e-12 else torch.full_like(raw, float("nan"))
    return PatchingResult(effect, raw, clean_diff, corr_diff, list(groups), site, layers)


@torch.no_grad()
def check_groups(groups: object, seq_len: int) -> dict[str, Tensor]:
    """`groups` as `{name: LongTensor [n]}` with every position in `0..seq_len-1`.

    Raises:
        ArgumentError: not a dict of names to non-empty 1-d integer position tensors (or lists),
            or a position out of range (negative positions are refused, not wrapped)."""
    if not isinstance(groups, dict) or not groups:
        raise ArgumentError(
            f"groups must be a non-empty dict {{name: positions}} (or None for position_groups(layout)), got {groups!r}"
        )
    checked = {}
    for name, pos in groups.items():
        if isinstance(pos, Tensor):
            if pos.is_floating_point() or pos.dtype == torch.bool or pos.ndim != 1:
                raise ArgumentError(
                    f"groups[{name!r}] must be a 1-d integer tensor of positions, got {pos.dtype} of shape {tuple(pos.shape)}"
                )
            items: list = pos.tolist()
        elif isinstance(pos, (list, tuple, range)):
            items = list(pos)
        else:
            raise ArgumentError(f"groups[{name!r}] must be a tensor or list of positions, got {type(pos).__name__}")
        if not items:
            raise ArgumentError(f"groups[{name!r}] holds no position; give at least one or leave the group out")
        idx = [as_index(p, f"groups[{name!r}][{i}]", seq_len, what="sequence position") for i, p in enumerate(items)]
        checked[name] = pos if isinstance(pos, Tensor) else torch.tensor(idx, dtype=torch.long)
    return checked


def patch_naive(model, clean, corrupted, letter_ids, answer, *, site="resid_pre", layers=None, groups=None) -> Tensor:
    """Reference loop: one forward per (layer, group) — what research code does. Raw diffs.

    Args:
        model: a `HookedVideoLLM`.
        clean: clean `VideoInputs`.
        corrupted: corrupted `VideoInputs`, same layout.
        letter_ids: token id of each option letter.
        answer: index of the correct option.
        site: as in `patch_sweep` (heads are not split here).
        layers: layers to patch (default: all).
        groups: `{name: positions}` (default: `position_groups(clean.layout)`).

    Returns:
        `[layer, group]` raw logit differences of the patched runs (not normalised).
    """
    L = model.cfg.n_layers
    layers = list(range(L)) if layers is None else list(layers)
    groups = position_groups(clean.layout) if groups is None else groups
    name = (lambda l: f"blocks.{l}.attn.hook_z") if site == "z" else (lambda l: f"blocks.{l}.hook_{site}")
    _, cache = model.run_with_cache(
        clean, names_filter=lambda n: n in {name(l) for l in layers}, return_cache_object=False
    )
    out = torch.zeros(len(layers), len(groups))
    for i, l in enumerate(layers):
        for j, pos in enumerate(groups.values()):

            def hook(act, hook, pos=pos, l=l):
                act[:, pos] = cache[name(l)][:, pos]
                return act

            logits = model.run_with_hooks(corrupted, fwd_hooks=[(name(l), hook)])
            out[i, j] = logit_diff(logits[:, -1], letter_ids, answer)[0]
    return out
