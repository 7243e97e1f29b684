"""Knockout attribution: every knockout in every layer estimated from one forward and one backward.

An exact sweep (vlens.interventions.sweep) runs every configuration; attribution estimates all of them from the
clean run, and `verify_top` re-runs exactly only the ones that matter.

Derivation. A knockout on the pattern renormalises each affected row over its kept keys, so given the
*clean* q, k, v of layer l the knocked attention output is computable exactly from the clean run:

    z_l^ko[i] = softmax(q_i Kᵀ/√d + M_causal[i] + M_ko[i]) V     for the rows i that lose an edge,
    z_l^ko[i] = z_l[i]                                          elsewhere.

Nothing else in layer l, and nothing below it, changes, so to first order a metric m moves by

    Δm_l ≈ ⟨∂m/∂z_l, z_l^ko − z_l⟩.

A knockout restricted to query heads (`spec.hooks(..., heads=[h])`) changes only those heads'
slices of z_l (the heads attend independently given the clean q, k, v), so its estimate is the
same inner product over those heads: Δm_{l,h} ≈ ⟨∂m/∂z_{l,h}, z_{l,h}^ko − z_{l,h}⟩, and the
layer's estimate is the sum of its heads' (`per_head`; vlens.interventions.head_attribution).

The gradients ∂m/∂z_l of every layer come from one backward of the clean forward; z_l^ko takes one
masked SDPA call over the affected rows only (in fp32, row chunks: no N×N tensor is kept). A
selection of layers S (from-layer-i, a window, all layers) is estimated by Σ_{l∈S} Δm_l: the
first-order term of the multi-layer expansion, which drops the cross-layer terms (a knockout in layer
i changes the q, k, v that layer j > i sees).

Readout correction. The metrics are functions of the option-letter logits ℓ at the answer position.
With readout="letters" (default) the backward runs once per direction ℓ_j − ℓ_a (j ≠ answer a), so
n_options − 1 backwards give the first-order change Δℓ of every letter logit (up to a common shift,
which no metric sees). Records then evaluate the metrics *exactly* on ℓ + Δℓ: the max over wrong
letters and the softmax of p(correct) are not linearised, which is where a linear estimate of
p(correct) fails first (it leaves [0, 1] once the softmax saturates); this correction captures all
orders of the readout's curvature at no extra cost (the network stays linearised).
readout="metrics" runs two backwards only (logit difference, log p(correct); p(correct) is then
p·exp(Δ log p)), readout="logit_diff" one (the logit difference alone: the cheapest ranking).

    attr = attribute_knockouts(model, inputs, [ko.LV(), ko.VT()], letter_ids, answer)
    attr.per_layer                          # [spec, layer, direction] first-order changes
    attr.per_head                           # [spec, layer, head, direction]: per query head
    attr.change(ko.LV(), ko.from_layer(4))  # {"logit_diff": Δ, "log_p_correct": Δ, "p_correct": Δ}
    attr.change(ko.LV(), [2], heads=[1])    # the knockout on query head 1 of layer 2 alone
    records = attribute_sample(model, inputs, configs, letter_ids, answer)   # name → record
    exact = verify_top(model, inputs, records, configs, k=5, letter_ids=letter_ids, answer=answer)
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from vlens.inputs.prompts import LETTERS
from vlens.interventions.knockout import LayerSelection, Spec, as_selection
from vlens.interventions.sweep import SweepConfig
from vlens.metrics import kl_letters, score

METRICS = ("logit_diff", "log_p_correct", "p_correct")
READOUTS = ("letters", "metrics", "logit_diff")


class AttributionError(ValueError):
    """Attribution was asked for something it cannot estimate (bad inputs, answer, specs)."""


@dataclass
class KnockoutAttribution:
    """First-order knockout effects of one sample, per spec and layer.

    Attributes:
        specs: the distinct knockout specs, in the order of `per_layer`'s first axis.
        per_layer: [spec, layer, direction] ⟨∂y/∂z_l, z_l^ko − z_l⟩ for each readout direction y.
        per_head: [spec, layer, head, direction] the same inner product over each query head's
            slice of z_l: the estimate of the knockout on that head alone (sums to `per_layer`).
        directions: [direction, option] the readout directions y = C ℓ over the letter logits ℓ.
        direction_names: a name per direction (`"B-A"` = ℓ_B − ℓ_A; or the metric's name).
        readout: "letters" (directions ℓ_j − ℓ_answer for every wrong j), "metrics" (logit
            difference, log p(correct)) or "logit_diff".
        clean_logits: [d_vocab] the clean logits at the answer position.
        letter_ids: token ids of the option letters; answer: index of the correct option.
        affected_rows: per spec label, how many query rows lose at least one edge.
    """

    specs: list[Spec]
    per_layer: Float[Tensor, "spec layer direction"]
    directions: Float[Tensor, "direction option"]
    direction_names: list[str]
    readout: str
    clean_logits: Float[Tensor, " d_vocab"]
    letter_ids: list[int]
    answer: int
    affected_rows: dict[str, int]
    per_head: Float[Tensor, "spec layer head direction"] | None = None

    @functools.cached_property
    def clean_letters(self) -> Float[Tensor, " option"]:
        """The clean logits of the option letters [option], in the options' order."""
        return self.clean_logits.float()[self.letter_ids]

    @functools.cached_property
    def _clean_letter_score(self) -> dict:
        return score(self.clean_letters, list(range(len(self.letter_ids))), self.answer)

    def _index(self, spec: Spec) -> int:
        if spec not in self.specs:
            raise AttributionError(f"{spec!r} was not attributed; attributed specs: {', '.join(map(repr, self.specs))}")
        return self.specs.index(spec)

    def delta(
        self,
        spec: Spec,
        layers: LayerSelection | int | Sequence[int] | None = None,
        heads: Sequence[int] | None = None,
    ) -> Float[Tensor, " direction"]:
        """Σ over the selected layers (and query `heads` in each, None: all) of the first-order
        changes of each direction."""
        n_layers = self.per_layer.shape[1]
        chosen = list(as_selection(layers).resolve(n_layers))
        if heads is None:
            return self.per_layer[self._index(spec), chosen].sum(0)
        if self.per_head is None:
            raise AttributionError("this attribution holds no per-head estimates (per_head is None)")
        from vlens.interventions.knockout import _as_heads

        picked = list(_as_heads(heads) or ())
        n_heads = self.per_head.shape[2]
        if picked[-1] >= n_heads:
            raise AttributionError(f"heads={picked}: heads are query heads 0..{n_heads - 1}")
        return self.per_head[self._index(spec), chosen][:, picked].sum((0, 1))

    def letter_delta(self, spec: Spec, layers=None, heads: Sequence[int] | None = None) -> Float[Tensor, " option"]:
        """First-order change of each letter logit relative to the answer's (Δℓ_answer := 0)."""
        if self.readout != "letters":
            raise AttributionError(f"letter-logit changes need readout='letters', this ran readout={self.readout!r}")
        d = self.delta(spec, layers, heads)
        out = torch.zeros(len(self.letter_ids))
        wrong = [j for j in range(len(self.letter_ids)) if j != self.answer]
        out[wrong] = d
        return out

    def change(self, spec: Spec, layers=None, heads: Sequence[int] | None = None) -> dict[str, float]:
        """First-order change of each metric: logit difference (correct − best wrong letter, the
        best wrong one fixed at the clean run's), log p(correct) and p(correct) (softmax over the
        option letters). readout="logit_diff" gives the logit difference only. `heads`: the
        knockout on those query heads only (in every selected layer)."""
        letters = self.clean_letters
        p = letters.softmax(-1)
        if self.readout == "letters":
            rel = self.letter_delta(spec, layers, heads)  # Δ(ℓ_j − ℓ_a)
            d_ld = -float(rel[_best_wrong(letters, self.answer)])
            d_logp = -float((p * rel).sum())
        else:
            d = self.delta(spec, layers, heads)
            d_ld = float(d[0])
            if self.readout == "logit_diff":
                return {"logit_diff": d_ld}
            d_logp = float(d[1])
        return {"logit_diff": d_ld, "log_p_correct": d_logp, "p_correct": float(p[self.answer]) * d_logp}

    def record(self, spec: Spec, layers=None, heads: Sequence[int] | None = None) -> dict:
        """Estimated scores shaped like `vlens.metrics.score`'s (plus `kl` and the first-order
        `*_linear` values), with method="attribution"; `heads` as in `change`."""
        letters = self.clean_letters
        clean = self._clean_letter_score
        d = self.change(spec, layers, heads)
        p_a = clean["p_correct"]
        linear = {"logit_diff_linear": clean["logit_diff"] + d["logit_diff"]}
        if "log_p_correct" in d:
            linear.update(
                log_p_correct_linear=math.log(p_a) + d["log_p_correct"], p_correct_linear=p_a + d["p_correct"]
            )
        if self.readout == "letters":
            est = letters + self.letter_delta(spec, layers, heads)
            out = score(est, list(range(len(est))), self.answer)
            out.pop("p_correct_vocab", None)  # over the letters only here: not the vocabulary's
            out["kl"] = kl_letters(clean["letter_logits"], out["letter_logits"])
        else:
            ld = linear["logit_diff_linear"]
            out = {"answer": LETTERS[self.answer], "correct": ld > 0, "logit_diff": ld}
            if "log_p_correct_linear" in linear:
                out["p_correct"] = math.exp(min(0.0, linear["log_p_correct_linear"]))
        return {**out, **linear, "method": "attribution"}


def _best_wrong(letters: Tensor, answer: int) -> int:
    masked = letters.clone()
    masked[answer] = -math.inf
    return int(masked.argmax())


def _directions(letters: Tensor, answer: int, readout: str) -> tuple[Tensor, list[str]]:
    n = len(letters)
    eye = torch.eye(n)
    if readout == "letters":
        wrong = [j for j in range(n) if j != answer]
        return eye[wrong] - eye[answer], [f"{LETTERS[j]}-{LETTERS[answer]}" for j in wrong]
    w = _best_wrong(letters, answer)
    if readout == "logit_diff":
        return (eye[answer] - eye[w])[None], ["logit_diff"]
    return torch.stack([eye[answer] - eye[w], eye[answer] - letters.softmax(-1)]), ["logit_diff", "log_p_correct"]


def _check(model, inputs, specs, letter_ids, answer, readout) -> None:
    if getattr(inputs, "batch_size", None) != 1:
        raise AttributionError(
            f"attribution takes one sample (the VideoInputs of model.to_inputs(video, question)), got "
            f"{getattr(inputs, 'batch_size', type(inputs).__name__)} rows"
        )
    from vlens.arguments import as_index, as_token_ids

    letters = as_token_ids(letter_ids, "letter_ids", model.cfg.d_vocab)
    as_index(answer, "answer", len(letters), what="option index")
    for s in specs:
        if not isinstance(s, Spec):
            raise TypeError(f"expected knockout specs (ko.LV(), ko.VT(), ko.Custom(fn), ...), got {s!r}")
    if not inputs.layout.has_video:
        raise AttributionError("the inputs have no video positions; knockouts need video")


@contextlib.contextmanager
def frozen_parameters(model) -> Iterator[None]:
    """Parameters stop requiring grad for the block (restored after, also on error): the backward
    then needs no weight gradients, so autograd saves no linear layer's input for them (on a 7B
    model at 32 frames that is ~10 GB less; see docs/attribution.md)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _clean_forward_backward(model, inputs, letter_ids, answer, readout):
    """One clean forward keeping each layer's rot_q, rot_k, v and z; one backward per readout
    direction giving ∂y/∂z_l. Returns (clean logits, C, names, acts[l] = (q, k, v), grads[l] =
    [direction, pos, head, d_head])."""
    L = model.cfg.n_layers
    n_deep = model.cfg.deepstack_layers
    deep: dict[int, Tensor] = {}
    with torch.no_grad():  # the vision tower and embedding: no gradient needed below block 0
        if n_deep:  # Qwen3-VL: the DeepStack additions come from the vision tower, constants here
            wanted = {"blocks.0.hook_resid_pre"} | {f"blocks.{l}.hook_deepstack" for l in range(n_deep)}
            _, cache = model.run_with_cache(
                inputs, names_filter=lambda n: n in wanted, logits_to_keep=1, return_cache_object=False
            )
            x0, deep = cache["blocks.0.hook_resid_pre"], {l: cache[f"blocks.{l}.hook_deepstack"] for l in range(n_deep)}
        else:
            x0 = model(inputs, stop_at_layer=0)
    step = {"input_ids": inputs["input_ids"], "position_ids": model.position_ids(inputs)}
    if inputs.get("attention_mask") is not None:
        step["attention_mask"] = inputs["attention_mask"]
    kept: dict[str, Tensor] = {}

    def keep(t: Tensor, hook) -> Tensor:
        kept[hook.name] = t  # z keeps its graph (we differentiate w.r.t. it); q, k, v are detached later
        return t

    names = {f"blocks.{l}.attn.hook_{n}" for l in range(L) for n in ("rot_q", "rot_k", "v", "z")}
    with torch.enable_grad(), frozen_parameters(model):
        x = x0.detach().requires_grad_(True)
        logits = model.run_with_hooks(
            step,
            start_at_layer=0,
            resid=x,
            logits_to_keep=1,
            fwd_hooks=[(lambda n: n in names, keep)],
            deepstack_adds=deep,
        )
        letters = logits[0, -1, list(letter_ids)].float()
        C, dir_names = _directions(letters.detach().cpu(), answer, readout)
        ys = letters @ C.to(letters.device).T
        zs = [kept[f"blocks.{l}.attn.hook_z"] for l in range(L)]
        # all directions in one batched backward (vmap over the cotangent): equal to one backward
        # per direction, cheaper on small models where per-op overhead dominates
        eye = torch.eye(len(ys), dtype=ys.dtype, device=ys.device)
        grads = [g[:, 0] for g in torch.autograd.grad(ys, zs, grad_outputs=eye, is_grads_batched=True)]
    # z itself is not kept: the clean rows are recomputed next to the knocked ones (_layer_estimates)
    acts = [tuple(kept[f"blocks.{l}.attn.hook_{n}"][0].detach() for n in ("rot_q", "rot_k", "v")) for l in range(L)]
    return logits[0, -1].detach(), C, dir_names, acts, grads


def _attend(q: Tensor, k: Tensor, v: Tensor, allowed: Tensor, scale: float) -> Float[Tensor, "row head d_head"]:
    """softmax(q Kᵀ·scale + mask) V for a few query rows, fp32. q [row, head, d], k/v [pos, kv_head, d],
    allowed [row, pos] (no row is empty: every row keeps its own position)."""
    gqa = q.shape[1] != k.shape[1]
    out = F.scaled_dot_product_attention(
        q.float().transpose(0, 1)[None],
        k.float().transpose(0, 1)[None],
        v.float().transpose(0, 1)[None],
        attn_mask=allowed[None, None],
        scale=scale,
        enable_gqa=gqa,
    )
    return out[0].transpose(0, 1)


def _layer_estimates(q, k, v, grads, blocked_of, scale: float, chunk_rows: int) -> Float[Tensor, "spec head direction"]:
    """[spec, head, direction] ⟨∂y/∂z_h, z_h^ko − z_h⟩ of one layer, per query head. `blocked_of()`
    yields each spec's removed edges [pos, pos], rebuilt per layer so no N×N mask outlives this call."""
    N = q.shape[0]
    keys = torch.arange(N, device=q.device)
    blocked = [b.to(q.device) for b in blocked_of()]
    hit = [b.any(-1) for b in blocked]
    rows_all = torch.stack(hit).any(0).nonzero()[:, 0]
    # The clean rows are recomputed through the same kernel and dtype as the knocked ones (once
    # for all specs), so z^ko − z is the knockout's alone: an empty knockout gives exactly 0, and
    # a bf16 model's rounding of z does not leak into small differences.
    slot = torch.full((N,), -1, dtype=torch.long, device=q.device)
    slot[rows_all] = torch.arange(len(rows_all), device=q.device)
    clean = q.new_zeros((0, *q.shape[1:]), dtype=torch.float32)
    if len(rows_all):
        clean = torch.cat([_attend(q[r], k, v, keys[None, :] <= r[:, None], scale) for r in rows_all.split(chunk_rows)])
    out = torch.zeros(len(blocked), q.shape[1], grads.shape[0], dtype=torch.float32, device=q.device)
    for s, (b, h) in enumerate(zip(blocked, hit)):
        for r in h.nonzero()[:, 0].split(chunk_rows):
            dz = _attend(q[r], k, v, (keys[None, :] <= r[:, None]) & ~b[r], scale) - clean[slot[r]]
            out[s] += torch.einsum("yrhd,rhd->hy", grads[:, r].float(), dz)
    return out


def attribute_knockouts(
    model,
    inputs,
    specs: Sequence[Spec],
    letter_ids: Sequence[int],
    answer: int,
    *,
    readout: str = "letters",
    chunk_rows: int = 1024,
) -> KnockoutAttribution:
    """First-order effect of every spec in every layer, from one forward and one backward per
    readout direction.

    Args:
        model: a HookedVideoLLM.
        inputs: VideoInputs of one sample (batch of one).
        specs: knockout specs (any `Spec`: LV/VT/VS, unions, Custom).
        letter_ids: token ids of the option letters; answer: the correct option's index.
        readout: "letters": n_options − 1 backward directions, every letter logit estimated
            (readout correction, see the module docstring); "metrics": two (logit difference,
            log p(correct)); "logit_diff": one.
        chunk_rows: query rows per masked attention call (bounds its [row, pos] mask and scores).

    Returns:
        KnockoutAttribution with per_layer [spec, layer, direction] and per_head [spec, layer,
        head, direction] (query heads; per_layer is their sum).

    Raises:
        AttributionError: a batch of more than one, no video, an answer out of range.
        TypeError: something in `specs` is not a knockout spec.
    """
    specs = list(dict.fromkeys(specs))  # distinct, in order
    _check(model, inputs, specs, letter_ids, answer, readout)
    from vlens.arguments import as_positive_int

    chunk_rows = as_positive_int(chunk_rows, "chunk_rows")
    if readout not in READOUTS:
        raise AttributionError(f"readout must be one of {', '.join(READOUTS)}, got {readout!r}")
    layout = inputs.layout
    clean_logits, C, names, acts, grads = _clean_forward_backward(model, inputs, list(letter_ids), answer, readout)
    per_head = torch.zeros(len(specs), model.cfg.n_layers, model.cfg.n_heads, len(names))
    for l, ((q, k, v), g) in enumerate(zip(acts, grads)):
        scale = getattr(model.blocks[l].attn, "scale", model.cfg.d_head**-0.5)
        est = _layer_estimates(q, k, v, g, lambda: (s.blocked(layout) for s in specs), scale, chunk_rows)
        per_head[:, l] = est.cpu()
    affected = {repr(s): int(s.blocked(layout).any(-1).sum()) for s in specs}
    return KnockoutAttribution(
        specs, per_head.sum(2), C, names, readout, clean_logits.cpu(), list(letter_ids), answer, affected, per_head
    )


def attribute_sample(
    model, inputs, configs: Sequence[SweepConfig], letter_ids: Sequence[int], answer: int, *, readout: str = "letters"
) -> dict[str, dict]:
    """The whole study of one sample from one forward + backward: configuration name → record.

    Records are shaped like the exact runner's (`vlens.metrics.score` fields, `kl`, `spec`,
    `layers`) with method="attribution"; "clean" holds the exact clean scores.

    Args:
        configs: the study's configurations (e.g. `vlens.experiments.study.configs_for(...)`).
        readout: see `attribute_knockouts`.

    Returns:
        {"clean": record, config.name: record, ...}.
    """
    attr = attribute_knockouts(model, inputs, [c.spec for c in configs], letter_ids, answer, readout=readout)
    L = model.cfg.n_layers
    out = {"clean": {**score(attr.clean_logits, attr.letter_ids, answer), "method": "attribution"}}
    for c in configs:
        out[c.name] = {"spec": repr(c.spec), "layers": list(c.layers.resolve(L)), **attr.record(c.spec, c.layers)}
    return out
