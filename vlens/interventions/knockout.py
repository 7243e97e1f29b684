"""Attention knockouts: which attention edges to remove, in which layers.

Causal attention is softmax(QKᵀ/√d + M)V; a knockout sets entries of M to −∞ (docs/knockouts.md):

| knockout | query                                                       | key                     |
|----------|-------------------------------------------------------------|-------------------------|
| LV-K     | text/marker position after the last vision position         | vision (video, separator) |
| VT-K     | `video` position of frame i                                 | `video` of frame j ≠ i  |
| VS-K     | `video` position of frame i                                 | other `video` of frame i |

`ko.Edges(queries=..., keys=..., frames=..., diagonal=...)` removes any query ← key edges over
segments, text roles and frames (vlens.inputs.positions); LV, VT and VS are named `Edges`.
`spec.blocked(layout)` is exactly the removed edges, strictly below the diagonal unless a spec
asks for the diagonal explicitly (`diagonal=True`); a row that loses every edge gets attention
output 0 (no NaN) on every path. Specs compose with `|` (union of removed edges). Frames that
share tokens (a temporal group) are one frame: the layout's `frame` is the group index.

    hooks = (ko.LV() | ko.VT()).hooks(inputs, layers=ko.from_layer(14))
    logits = model.run_with_hooks(inputs, fwd_hooks=hooks)

On `hook_pattern` a knockout zeroes the removed weights and renormalises the row; on
`hook_attn_scores` it writes −∞ — the same logits. Given to a HookedVideoLLM, knockout hooks are
folded into the SDPA mask (no N×N pattern) unless something else hooks that layer's attention.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from vlens.components.per_call import KnockoutError, check_layouts
from vlens.inputs.layout import ROLES, VideoLayout
from vlens.inputs.positions import Positions, as_positions, at, option, role, segment  # noqa: F401 (re-exported)
from vlens.interventions.layer_selection import (  # noqa: F401 (re-exported: ko.window, ko.from_layer, ...)
    LayerSelection,
    all_layers,
    as_selection,
    from_layer,
    layers,
    window,
)

HookSite = Literal["pattern", "attn_scores"]


# ------------------------------------------------------------------------------------------------
# Specs: which edges
# ------------------------------------------------------------------------------------------------
def _strictly_below(n: int) -> Bool[Tensor, "q k"]:
    return torch.ones(n, n, dtype=torch.bool).tril(-1)


class Spec:
    """A set of attention edges to remove, as a function of the layout."""

    label = "?"
    structural = False  # True: blocked_rows builds rows from the layout, without the [q, k] mask

    def blocked(self, layout: VideoLayout) -> Bool[Tensor, "q k"]:
        """The edges this spec removes from one row.

        Args:
            layout: the row's layout (segments, frames, roles per position).

        Returns:
            [q, k] bool, True where query q may no longer read key k (only causal edges, k ≤ q, matter)."""
        raise NotImplementedError

    def blocked_rows(self, layout: VideoLayout, rows: slice, memo: dict | None = None) -> Bool[Tensor, "rows k"]:
        """The rows `rows` of `blocked(layout)`: [rows, k] bool. Specs that are `structural`
        build them from the layout's segments and frames (no [q, k] tensor); the others slice the
        whole mask. `memo` keeps per-layout vectors (the selectors' positions) between calls on
        one layout."""
        return self.blocked(layout)[rows]

    def first_touched_row(self, layout: VideoLayout, memo: dict | None = None) -> int | None:
        """The first query row that loses an edge (len(layout) when none does), read from the
        layout's vectors without any [q, k] tensor; None when this spec cannot tell that way."""
        return None

    def __or__(self, other: Spec) -> Spec:
        if not isinstance(other, Spec):
            return NotImplemented
        return Union((*_parts(self), *_parts(other)))

    def __repr__(self) -> str:
        return self.label

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Spec) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))

    def hooks(
        self,
        inputs,
        layers: LayerSelection | int | Iterable[int] | None = None,  # noqa: F811 (the argument, not ko.layers)
        on: HookSite = "pattern",
        heads: Iterable[int] | None = None,
        alpha: float | None = None,
        renormalise: bool = True,
    ) -> list[tuple[Callable[[str], bool], KnockoutHook]]:
        """fwd_hooks for `model.run_with_hooks`: this knockout in `layers` (all by default),
        applied on `hook_pattern` (zero + renormalise) or `hook_attn_scores` (−∞).

        `heads`: the *query* heads that lose the edges (None: all). Under grouped-query attention
        a key/value head serves several query heads; the knockout acts on the query heads named,
        whatever their group. Different heads in different layers: add the hooks of several
        calls (`spec.hooks(x, layers=[3], heads=[0]) + spec.hooks(x, layers=[5], heads=[1, 2])`).

        `alpha`: scale the edges' weights by α instead of removing them (vlens.interventions.scaling),
        `renormalise`d (log α on the scores: every path; α = 0 is this knockout) or not (α·w after
        the softmax: the explicit path). Raises KnockoutError for α not a finite number ≥ 0.

        Warns (`KnockoutWarning`) when the spec removes no edge in any row of `inputs`: the run
        would equal the clean one, which is almost always a mistake in the spec or the inputs."""
        layouts = _layouts_of(inputs)
        if alpha is None and renormalise is not True:
            raise KnockoutError(
                "renormalise= belongs to a scaling: pass alpha= too (alpha=0, renormalise=False zeroes the "
                "edges' weights without renormalising; a knockout always renormalises)"
            )
        if alpha is None:
            hook = KnockoutHook(self, as_selection(layers), layouts, on, heads=heads)
        else:
            from vlens.interventions.scaling import ScaleHook  # it builds on KnockoutHook, below

            hook = ScaleHook(self, as_selection(layers), layouts, alpha, renormalise, on, heads=heads)
        if layouts and not any(_removes_any(self, lay) for lay in layouts):
            warnings.warn(_nothing_removed(self, layouts[0]), KnockoutWarning, stacklevel=2)
        return [(hook.name_filter, hook)]


