"""map-the-flow's knockout protocols as named `ko.Edges` specs.

map-the-flow ("Map the Flow: Revealing Hidden Pathways of Information in VideoLLMs",
github byminji/map-the-flow) knocks out one query ← key pathway at a time in a centred window
of layers and reads accuracy and the change in p(answer). Each of its protocols is one spec here
(docs/flow.md has the side-by-side table):

| name                   | spec                                                          |
|------------------------|---------------------------------------------------------------|
| `cross_frame`          | `ko.VT()` (video of frame i ← video of frames j ≠ i)          |
| `question<-video`      | `Edges("question", "vision")`                                 |
| `last<-video`          | `Edges("last", "vision")`                                     |
| `last<-question`       | `Edges("last", "question")`                                   |
| `last<-last`           | `Edges("last", "last", diagonal=True)` (the last position's self-edge) |
| `last<-options`        | `Edges("last", "option")`                                     |
| `true_option<-video`   | `Edges(option(correct=True), "vision")`                       |
| `true_option<-question`| `Edges(option(correct=True), "question")`                     |
| `effective_pathway`    | `keep_only(video←video with diagonal, question←video, last←question, last←last)` |

"video" keys are `vision` positions: on LLaVA-OneVision that includes the image-newline
separator after the frames (map-the-flow's video span); `Edges(..., "video")` leaves it out.
The roles come from `vlens.roles.with_roles` (the `true_option` specs need the answer).
"""

from __future__ import annotations

import torch
from jaxtyping import Bool
from torch import Tensor

from vlens.knockout import VT, Edges, Spec
from vlens.layout import VideoLayout
from vlens.positions import option


class KeepOnly(Spec):
    """Remove every edge (the diagonal included) except those of `keep`: the complement of a spec.

    Rows whose kept edges are all gone get attention output 0 (see `ko.Edges`).

    Args:
        keep: the edges to keep (any spec; give the diagonal explicitly with `diagonal=True`).
    """

    def __init__(self, keep: Spec):
        if not isinstance(keep, Spec):
            raise TypeError(f"keep_only() takes a knockout spec (e.g. ko.Edges(...)), got {keep!r}")
        self.keep = keep
        self.label = f"KeepOnly({keep.label})"

    def blocked(self, layout: VideoLayout) -> Bool[Tensor, "q k"]:
        n = len(layout)
        real = ~layout.mask("pad")  # pad rows/keys are already masked; leave them alone
        causal = torch.ones(n, n, dtype=torch.bool).tril() & real[:, None] & real[None, :]
        return causal & ~self.keep.blocked(layout)


def keep_only(*keep: Spec) -> KeepOnly:
    """Remove everything but the union of `keep` (map-the-flow's effective-pathway runs)."""
    if not keep:
        raise TypeError("keep_only() needs at least one spec to keep")
    spec = keep[0]
    for s in keep[1:]:
        spec = spec | s
    return KeepOnly(spec)


def flow_specs() -> dict[str, Spec]:
    """map-the-flow's protocols by name (see the module table), as knockout specs.

    Returns:
        name → spec; apply with `spec.hooks(inputs, layers=ko.window(x, 9, align="center"))` on
        inputs with roles (`vlens.roles.with_roles`).
    """
    true = option(correct=True)
    return {
        "cross_frame": VT(),
        "question<-video": Edges("question", "vision", name="question←video"),
        "last<-video": Edges("last", "vision", name="last←video"),
        "last<-question": Edges("last", "question", name="last←question"),
        "last<-last": Edges("last", "last", diagonal=True, name="last←last"),
        "last<-options": Edges("last", "option", name="last←options"),
        "true_option<-video": Edges(true, "vision", name="true option←video"),
        "true_option<-question": Edges(true, "question", name="true option←question"),
        "effective_pathway": keep_only(
            Edges("video", "video", diagonal=True),
            Edges("question", "vision"),
            Edges("last", "question"),
            Edges("last", "last", diagonal=True),
        ),
    }


__all__ = ["KeepOnly", "flow_specs", "keep_only"]


# ------------------------------------------------------------------------------------------------
# Attention flow: where `last` and `question` read from, per layer
# ------------------------------------------------------------------------------------------------
def key_groups(layout: VideoLayout) -> tuple[list[str], list[int]]:
    """The group of every key position: `frame i` for video positions, else the text role, else
    the segment (`separator`, `system`, `pad`, ...).

    Returns:
        `(names, index)`: the group names in first-seen order and each position's group index.
    """
    names: list[str] = []
    index = []
    for i, seg in enumerate(layout.segment):
        g = f"frame {int(layout.frame[i])}" if seg == "video" else (layout.role[i] or seg)
        if g not in names:
            names.append(g)
        index.append(names.index(g))
    return names, index


def attention_flow(model, inputs, sources: tuple[str, ...] = ("last", "question"), fwd_hooks=()):
    """Attention mass from each source role to each key group (frame or role), per layer.

    Reduced inside each layer's `hook_pattern` hook (the N×N pattern is never kept): for a
    source, the mass is the pattern summed over the keys of a group, averaged over heads and over
    the source's positions.

    Args:
        model: a HookedVideoLLM.
        inputs: VideoInputs of one row, with roles (`vlens.roles.with_roles`).
        sources: role names (or any selector) whose attention is measured.
        fwd_hooks: extra hooks for the same forward (e.g. a knockout, to see the flow under it).

    Returns:
        `(groups, mass)`: group names and `mass` `[n_layers, n_sources, n_groups]` (fp32); each
        source's row sums to 1 in every layer (0 where a knockout emptied its rows).

    Raises:
        ValueError: a batch of more than one row, or a source with no positions.
    """
    from vlens.positions import as_positions

    if len(inputs.layouts) != 1:
        raise ValueError(f"attention_flow takes one row, got {len(inputs.layouts)}; index the batch first")
    layout = inputs.layout
    names, index = key_groups(layout)
    onehot = torch.zeros(len(layout), len(names))
    onehot[torch.arange(len(layout)), torch.tensor(index)] = 1.0
    rows = []
    for s in sources:
        r = as_positions(s)(layout)
        if not r.any():
            raise ValueError(f"source {s!r} has no positions in this layout (roles derived? see vlens.roles.with_roles)")
        rows.append(r)
    out = torch.zeros(model.cfg.n_layers, len(sources), len(names))

    def reduce(pattern, hook):
        p = pattern[0].float().mean(0)  # [q, k], heads averaged
        for j, r in enumerate(rows):
            out[hook.layer(), j] = (p[r.to(p.device)].mean(0) @ onehot.to(p.device)).cpu()
        return pattern

    hooks = list(fwd_hooks) + [(lambda n: n.endswith("attn.hook_pattern"), reduce)]
    with torch.no_grad():
        model.run_with_hooks(inputs, fwd_hooks=hooks)
    return names, out
