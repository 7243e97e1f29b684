"""The logit lens of the vision positions: which words a visual token decodes to, layer by layer.

    lm = vision_token_lens(model, inputs)        # LM layers: blocks.{l}.hook_resid_pre at the vision positions
    lm.top_ids        # [layer + 1, n_vision, k]  the k most likely tokens of each vision position
    lm.top_probs      # [layer + 1, n_vision, k]
    vt = tower_lens(model, inputs)               # tower layers, each through the rest of the vision path
    vt.top_ids        # [tower_layer, n_vision, k]

`vision_token_lens` decodes the residual stream at the vision positions (video tokens and
separators, in sequence order) entering every LM block and after the last one, with the final
norm and the unembedding (`apply_norm=False`: the unembedding alone) — the lens of
vlens.interventions.lens, at every vision position instead of the answer's. It keeps only the
top k per position, computed in chunks, so a long video's [n_vision, d_vocab] logits are never
held for all layers at once.

`tower_lens` asks what the language model would read if the vision tower stopped after block l:
blocks l+1… pass their input through unchanged (`vision.blocks.{m}.hook_resid_post` := its
`hook_resid_pre`), so the checkpoint's own post-norm, feature-layer choice, projector/merger,
pooling and placement run on block l's output (vlens.model.vision_hooks), and the features placed at
the vision positions (`hook_video_features`) are decoded like the embedding layer of the LM lens.
Its last row equals `vision_token_lens`'s first (tested). One vision-path run per tower layer; the
LM does not run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor


@dataclass
class VisionLensResult:
    """The top-k decoded tokens of every vision position, per layer.

    Attributes:
        top_ids: `[layer, n_vision, k]` token ids, most likely first.
        top_probs: `[layer, n_vision, k]` their probabilities under the full vocabulary.
        labels: one per layer (`"0_pre"` … `"final"` for the LM, `"tower 0"` … for the tower).
        positions: `[n_vision]` the sequence positions decoded (row `row`).
        frame: `[n_vision]` each position's frame (−1 for separators), from the layout.
    """

    top_ids: Int[Tensor, "layer n_vision k"]
    top_probs: Float[Tensor, "layer n_vision k"]
    labels: list[str]
    positions: Tensor
    frame: Tensor

    def words(self, tokenizer, layer: int) -> list[str]:
        """The top-1 word of every vision position at `layer` (an index into `labels`)."""
        return [tokenizer.decode([int(i)]) for i in self.top_ids[layer, :, 0]]

    def agreement(self) -> Float[Tensor, " layer"]:
        """Fraction of vision positions whose top-1 token at each layer equals the last layer's."""
        return (self.top_ids[:, :, 0] == self.top_ids[-1:, :, 0]).float().mean(-1)


def _check(model, inputs, k: int, row: int) -> None:
    layouts = getattr(inputs, "layouts", None)
    if not layouts:
        raise ValueError("inputs have no layout: build them with model.to_inputs or model.inputs_from_hf")
    if not 0 <= row < len(layouts):
        raise ValueError(f"row={row} is outside the batch of {len(layouts)} rows")
    if not 1 <= k <= model.cfg.d_vocab:
        raise ValueError(f"k={k} must be between 1 and d_vocab={model.cfg.d_vocab}")
    if not bool(layouts[row].is_vision.any()):
        raise ValueError(f"row {row} has no vision positions to decode")


def _decode(model, x: Float[Tensor, "n d_model"], k: int, apply_norm: bool, chunk: int) -> tuple[Tensor, Tensor]:
    ids, probs = [], []
    for part in x.split(chunk):
        h = model.ln_final(part[None])[0] if apply_norm else part
        p = model.unembed(h[None])[0].float().softmax(-1)
        top = p.topk(k, dim=-1)
        ids.append(top.indices.cpu())
        probs.append(top.values.cpu())
    return torch.cat(ids), torch.cat(probs)