def _removes_any(spec: Spec, layout: VideoLayout, rows: int = 1024) -> bool:
    """Whether `spec` removes an edge on `layout`; a structural spec is read `rows` query rows at
    a time, last rows first (LV-K's are at the end), so no [q, k] tensor is built for it."""
    if not spec.structural:
        return bool(spec.blocked(layout).any())
    memo: dict = {}
    starts = range(0, len(layout), rows)
    return any(bool(spec.blocked_rows(layout, slice(i, i + rows), memo).any()) for i in reversed(starts))


class KnockoutWarning(UserWarning):
    """A knockout that removes no edge on the inputs it was built for (the run equals clean)."""


def _nothing_removed(spec: Spec, layout: VideoLayout) -> str:
    """Why a spec may remove nothing, for the warning: the usual mistakes first."""
    hints = []
    named_roles = [r for r in ROLES if r != "last" and r in spec.label]
    assert layout.role is not None  # filled by VideoLayout.__post_init__
    if named_roles and set(layout.role) <= {"", "last"}:
        hints.append(
            f"it names text roles ({', '.join(named_roles)}) and these inputs have none: build them with "
            "vlens.inputs.roles.with_roles(model, inputs, question, options, answer=...)"
        )
    counts = (
        [int((layout.frame[layout.is_video] == f).sum()) for f in range(layout.n_frames)] if layout.n_frames else []
    )
    if layout.n_frames == 1:
        hints.append("the video has one frame (or temporal group): there are no edges across frames")
    elif counts and max(counts) == 1:
        hints.append("every frame is one token: there are no edges within a frame")
    hints.append(
        "check that the segments/roles/options it names exist here; frames='same'/'other'/... only "
        "relate video positions to video positions; a position from itself needs diagonal=True"
    )
    return f"{spec.label} removes no attention edge on these inputs, so the run equals the clean one. " + "; ".join(
        hints
    )


def _parts(spec: Spec) -> tuple[Spec, ...]:
    return spec.parts if isinstance(spec, Union) else (spec,)


