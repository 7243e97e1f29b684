"""TransformerLens' `ActivationCache`, aware of residual-stream writers TransformerLens does not
know: Qwen3-VL's DeepStack additions (`blocks.{l}.hook_deepstack`), which enter the residual
stream after block l's MLP. Everything else is TransformerLens' own code."""

from __future__ import annotations

import torch
from transformer_lens import ActivationCache


class VideoActivationCache(ActivationCache):
    """An `ActivationCache` whose `decompose_resid` includes the DeepStack additions."""

    def decompose_resid(
        self,
        layer=None,
        mlp_input=False,
        mode="all",
        apply_ln=False,
        pos_slice=None,
        incl_embeds=True,
        return_labels=False,
    ):
        """TransformerLens' `decompose_resid`, plus one `{l}_deepstack` component after
        `{l}_mlp_out` for every DeepStack block l below `layer` (mode "all" only: they are neither
        attention nor MLP outputs). Components sum to the residual stream as before.

        Returns:
            [component, batch, pos, d_model] (and the labels with `return_labels`).
        """
        n_deep = getattr(self.model.cfg, "deepstack_layers", 0)
        if not n_deep or mode != "all":
            return super().decompose_resid(layer, mlp_input, mode, apply_ln, pos_slice, incl_embeds, return_labels)
        from transformer_lens.utilities.slice import Slice

        comps, labels = super().decompose_resid(layer, mlp_input, mode, False, pos_slice, incl_embeds, True)
        stop = self.model.cfg.n_layers if layer is None or layer == -1 else layer
        slicer = pos_slice if isinstance(pos_slice, Slice) else Slice(pos_slice)
        parts, out_labels = list(comps), list(labels)
        for l in reversed(range(min(stop, n_deep))):
            at = out_labels.index(f"{l}_mlp_out") + 1
            parts.insert(at, slicer.apply(self[f"blocks.{l}.hook_deepstack"], dim=-2))
            out_labels.insert(at, f"{l}_deepstack")
        components = torch.stack(parts, dim=0)
        if apply_ln:
            components = self.apply_ln_to_stack(components, layer, pos_slice=pos_slice, mlp_input=mlp_input)
        return (components, out_labels) if return_labels else components