@torch.no_grad()
def vision_token_lens(
    model, inputs, *, k: int = 5, apply_norm: bool = True, row: int = 0, chunk: int = 512
) -> VisionLensResult:
    """The logit lens at every vision position, after every LM layer.

    Args:
        model: a `HookedVideoLLM`.
        inputs: `VideoInputs` (with layouts).
        k: how many tokens to keep per position and layer.
        apply_norm: the final norm before the unembedding (default), or the unembedding alone.
        row: the batch row.
        chunk: positions decoded at a time (bounds the [chunk, d_vocab] logits held).

    Returns:
        `VisionLensResult` with `n_layers + 1` layers (`0_pre` … `{L-1}_pre`, `final`).

    Raises:
        ValueError: no layouts, a row outside the batch, a row without vision positions, or k
            outside 1..d_vocab.
    """
    _check(model, inputs, k, row)
    layout = inputs.layouts[row]
    where = layout.is_vision.nonzero().flatten()
    L = model.cfg.n_layers
    kept: dict[int, tuple[Tensor, Tensor]] = {}

    def grab(resid, hook):
        l = hook.layer() if hook.name.endswith("resid_pre") else L
        kept[l] = _decode(model, resid[row, where.to(resid.device)], k, apply_norm, chunk)

    hooks = [(f"blocks.{l}.hook_resid_pre", grab) for l in range(L)] + [(f"blocks.{L - 1}.hook_resid_post", grab)]
    model.run_with_hooks(inputs, fwd_hooks=hooks, return_type=None)
    ids = torch.stack([kept[l][0] for l in range(L + 1)])
    probs = torch.stack([kept[l][1] for l in range(L + 1)])
    return VisionLensResult(ids, probs, [f"{l}_pre" for l in range(L)] + ["final"], where, layout.frame[where])


@torch.no_grad()
def tower_lens(
    model, inputs, *, k: int = 5, apply_norm: bool = True, row: int = 0, chunk: int = 512
) -> VisionLensResult:
    """The logit lens of the vision tower's layers, each through the rest of the vision path.

    Args:
        model: a `HookedVideoLLM` whose tower has hook points (every supported family).
        inputs: `VideoInputs` (with layouts).
        k: how many tokens to keep per position and layer.
        apply_norm: the final norm before the unembedding (default), or the unembedding alone.
        row: the batch row.
        chunk: positions decoded at a time.

    Returns:
        `VisionLensResult` with one layer per tower block (`tower 0` … `tower {T-1}`).

    Raises:
        ValueError: as `vision_token_lens`, or a model without a hookable tower.
    """
    _check(model, inputs, k, row)
    T = len(model.vision_hooks.blocks)
    if T == 0:
        raise ValueError(f"the {model.family.name} vision path has no hookable tower blocks")
    layout = inputs.layouts[row]
    where = layout.is_vision.nonzero().flatten()
    ids, probs = [], []
    for l in range(T):
        x = _embedded_with_tower_cut(model, inputs, l)[row, where.to(model.cfg.device)]
        i, p = _decode(model, x, k, apply_norm, chunk)
        ids.append(i)
        probs.append(p)
    return VisionLensResult(
        torch.stack(ids), torch.stack(probs), [f"tower {l}" for l in range(T)], where, layout.frame[where]
    )


def _embedded_with_tower_cut(model, inputs, l: int) -> Float[Tensor, "batch pos d_model"]:
    """The LM's input embeddings when the tower's blocks after `l` pass their input on unchanged."""
    T = len(model.vision_hooks.blocks)
    inputs_of: dict[int, Tensor] = {}

    def keep_in(t, hook):
        inputs_of[_tower_layer(hook.name)] = t
        return t

    def skip(t, hook):
        return inputs_of[_tower_layer(hook.name)]

    hooks = [(f"vision.blocks.{m}.hook_resid_pre", keep_in) for m in range(l + 1, T)]
    hooks += [(f"vision.blocks.{m}.hook_resid_post", skip) for m in range(l + 1, T)]
    with model.hooks(fwd_hooks=hooks):
        return model.embed_inputs(model._as_inputs(inputs))


def _tower_layer(name: str) -> int:
    return int(name.split(".")[2])  # vision.blocks.{l}.… (HookPoint.layer() reads blocks.{l}.… only)