FrameRelation = Literal["any", "same", "other", "earlier", "later"]
_FRAME_RELATIONS = ("any", "same", "other", "earlier", "later")
_ARROWS = {
    "any": "",
    "same": " (same frame)",
    "other": " (other frames)",
    "earlier": " (earlier frames)",
    "later": " (later frames)",
}


class Edges(Spec):
    """Remove every edge query ← key with the query in `queries` and the key in `keys`.

    The edge q ← k exists only for k < q (causality; k = q, the diagonal, only with
    `diagonal=True`). `frames` restricts edges between two `video` positions by their frames:
    `same` (f_k = f_q), `other` (f_k ≠ f_q), `earlier` (f_k < f_q), `later` (never true for
    causal video, kept for symmetry); with any relation but `any` both ends must be `video`
    positions (they are the only ones with a frame).

    A query row that loses every edge (possible only with `diagonal=True`) has attention output
    exactly 0 in that layer, on every attention path and dtype (no NaN).

    Args:
        queries: a position selector (vlens.inputs.positions): a segment, role or special name, a tuple
            of them, or `ko.segment/role/option/at(...)`.
        keys: likewise.
        frames: the frame relation between query and key.
        diagonal: also remove q ← q for positions in both sets.
        name: the label (default: `Edges(queries←keys ...)`); specs with one label are equal.

    Raises:
        KnockoutError: an unknown frame relation, or a non-bool `diagonal`.
    """

    def __init__(
        self,
        queries: object,
        keys: object,
        *,
        frames: FrameRelation = "any",
        diagonal: bool = False,
        name: str | None = None,
    ):
        if frames not in _FRAME_RELATIONS:
            raise KnockoutError(f"Edges(frames={frames!r}): the frame relation must be one of {_FRAME_RELATIONS}")
        if not isinstance(diagonal, bool):
            raise KnockoutError(f"Edges(diagonal={diagonal!r}) must be True or False")
        self.queries, self.keys = as_positions(queries), as_positions(keys)
        self.frames, self.diagonal = frames, diagonal
        self.label = name or (
            f"Edges({self.queries.name}←{self.keys.name}{_ARROWS[frames]}{', with diagonal' if diagonal else ''})"
        )

    structural = True

    def blocked(self, layout: VideoLayout) -> Bool[Tensor, "q k"]:
        """The edges from `queries` to `keys` (the diagonal only with `diagonal=True`), causal part only: [q, k] bool."""
        return self.blocked_rows(layout, slice(0, len(layout)))

    def blocked_rows(self, layout: VideoLayout, rows: slice, memo: dict | None = None) -> Bool[Tensor, "rows k"]:
        """Rows `rows` of `blocked(layout)`, from the selectors' positions and the frames: [rows, k] bool."""
        memo = {} if memo is None else memo
        queries, keys = _memo(memo, self.queries, layout), _memo(memo, self.keys, layout)
        index = torch.arange(len(layout))
        q_index = index[rows]
        out = queries[rows][:, None] & keys[None, :]
        out &= (index[None, :] <= q_index[:, None]) if self.diagonal else (index[None, :] < q_index[:, None])
        if self.frames != "any":
            video, f = _memo(memo, "video", layout), layout.frame
            fq, fk = f[rows][:, None], f[None, :]
            rel = {"same": fq == fk, "other": fq != fk, "earlier": fk < fq, "later": fk > fq}[self.frames]
            out &= video[rows][:, None] & video[None, :] & rel
        return out

    def first_touched_row(self, layout: VideoLayout, memo: dict | None = None) -> int | None:
        """For `frames="any"`: the first query with a key before it (or at it, with the diagonal)."""
        if self.frames != "any":
            return None
        memo = {} if memo is None else memo
        queries, keys = _memo(memo, self.queries, layout), _memo(memo, self.keys, layout)
        seen = keys.long().cumsum(0) - (0 if self.diagonal else keys.long())  # keys before q (and q)
        rows = (queries & (seen > 0)).nonzero()
        return int(rows[0]) if len(rows) else len(layout)


