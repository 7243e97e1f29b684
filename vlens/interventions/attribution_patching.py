"""Attribution patching: every activation patch of `patch_sweep` estimated from one backward.

`vlens.interventions.patching.patch_sweep` runs the corrupted input once per (layer, position group[, head]) with
the clean activation written in. To first order in the patched difference, the patched logit
difference is

    m(corrupted with a_clean at site, group) ≈ m(corrupted) + Σ_{p∈group} ⟨a_clean[p] − a_corr[p], ∂m/∂a[p]⟩

with the gradient taken on the corrupted run (Nanda's "attribution patching"; Syed et al. 2023).
One clean forward (cached sites), one corrupted forward and one backward give every (layer, group)
at once, for the same sites, groups and normalisation as `patch_sweep`:

    est = attribution_patch(model, clean, corrupted, letter_ids, answer, site="resid_pre")
    est.effect      # [layer, group] (or [layer, head, group] for "z"), 0 = corrupted, 1 = clean

Where it fails: sites whose patch moves the answer far (early residual-stream patches of a whole
frame) sit outside the linear regime; the estimate ranks them but misjudges their size (numbers in
docs/attribution.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from vlens.interventions.attribution import frozen_parameters
from vlens.interventions.patching import (
    SITES,
    PatchingError,
    PatchingResult,
    check_same_layout,
    logit_diff,
    position_groups,
)


def _hook_name(site: str, layer: int) -> str:
    return f"blocks.{layer}.attn.hook_z" if site == "z" else f"blocks.{layer}.hook_{site}"


def attribution_patch(
    model,
    clean,
    corrupted,
    letter_ids: Sequence[int],
    answer: int,
    *,
    site: str = "resid_pre",
    layers: Sequence[int] | None = None,
    groups: dict[str, Tensor] | None = None,
) -> PatchingResult:
    """First-order estimate of `patch_sweep(model, clean, corrupted, ...)`, same shapes and fields.

    Args:
        model: a HookedVideoLLM.
        clean: VideoInputs of one sample.
        corrupted: VideoInputs of the same sample corrupted, with the same layout (`corrupt(...)`).
        letter_ids: token ids of the option letters; answer: the correct option's index.
        site: "resid_pre", "attn_out", "mlp_out" ([layer, group]) or "z" ([layer, head, group]).
        layers: the layers to estimate (all by default); groups: name → positions
            (`position_groups(clean.layout)` by default).

    Returns:
        PatchingResult whose `raw` is the estimated patched logit difference and `effect` its
        normalisation (raw − corrupted) / (clean − corrupted), NaN when clean = corrupted.

    Raises:
        PatchingError: unknown site, different layouts, a batch of more than one, bad answer.
    """
    if site not in SITES:
        raise PatchingError(f"unknown site {site!r}; sites: {', '.join(SITES)}")
    check_same_layout(clean, corrupted)
    if clean.batch_size != 1:
        raise PatchingError("attribution_patch takes one sample (batch of one)")
    if not 0 <= answer < len(letter_ids):
        raise PatchingError(f"answer {answer} is out of range for {len(letter_ids)} options")
    L = model.cfg.n_layers
    layers = list(range(L)) if layers is None else list(layers)
    bad = [l for l in layers if not 0 <= l < L]
    if bad:
        raise PatchingError(f"layers {bad} are out of range: the model has {L} layers (0..{L - 1})")
    groups = position_groups(clean.layout) if groups is None else groups
    names = [_hook_name(site, l) for l in layers]
    wanted = set(names)
    with torch.no_grad():
        clean_logits, clean_cache = model.run_with_cache(
            clean, names_filter=lambda n: n in wanted, logits_to_keep=1, return_cache_object=False
        )
        x0 = model(corrupted, stop_at_layer=0)  # vision and embedding: no gradient needed there
    step = {"input_ids": corrupted["input_ids"], "position_ids": model.position_ids(corrupted)}
    if corrupted.get("attention_mask") is not None:
        step["attention_mask"] = corrupted["attention_mask"]
    acts: dict[str, Tensor] = {}

    def keep(t: Tensor, hook) -> Tensor:
        acts[hook.name] = t
        return t

    with torch.enable_grad(), frozen_parameters(model):
        x = x0.detach().requires_grad_(True)
        logits = model.run_with_hooks(
            step, start_at_layer=0, resid=x, logits_to_keep=1, fwd_hooks=[(lambda n: n in wanted, keep)]
        )
        metric = logit_diff(logits[:, -1], letter_ids, answer)[0]
        grads = torch.autograd.grad(metric, [acts[n] for n in names])
    corr_diff = float(metric.detach())
    clean_diff = float(logit_diff(clean_logits[:, -1], letter_ids, answer)[0])
    per_layer = []
    for name, g in zip(names, grads):
        # ⟨a_clean − a_corr, ∂m/∂a⟩ per position (and head for z), summed within each group
        prod = (clean_cache[name][0].float() - acts[name][0].detach().float()) * g[0].float()
        prod = prod.sum(-1)  # [pos] or [pos, head]
        per_layer.append(torch.stack([prod[pos].sum(0) for pos in groups.values()], dim=-1))
    est = torch.stack(per_layer).cpu()  # [layer, group] or [layer, head, group]
    raw = corr_diff + est
    denom = clean_diff - corr_diff
    effect = (raw - corr_diff) / denom if abs(denom) > 1e-12 else torch.full_like(raw, float("nan"))
    return PatchingResult(effect, raw, clean_diff, corr_diff, list(groups), site, layers)
