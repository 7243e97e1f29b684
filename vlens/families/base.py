"""What every family provides (see vlens/families/__init__.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from jaxtyping import Float
from torch import Tensor, nn

from vlens.config import HookedVideoLLMConfig
from vlens.layout import VideoLayout

if TYPE_CHECKING:  # pragma: no cover
    from vlens.inputs import VideoInputs
    from vlens.video import SampledVideo


class UnsupportedModelError(ValueError):
    """The checkpoint's architecture has no vlens family."""


class Family:
    name: str = ""
    architectures: tuple[str, ...] = ()

    def config(self, hf_config) -> HookedVideoLLMConfig:
        raise NotImplementedError

    def weight_table(self, cfg: HookedVideoLLMConfig) -> dict[str, str]:
        raise NotImplementedError

    def vision_modules(self, hf_model: nn.Module) -> dict[str, nn.Module]:
        raise NotImplementedError

    def video_token_id(self, hf_config) -> int:
        raise NotImplementedError

    def video_features(self, hf_model: nn.Module, inputs: VideoInputs) -> Float[Tensor, "batch n_vision d_model"]:
        raise NotImplementedError

    def layout(
        self, input_ids: Tensor, attention_mask: Tensor | None, video: SampledVideo | None, hf_config, inputs: dict
    ) -> VideoLayout:
        raise NotImplementedError

    def messages(self, question: str, system_prompt: str | None) -> list[dict]:
        """Chat messages for one video question, in the HF content-list format."""
        msgs = []
        if system_prompt is not None:
            msgs.append({"role": "system", "content": [{"type": "text", "text": system_prompt}]})
        msgs.append({"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]})
        return msgs

    def processor_kwargs(self, videos: list[SampledVideo]) -> dict:
        """Extra kwargs for the processor call (e.g. frame timestamps for M-RoPE)."""
        return {}


def hf_parameter(hf_model: nn.Module, name: str) -> nn.Parameter:
    """The HF model's parameter by dotted name; tied weights resolve to the shared tensor."""
    try:
        p = hf_model.get_parameter(name)
    except AttributeError as e:
        raise KeyError(f"the HF model has no parameter {name!r}; the family's weight table is out of date") from e
    assert isinstance(p, torch.nn.Parameter)
    return p