def _memo(memo: dict, selector: Positions | str, layout: VideoLayout) -> Bool[Tensor, " pos"]:
    """A selector's positions on `layout` ("video": the video positions), computed once per memo."""
    key = selector if isinstance(selector, str) else id(selector)
    if key not in memo:
        memo[key] = layout.is_video if isinstance(selector, str) else selector(layout)
    return memo[key]


class LV(Edges):
    """Language → video: text after the video cannot see any vision position."""

    def __init__(self):
        # image positions are neither queries nor keys: LV-K cuts the question from the video only
        super().__init__("after_vision", "vision", name="LV-K")


class VT(Edges):
    """Video temporal: a video position of frame i cannot see video positions of frames j ≠ i."""

    def __init__(self):
        super().__init__("video", "video", frames="other", name="VT-K")


class VS(Edges):
    """Video spatial: a video position cannot see other video positions of its own frame."""

    def __init__(self):
        super().__init__("video", "video", frames="same", name="VS-K")


class Custom(Spec):
    """Any edges: `fn(layout) -> bool [q, k]`. Entries above the diagonal are future positions,
    already masked, and are ignored; marking the diagonal is an error unless `diagonal=True`
    (then a row can lose every edge: its attention output is 0)."""

    def __init__(self, fn: Callable[[VideoLayout], Tensor], name: str = "custom", *, diagonal: bool = False):
        self.fn, self.diagonal = fn, diagonal
        self.label = f"Custom({name}{', with diagonal' if diagonal else ''})"

    def blocked(self, layout: VideoLayout) -> Bool[Tensor, "q k"]:
        """The user function's [q, k] bool mask, checked for its shape and dtype."""
        n = len(layout)
        out = torch.as_tensor(self.fn(layout))
        if out.shape != (n, n) or out.dtype != torch.bool:
            raise KnockoutError(
                f"{self.label}: fn must return a bool tensor of shape ({n}, {n}), got {out.dtype} {tuple(out.shape)}"
            )
        if out.diagonal().any() and not self.diagonal:
            raise KnockoutError(
                f"{self.label} blocks the diagonal (a position from itself), which can empty a row; "
                "pass diagonal=True if you mean it (an emptied row has attention output 0)"
            )
        return out & torch.ones(n, n, dtype=torch.bool).tril(0 if self.diagonal else -1)


class Union(Spec):
    """The edges removed by any of `parts` (what `spec_a | spec_b` builds; duplicates dropped, order kept)."""

    def __init__(self, parts: Sequence[Spec]):
        # dedupe, keep order: LV | LV is LV
        seen: list[Spec] = []
        for p in parts:
            if p not in seen:
                seen.append(p)
        self.parts = tuple(seen)
        self.label = " | ".join(p.label for p in self.parts)
        self.structural = all(p.structural for p in self.parts)

    def blocked(self, layout: VideoLayout) -> Bool[Tensor, "q k"]:
        """The union (logical or) of the parts' removed edges: [q, k] bool."""
        out = self.parts[0].blocked(layout)
        for p in self.parts[1:]:
            out = out | p.blocked(layout)
        return out

    def blocked_rows(self, layout: VideoLayout, rows: slice, memo: dict | None = None) -> Bool[Tensor, "rows k"]:
        """The union of the parts' rows `rows`: [rows, k] bool."""
        memo = {} if memo is None else memo
        out = self.parts[0].blocked_rows(layout, rows, memo)
        for p in self.parts[1:]:
            out = out | p.blocked_rows(layout, rows, memo)
        return out

    def first_touched_row(self, layout: VideoLayout, memo: dict | None = None) -> int | None:
        """The earliest of the parts' first rows (None if a part cannot tell)."""
        memo = {} if memo is None else memo
        firsts = [p.first_touched_row(layout, memo) for p in self.parts]
        known = [f for f in firsts if f is not None]
        return min(known) if len(known) == len(firsts) else None


