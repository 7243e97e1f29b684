"""map-the-flow's knockout protocols as named `ko.Edges` specs, and its effective pathway.

map-the-flow ("Map the Flow: Revealing Hidden Pathways of Information in VideoLLMs",
github byminji/map-the-flow) knocks out one query ← key pathway at a time in a centred window
of layers (analysis/information_flow_analysis.py: `--window 9 --window_style center`, the window
clipped at the model's ends) and reads accuracy and the change in p(answer). Each of its pathways
is one spec here, under the target (`--target`) that runs it (docs/flow.md has the side-by-side
table):

| name                       | map-the-flow (`--target`: `block_desc`)                 | spec |
|----------------------------|---------------------------------------------------------|------|
| `cross_frame`              | cross-frame: "No cross-frame interactions"              | `ko.VT()` |
| `question+options<-video`  | vql-to-ql: "Video -/-> Question"                        | `Edges(("question", "option"), "vision")` |
| `last<-video`              | vql-to-ql: "Video -/-> Last"                            | `Edges("last", "vision")` |
| `last<-question+options`   | vql-to-ql: "Question -/-> Last"                         | `Edges("last", ("question", "option"))` |
| `last<-last`               | vql-to-ql: "Last -/-> Last"                             | `Edges("last", "last", diagonal=True)` |
| `last<-question`           | question-and-options-to-last: "Non-option question -/-> Last" | `Edges("last", "question")` |
| `last<-true_option`        | question-and-options-to-last: "True option -/-> Last"   | `Edges("last", option(correct=True))` |
| `last<-false_options`      | question-and-options-to-last: "False option -/-> Last"  | `Edges("last", option(correct=False))` |
| `question<-video`          | vq-to-true-opt: "Video -/-> Non-option question"        | `Edges("question", "vision")` |
| `true_option<-question`    | vq-to-true-opt: "Non-option question -/-> True option"  | `Edges(option(correct=True), "question")` |
| `true_option<-video`       | vq-to-true-opt: "Video -/-> True option"                | `Edges(option(correct=True), "vision")` |
| `last<-options`            | (vlens: true and false options together)                | `Edges("last", "option")` |

map-the-flow's "question" is its dataset's question *with* the option lines (mvbench
`qa_template`: "Question: …\nOptions:\n(A) …"), hence `question+options`; vlens's `question` role
is the question text alone, map-the-flow's "non-option question". "video" keys are `vision`
positions: on LLaVA-OneVision that includes the image-newline separator after the frames
(map-the-flow's video span is every position the processor inserted for the clip).

The effective pathway (analysis/effective_pathway_analysis.py) is not a window sweep: it blocks
seven pathways, each in a fixed set of layers, all at once (`effective_pathway`). The roles come
from `vlens.inputs.roles.with_roles` (the option specs need the answer).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from vlens.arguments import ArgumentError
from vlens.inputs.layout import VideoLayout
from vlens.inputs.positions import option
from vlens.interventions.knockout import (
    VT,
    Edges,
    KeepOnly,
    KnockoutError,
    LayerSelection,
    Spec,
    keep_only,
    layers,
)

QUESTION_SPAN = ("question", "option")  # map-the-flow's "question": the question and its option lines


def flow_specs() -> dict[str, Spec]:
    """map-the-flow's pathways by name (see the module table), as knockout specs.

    Returns:
        name → spec; apply with `spec.hooks(inputs, layers=flow_window(l, 9, n_layers))` on inputs
        with roles (`vlens.inputs.roles.with_roles`).
    """
    true, false = option(correct=True), option(correct=False)
    return {
        "cross_frame": VT(),
        "question+options<-video": Edges(QUESTION_SPAN, "vision", name="question+options←video"),
        "last<-video": Edges("last", "vision", name="last←video"),
        "last<-question+options": Edges("last", QUESTION_SPAN, name="last←question+options"),
        "last<-last": Edges("last", "last", diagonal=True, name="last←last"),
        "last<-question": Edges("last", "question", name="last←question"),
        "last<-true_option": Edges("last", true, name="last←true option"),
        "last<-false_options": Edges("last", false, name="last←false options"),
        "question<-video": Edges("question", "vision", name="question←video"),
        "true_option<-question": Edges(true, "question", name="true option←question"),
        "true_option<-video": Edges(true, "vision", name="true option←video"),
        "last<-options": Edges("last", "option", name="last←options"),
    }


# map-the-flow's `--target` groups (information_flow_analysis.py), by the vlens names of their pathways
TARGETS: dict[str, tuple[str, ...]] = {
    "cross-frame": ("cross_frame",),
    "vql-to-ql": ("question+options<-video", "last<-video", "last<-question+options", "last<-last"),
    "question-and-options-to-last": ("last<-question", "last<-true_option", "last<-false_options"),
    "vq-to-true-opt": ("question<-video", "true_option<-question", "true_option<-video"),
}
NEEDS_ANSWER = ("last<-true_option", "last<-false_options", "true_option<-question", "true_option<-video")


def is_window_size(k: object) -> bool:
    """Whether `k` can be a window size: an int (not a bool) ≥ 1 (the depth is checked apart)."""
    return isinstance(k, int) and not isinstance(k, bool) and k >= 1


def flow_window(layer: int, k: int, n_layers: int) -> LayerSelection:
    """map-the-flow's centred window around `layer`, clipped to the model: layers
    max(0, l−k//2) … min(L−1, l−k//2+k−1) (its `window_style="center"`; k=9 is l−4 … l+4; even k
    has one more layer before l than after, as `ko.window(l, k, align="center")`).

    Raises:
        KnockoutError: `layer` outside the model or k outside 1 … n_layers.
    """
    if not is_window_size(k) or k > n_layers:
        raise KnockoutError(f"flow window k={k!r} must be an integer between 1 and the model's {n_layers} layers")
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n_layers:
        raise KnockoutError(f"flow window centre {layer} is outside the model's layers 0..{n_layers - 1}")
    lo = layer - k // 2
    return layers(range(max(0, lo), min(n_layers, lo + k)))


# map-the-flow's effective-pathway layers for LLaVA-NeXT-7B-Video-FT (32 layers; `--target
# effective-pathway-7b`), as [start, end) of 0-based layers: where each pathway is *kept*
EFFECTIVE_7B = {"cross_frame": (5, 15), "question+options<-video": (5, 20), "last<-question+options": (15, 25)}
EFFECTIVE_DEPTH = 32


def effective_ranges(n_layers: int, ranges: Mapping[str, Sequence[int]] | None = None) -> dict[str, tuple[int, int]]:
    """The kept layer ranges of the effective pathway: map-the-flow's 7B ranges scaled to
    `n_layers` (round(x·L/32) with Python's round, halves to even; equal to theirs at 32 layers),
    or `ranges` as given. Either way every range is checked.

    Raises:
        ArgumentError (a ValueError): a range that is not [start, end) with 0 <= start < end <= n_layers (a scaled
            range can be empty on a very shallow model: then pass `effective_ranges`), or an
            unknown key.
    """
    scaled = ranges is None
    if scaled:
        ranges = {
            k: (round(a * n_layers / EFFECTIVE_DEPTH), round(b * n_layers / EFFECTIVE_DEPTH))
            for k, (a, b) in EFFECTIVE_7B.items()
        }
    if not isinstance(ranges, Mapping):
        raise ArgumentError(f"effective_ranges must be a dict {{pathway: [start, end)}}, got {ranges!r}")
    out = {}
    for k, v in ranges.items():
        if k not in EFFECTIVE_7B:
            raise ArgumentError(f"effective-pathway range {k!r} is unknown; give {', '.join(EFFECTIVE_7B)}")
        if not (
            isinstance(v, (list, tuple))
            and len(v) == 2
            and all(isinstance(x, int) for x in v)
            and 0 <= v[0] < v[1] <= n_layers
        ):
            how = (
                (
                    f"map-the-flow's 7B range {list(EFFECTIVE_7B[k])} of 32 layers scaled to {n_layers} is {list(v)}, which is "
                    f"empty; pass effective_ranges (options['flow']['effective_ranges']) for this model"
                )
                if scaled
                else (f"effective-pathway range {k}={v!r} must be [start, end) with 0 <= start < end <= {n_layers}")
            )
            raise ArgumentError(how)
        out[k] = (v[0], v[1])
    missing = set(EFFECTIVE_7B) - set(out)
    if missing:
        raise ArgumentError(f"effective-pathway ranges miss {sorted(missing)}; give all of {', '.join(EFFECTIVE_7B)}")
    return out


def effective_pathway(
    n_layers: int, ranges: Mapping[str, Sequence[int]] | None = None
) -> list[tuple[str, Spec, LayerSelection]]:
    """map-the-flow's effective-pathway run (effective_pathway_analysis.py, `block_mappings`): seven
    pathways blocked together, each in its own layers, so that only the effective pathways remain.

    With kept ranges F (cross-frame), V (question+options ← video) and Q (last ← question+options):

    | blocked pathway                         | in layers          |
    |-----------------------------------------|--------------------|
    | cross-frame (`ko.VT()`)                 | outside F          |
    | question+options ← video                | outside V          |
    | last ← question+options                 | outside Q          |
    | last ← last (the diagonal)              | all                |
    | last ← video                            | all                |
    | video ← video, diagonal included        | after V            |
    | question+options ← question+options, diagonal included | after Q |

    Every other edge (the system prompt, template tokens, the instruction) is kept, so no row
    loses every edge.

    Args:
        n_layers: the model's depth.
        ranges: kept [start, end) per pathway (keys of `EFFECTIVE_7B`); default: theirs, scaled.

    Returns:
        `(name, spec, layers)` triples; apply all their hooks in one forward.
    """
    r = effective_ranges(n_layers, ranges)
    specs = flow_specs()
    everywhere = set(range(n_layers))

    def outside(key):
        return sorted(everywhere - set(range(*r[key])))

    parts = [
        ("cross_frame", specs["cross_frame"], outside("cross_frame")),
        ("question+options<-video", specs["question+options<-video"], outside("question+options<-video")),
        ("last<-question+options", specs["last<-question+options"], outside("last<-question+options")),
        ("last<-last", specs["last<-last"], sorted(everywhere)),
        ("last<-video", specs["last<-video"], sorted(everywhere)),
        (
            "video<-video",
            Edges("vision", "vision", diagonal=True, name="video←video"),
            list(range(r["question+options<-video"][1], n_layers)),
        ),
        (
            "question+options<-question+options",
            Edges(QUESTION_SPAN, QUESTION_SPAN, diagonal=True, name="question+options←question+options"),
            list(range(r["last<-question+options"][1], n_layers)),
        ),
    ]
    return [(name, spec, layers(ls)) for name, spec, ls in parts if ls]


def effective_pathway_hooks(inputs, n_layers: int, ranges=None) -> list:
    """fwd_hooks of the whole effective-pathway run (every part's hooks; a layer's removals unite)."""
    return [h for _, spec, sel in effective_pathway(n_layers, ranges) for h in spec.hooks(inputs, layers=sel)]


def edges_kept(layout: VideoLayout, parts: Sequence[tuple[str, Spec, LayerSelection]], n_layers: int) -> float:
    """Kept fraction of the causal edges (diagonal included) summed over layers: map-the-flow's
    `attention_amount` / 100."""
    real = ~layout.mask("pad")
    causal = torch.ones(len(layout), len(layout), dtype=torch.bool).tril() & real[:, None] & real[None, :]
    blocked = {name: spec.blocked(layout) for name, spec, _ in parts}
    kept = 0
    for layer in range(n_layers):
        gone = torch.zeros_like(causal)
        for name, _, sel in parts:
            if layer in sel.resolve(n_layers):
                gone |= blocked[name]
        kept += int((causal & ~gone).sum())
    return kept / (n_layers * int(causal.sum()))


__all__ = [
    "TARGETS",
    "KeepOnly",
    "edges_kept",
    "effective_pathway",
    "effective_pathway_hooks",
    "flow_specs",
    "flow_window",
    "keep_only",
]


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
    assert layout.role is not None  # filled by VideoLayout.__post_init__
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
        inputs: VideoInputs of one row, with roles (`vlens.inputs.roles.with_roles`).
        sources: role names (or any selector) whose attention is measured.
        fwd_hooks: extra hooks for the same forward (e.g. a knockout, to see the flow under it).

    Returns:
        `(groups, mass)`: group names and `mass` `[n_layers, n_sources, n_groups]` (fp32); each
        source's row sums to 1 in every layer (0 where a knockout emptied its rows).

    Raises:
        ArgumentError (a ValueError): a batch of more than one row, or a source with no positions.
    """
    from vlens.inputs.positions import as_positions

    if len(inputs.layouts) != 1:
        raise ArgumentError(f"attention_flow takes one row, got {len(inputs.layouts)}; index the batch first")
    layout = inputs.layout
    names, index = key_groups(layout)
    onehot = torch.zeros(len(layout), len(names))
    onehot[torch.arange(len(layout)), torch.tensor(index)] = 1.0
    rows = []
    for s in sources:
        r = as_positions(s)(layout)
        if not r.any():
            raise ArgumentError(
                f"source {s!r} has no positions in this layout (roles derived? see vlens.inputs.roles.with_roles)"
            )
        rows.append(r)
    out = torch.zeros(model.cfg.n_layers, len(sources), len(names))

    def reduce(pattern, hook):
        p = pattern[0].float().mean(0)  # [q, k], heads averaged
        for j, r in enumerate(rows):
            out[hook.layer(), j] = (p[r.to(p.device)].mean(0) @ onehot.to(p.device)).cpu()
        return pattern

    hooks = [*list(fwd_hooks), (lambda n: n.endswith("attn.hook_pattern"), reduce)]
    with torch.no_grad():
        model.run_with_hooks(inputs, fwd_hooks=hooks)
    return names, out
