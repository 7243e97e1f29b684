"""The HF model's own multimodal merge: images and videos placed exactly where HF places them.

An HF video LLM's forward runs its vision tower and projector on every `pixel_values*` tensor,
then writes the features into the token embeddings at the placeholder positions (images first,
then videos, each in batch order, anyres packing and newline vectors included) and calls its
language model with `inputs_embeds`. vlens runs that part of the HF forward itself and stops it at
the language model's door (a forward pre-hook that captures the call's arguments and raises):
so whatever combination of inputs the HF model accepts — one image, several, image + video,
mixed resolutions — reaches the hooked decoder exactly as it would reach HF's decoder, with no
re-implemented placement rule to drift from HF's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jaxtyping import Float
from torch import Tensor, nn


class _ReachedLanguageModel(Exception):  # noqa: N818 (control flow, not an error)
    """Raised by the pre-hook to stop the HF forward once the decoder's inputs are known."""


def language_model_inputs(hf_model: nn.Module, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments the HF model would pass to its language model for `inputs`
    (`inputs_embeds` [batch, pos, d_model] with the vision features in place, `position_ids`,
    `attention_mask`), computed by HF's own code.

    Args:
        hf_model: an HF `*ForConditionalGeneration` whose inner `.model` has a `.language_model`.
        inputs: the HF model's kwargs (input_ids, pixel values, grids, ...).

    Returns:
        The captured keyword arguments.

    Raises:
        TypeError: the HF model has no `model.language_model` to stop at.
    """
    inner = getattr(hf_model, "model", None)
    lm = getattr(inner, "language_model", None)
    if inner is None or lm is None:
        raise TypeError(f"{type(hf_model).__name__} has no model.language_model: vlens cannot run its multimodal merge")
    captured: dict[str, Any] = {}

    def stop(module, args, kwargs):
        captured.update(kwargs)
        if args:
            captured["_args"] = args
        raise _ReachedLanguageModel

    handle = lm.register_forward_pre_hook(stop, with_kwargs=True)
    try:
        inner(**dict(inputs), use_cache=False)
    except _ReachedLanguageModel:
        pass
    finally:
        handle.remove()
    if "inputs_embeds" not in captured:
        raise TypeError(f"{type(hf_model).__name__} did not call its language model with inputs_embeds")
    return captured


def merged_embeddings(hf_model: nn.Module, inputs: Mapping[str, Any]) -> Float[Tensor, "batch pos d_model"]:
    """HF's token embeddings with every image and video feature in place (see the module doc)."""
    return language_model_inputs(hf_model, inputs)["inputs_embeds"]