SPECS: dict[str, Callable[[], Spec]] = {"lv": LV, "vt": VT, "vs": VS}


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
        self.structural = keep.structural

    def blocked(self, layout: VideoLayout) -> Bool[Tensor, "q k"]:
        """Every causal edge between non-pad positions except those `keep` names: [q, k] bool."""
        n = len(layout)
        real = ~layout.mask("pad")  # pad rows/keys are already masked; leave them alone
        causal = torch.ones(n, n, dtype=torch.bool).tril() & real[:, None] & real[None, :]
        return causal & ~self.keep.blocked(layout)

    def blocked_rows(self, layout: VideoLayout, rows: slice, memo: dict | None = None) -> Bool[Tensor, "rows k"]:
        """Rows `rows` of `blocked(layout)`; from the layout when `keep` is structural: [rows, k] bool."""
        if not self.structural:
            return self.blocked(layout)[rows]
        memo = {} if memo is None else memo
        real = ~layout.mask("pad")
        index = torch.arange(len(layout))
        causal = (index[None, :] <= index[rows][:, None]) & real[rows][:, None] & real[None, :]
        return causal & ~self.keep.blocked_rows(layout, rows, memo)


def keep_only(*keep: Spec) -> KeepOnly:
    """Remove everything but the union of `keep` (a keep-only run over every edge)."""
    if not keep:
        raise TypeError("keep_only() needs at least one spec to keep")
    spec = keep[0]
    for s in keep[1:]:
        spec = spec | s
    return KeepOnly(spec)


def from_name(name: str) -> Spec:
    """'lv', 'vt', 'vs', 'lv+vt+vs' (or 'all') → a spec; used by the CLI and configs."""
    key = name.strip().lower().replace("-k", "")
    if key == "all":
        key = "lv+vt+vs"
    parts = [p.strip() for p in key.replace("|", "+").split("+")]
    unknown = [p for p in parts if p not in SPECS]
    if unknown:
        raise KnockoutError(f"unknown knockout {name!r}; known: {', '.join(SPECS)} (combine with '+', or 'all')")
    spec: Spec = SPECS[parts[0]]()
    for p in parts[1:]:
        spec = spec | SPECS[p]()
    return spec


# ------------------------------------------------------------------------------------------------
# The hook
# ------------------------------------------------------------------------------------------------
def _layouts_of(inputs) -> list[VideoLayout]:
    if isinstance(inputs, VideoLayout):
        return [inputs]
    layouts = getattr(inputs, "layouts", None)
    if layouts is None:
        raise KnockoutError("knockout hooks need the VideoInputs from model.to_inputs(...) (they carry the layouts)")
    return list(layouts)


class _NameFilter:
    def __init__(self, selection: LayerSelection, on: str):
        self.selection, self.on = selection, on

    def __call__(self, name: str) -> bool:
        parts = name.split(".")
        return (
            len(parts) == 4
            and parts[0] == "blocks"
            and parts[2] == "attn"
            and parts[3] == f"hook_{self.on}"
            and int(parts[1]) in self.selection
        )

    def __repr__(self) -> str:
        return f"blocks.<{self.selection}>.attn.hook_{self.on}"


def _as_heads(heads: Iterable[int] | None) -> tuple[int, ...] | None:
    """`heads=` as a sorted tuple of distinct non-negative ints (None: every head)."""
    if heads is None:
        return None
    if isinstance(heads, (str, bytes)) or not isinstance(heads, Iterable):
        raise KnockoutError(f"heads must be a list of query-head indices (or None for all heads), got {heads!r}")
    out = list(heads)
    bad = [h for h in out if isinstance(h, bool) or not isinstance(h, int) or h < 0]
    if bad or not out:
        raise KnockoutError(
            f"heads must be a non-empty list of non-negative int query-head indices, got {out!r}"
            + (f" ({bad[0]!r} is not one)" if bad else "")
        )
    if len(set(out)) != len(out):
        raise KnockoutError(f"heads lists a head twice: {out!r}")
    return tuple(sorted(out))


