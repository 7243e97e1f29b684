"""An SAE spliced into (or reading) a hook of the model, its features as hook points.

    with attach_sae(model, sae):                      # at sae.cfg.hook_name, spliced
        logits, cache = model.run_with_cache(inputs)
    features = cache["blocks.3.hook_resid_post.hook_sae_acts_post"]  # [batch, pos, d_sae]

While attached, the hook point gets children named as TransformerLens' HookedSAETransformer names
them — `<hook>.hook_sae_input`, `.hook_sae_acts_post`, `.hook_sae_recons`, `.hook_sae_error`,
`.hook_sae_output` — so `run_with_cache`, `run_with_hooks` and patching reach the features like
any hook: a feature knockout is a hook on `.hook_sae_acts_post` that zeroes it, feature patching
is the usual patch on that name. Spliced (the default), the activation is replaced by the
reconstruction (plus the error term with `error_term=True`, which makes the clean run exact and
leaves interventions on the features as the only change); `splice=False` only reads. Hooks on
the hook point itself see what it outputs (the reconstruction when spliced).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

from vlens.features.sae import SAE, SAEError

CHILDREN = ("hook_sae_input", "hook_sae_acts_post", "hook_sae_recons", "hook_sae_error", "hook_sae_output")


class _Splice(nn.Module):
    """The SAE's pass at one hook point, through its own hook points."""

    # the CHILDREN hook points, set in __init__ (declared for the type checker)
    hook_sae_input: HookPoint
    hook_sae_acts_post: HookPoint
    hook_sae_recons: HookPoint
    hook_sae_error: HookPoint
    hook_sae_output: HookPoint

    def __init__(self, sae: SAE, hook_name: str, splice: bool, error_term: bool):
        super().__init__()
        self.sae, self.hook_name, self.splice, self.error_term = sae, hook_name, splice, error_term
        for name in CHILDREN:
            setattr(self, name, HookPoint())

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.sae.cfg.d_in:
            raise SAEError(
                f"the SAE reads {self.sae.cfg.d_in}-wide activations but {self.hook_name} is {x.shape[-1]} wide "
                f"({tuple(x.shape)}): attach it at a hook of that width"
            )
        sae_in = self.hook_sae_input(x)
        feats = self.hook_sae_acts_post(self.sae.encode(sae_in))
        recons = self.hook_sae_recons(self.sae.decode(feats, sae_in))
        if not self.splice:
            self.hook_sae_output(recons)
            return x
        out = recons
        if self.error_term:
            clean = self.sae(sae_in).detach()  # the error of the un-intervened reconstruction
            out = out + self.hook_sae_error((x - clean.to(x.dtype)).to(recons.dtype))
        return self.hook_sae_output(out).to(x.dtype)


@contextlib.contextmanager
def attach_sae(
    model, sae: SAE, hook_name: str | None = None, *, splice: bool = True, error_term: bool = False
) -> Iterator[None]:
    """Attach `sae` at `hook_name` (default: the hook it was trained on) for the `with` block.

    An SAE trained on the base language model applies as it is: vlens's LM hooks have
    TransformerLens' names (an SAE for Qwen2-0.5B's `blocks.{l}.hook_resid_post` attaches to
    LLaVA-OneVision-0.5B's language model at the same name); the width is checked on the first call.

    Raises:
        SAEError: no hook name (neither given nor in the SAE's file), a name the model does not
            have (the nearest ones listed), or a hook already carrying an SAE.
    """
    name = hook_name or sae.cfg.hook_name
    if not name:
        raise SAEError("the SAE's file names no hook: pass hook_name= (e.g. 'blocks.3.hook_resid_post')")
    point = model.hook_dict.get(name)
    if point is None:
        stem = name.rsplit(".", 1)[-1]
        near = sorted(n for n in model.hook_dict if n.endswith(stem))[:6]
        raise SAEError(f"{model.cfg.family} has no hook {name!r}; hooks ending in {stem!r}: {near}")
    if hasattr(point, "sae_splice"):
        raise SAEError(f"{name} already carries an SAE; attach one SAE per hook")
    splice_module = _Splice(sae, name, splice, error_term)
    for child in CHILDREN:  # children of the hook point itself: '<hook>.hook_sae_acts_post'
        point.add_module(child, getattr(splice_module, child))
    object.__setattr__(point, "sae_splice", splice_module)  # not a submodule: the model's state_dict stays the model's
    handle = point.register_forward_hook(lambda module, args, out: splice_module(out))
    model.setup()  # TransformerLens' name → hook point table, now with the SAE's hook points
    try:
        yield
    finally:
        handle.remove()
        for child in CHILDREN:
            delattr(point, child)
        object.__delattr__(point, "sae_splice")
        model.setup()