class KnockoutHook:
    """One knockout spec in a layer selection for a batch of layouts.

    An attention intervention (vlens.components.per_call.EdgeRemoval): given to `run_with_hooks`, it
    is resolved and checked against the batch before the forward runs and lives only for that
    call. Callable as a plain TransformerLens hook too (`model.add_hook(name, hook)`): then it
    edits the pattern/scores tensor it is given.
    """

    site: HookSite

    def __init__(
        self,
        spec: Spec,
        selection: LayerSelection,
        layouts: Sequence[VideoLayout],
        on: HookSite = "pattern",
        heads: Iterable[int] | None = None,
    ):
        if on not in ("pattern", "attn_scores"):
            raise KnockoutError(f"on must be 'pattern' or 'attn_scores', got {on!r}")
        if not isinstance(spec, Spec):
            raise KnockoutError(
                f"{spec!r} is not a knockout spec; use ko.LV(), ko.VT(), ko.VS(), ko.Edges(...) or ko.Custom(fn)"
            )
        if not layouts:
            raise KnockoutError("knockout hooks need at least one row of inputs (the batch is empty)")
        for i, layout in enumerate(layouts):
            if not layout.has_video:
                raise KnockoutError(
                    f"row {i} of the inputs has no video positions; a {spec.label} knockout needs video"
                )
        self.spec, self.selection, self.layouts, self.site = spec, selection, list(layouts), on
        self.heads = _as_heads(heads)
        self.name_filter = _NameFilter(selection, on)
        self._blocked: dict[tuple[int, str], Tensor] = {}
        self._memos: dict[tuple[int, int], tuple[VideoLayout, dict]] = {}
        self._resolved: tuple[int, ...] | None = None

    @property
    def on(self) -> HookSite:
        """The hook site the knockout acts on: "pattern" (renormalised) or "attn_scores" (−∞ before the softmax)."""
        return self.site

    # the EdgeRemoval protocol -----------------------------------------------------------------------
    def resolve_layers(self, n_layers: int) -> tuple[int, ...]:
        """Resolve the layer selection against a model's depth (raises if out of range)."""
        self._resolved = self.selection.resolve(n_layers)
        return self._resolved

    def check_heads(self, n_heads: int, n_kv_heads: int) -> None:
        """Raise KnockoutError if `heads` names a query head the model does not have."""
        if self.heads is not None and max(self.heads) >= n_heads:
            raise KnockoutError(
                f"heads={list(self.heads)}: heads are query heads 0..{n_heads - 1}; this model has {n_heads} query "
                f"heads sharing {n_kv_heads} key/value heads ({n_heads // max(n_kv_heads, 1)} query heads per group)"
            )

    def check_batch(self, rows) -> None:
        """Raise KnockoutError unless the hook was built for exactly this batch (row count and each row's layout)."""
        check_layouts(str(self), self.layouts, rows, KnockoutError)

    def mask_key(self, layer: int) -> object:
        """The same mask in every layer this hook covers: one key, one shared mask."""
        return id(self)

    def blocked(self, layer: int, n_pos: int, device) -> Bool[Tensor, "batch q k"]:
        """The removed edges [batch, q, k] of every row over `n_pos` positions (the same in every layer it acts in)."""
        return self.blocked_full(n_pos, device)

    def blocked_rows(self, layer: int, rows: slice, n_pos: int, device) -> Bool[Tensor, "batch rows k"]:
        """The removed edges [batch, rows, k] of query rows `rows` over `n_pos` keys: built from
        the layouts for a structural spec (LV, VT, VS, Edges and their unions: no [q, k]
        tensor), else the rows of `blocked_full` (built once and kept)."""
        if not self.spec.structural:
            return self.blocked_full(n_pos, device)[:, rows]
        out = []
        for i, layout in enumerate(self.layouts):
            if (i, n_pos) not in self._memos:
                if n_pos < len(layout):
                    self.blocked_full(n_pos, device)  # raises the error naming both lengths
                self._memos[(i, n_pos)] = (layout.extend(n_pos - len(layout)), {})
            extended, memo = self._memos[(i, n_pos)]
            out.append(self.spec.blocked_rows(extended, rows, memo))
        return torch.stack(out).to(device)

    def first_touched_row(self, layer: int, n_pos: int) -> int | None:
        """The first query row (sequence index) in which any batch row loses an edge (`n_pos` when
        none does), from the layouts' vectors; None when the spec cannot tell without its rows."""
        firsts = []
        for i, layout in enumerate(self.layouts):
            if n_pos < len(layout):
                return None
            memo = self._memos.setdefault((i, n_pos), (layout.extend(n_pos - len(layout)), {}))
            firsts.append(self.spec.first_touched_row(*memo))
        return None if any(f is None for f in firsts) else min(firsts)

    def __repr__(self) -> str:
        where = str(self.selection)
        if self._resolved:  # after a run: the concrete layers
            where = str(LayerSelection("list", (self._resolved,)))
        heads = "" if self.heads is None else f" heads {list(self.heads)}"
        return f"{self.spec.label} @ {where}{heads}" + (" (attn_scores)" if self.on == "attn_scores" else "")

    # masks ----------------------------------------------------------------------------------------
    def blocked_full(self, n_keys: int, device) -> Bool[Tensor, "batch q k"]:
        """Removed edges for every row of the batch over `n_keys` positions (generated tokens,
        beyond the layout, are text)."""
        key = (n_keys, str(device))
        if key not in self._blocked:
            masks = []
            for layout in self.layouts:
                if n_keys < len(layout):
                    raise KnockoutError(
                        f"the knockout was built for inputs of {len(layout)} positions but the model ran on "
                        f"{n_keys}; build the hooks from the same inputs you run"
                    )
                masks.append(self.spec.blocked(layout.extend(n_keys - len(layout))))
            self._blocked[key] = torch.stack(masks).to(device)
        return self._blocked[key]

    def _rows_for(self, t: Tensor, q_start: int) -> Bool[Tensor, "batch 1 q k"]:
        B, _, Q, K = t.shape
        if len(self.layouts) != B:
            raise KnockoutError(f"the knockout holds {len(self.layouts)} layouts but the batch has {B} rows")
        if q_start == 0 and len(self.layouts[0]) != K:
            raise KnockoutError(
                f"the knockout was built for inputs of {len(self.layouts[0])} positions but the model ran on "
                f"{K}; build the hooks from the same inputs you run"
            )
        rows = self.blocked_full(K, t.device)[:, None, q_start : q_start + Q, :]
        if self.heads is None:
            return rows
        self.check_heads(t.shape[1], t.shape[1])
        out = torch.zeros(B, t.shape[1], Q, K, dtype=torch.bool, device=t.device)
        out[:, list(self.heads)] = rows
        return out

    def apply_to_scores(self, scores: Float[Tensor, "batch head q k"], q_start: int = 0) -> Tensor:
        """−∞ at the removed edges."""
        return scores.masked_fill(self._rows_for(scores, q_start), float("-inf"))

    def apply_to_pattern(self, pattern: Float[Tensor, "batch head q k"], q_start: int = 0) -> Tensor:
        """Zero the removed weights and renormalise the rows that lost weight, in fp32 (a row
        whose kept weights all underflowed to 0 gets weights 0: attention output 0, no NaN).
        Rows that lost nothing stay bit-identical."""
        blocked = self._rows_for(pattern, q_start)
        rows = blocked.any(-1, keepdim=True)
        if not bool(rows.any()):
            return pattern
        kept = pattern.float().masked_fill(blocked, 0.0)
        total = kept.sum(-1, keepdim=True)
        renormalised = torch.where(total > 0, kept / total.clamp_min(torch.finfo(torch.float32).tiny), 0.0)
        return torch.where(rows, renormalised.to(pattern.dtype), pattern)

    def __call__(self, tensor: Tensor, hook) -> Tensor:
        """Plain TransformerLens hook use (e.g. `model.add_hook(name, knockout_hook)`)."""
        if hook.layer() not in self.selection:
            return tensor
        q_start = tensor.shape[-1] - tensor.shape[-2]  # queries are the last rows (KV-cache decoding)
        if self.on == "attn_scores":
            return self.apply_to_scores(tensor, q_start)
        return self.apply_to_pattern(tensor, q_start)
