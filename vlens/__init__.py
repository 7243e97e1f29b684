"""vlens: TransformerLens-style interpretability for video LLMs.

    from vlens import HookedVideoLLM as HookedVideoLLM, knockout as ko
    model = HookedVideoLLM.from_pretrained("path/to/checkpoint")

The names below are imported on first use (PEP 562), so `vlens --help` and other light entry
points do not pay for torch, transformers and TransformerLens.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "ArgumentError": ("vlens.arguments", "ArgumentError"),
    "CheckpointNotFoundError": ("vlens.model.hub", "CheckpointNotFoundError"),
    "HookedVideoLLM": ("vlens.model.hooked_video_llm", "HookedVideoLLM"),
    "HookedVideoLLMConfig": ("vlens.config", "HookedVideoLLMConfig"),
    "LayoutError": ("vlens.inputs.layout", "LayoutError"),
    "VideoInputs": ("vlens.inputs.video_inputs", "VideoInputs"),
    "VideoLayout": ("vlens.inputs.layout", "VideoLayout"),
    "knockout": ("vlens.interventions.knockout", None),
    "vision_knockout": ("vlens.interventions.vision_knockout", None),
    "vision_lens": ("vlens.interventions.vision_lens", None),
    "VisionHookError": ("vlens.model.vision_hooks", "VisionHookError"),
}

# written out (not list(_LAZY)) so type checkers read it; tests/test_house.py checks it names _LAZY's keys
__all__ = [
    "ArgumentError",
    "CheckpointNotFoundError",
    "HookedVideoLLM",
    "HookedVideoLLMConfig",
    "LayoutError",
    "VideoInputs",
    "VideoLayout",
    "VisionHookError",
    "knockout",
    "vision_knockout",
    "vision_lens",
]

if TYPE_CHECKING:  # pragma: no cover
    from vlens.arguments import ArgumentError as ArgumentError
    from vlens.config import HookedVideoLLMConfig as HookedVideoLLMConfig
    from vlens.inputs.layout import LayoutError as LayoutError
    from vlens.inputs.layout import VideoLayout as VideoLayout
    from vlens.inputs.video_inputs import VideoInputs as VideoInputs
    from vlens.interventions import knockout as knockout
    from vlens.interventions import vision_knockout as vision_knockout
    from vlens.interventions import vision_lens as vision_lens
    from vlens.model.hooked_video_llm import HookedVideoLLM as HookedVideoLLM
    from vlens.model.hub import CheckpointNotFoundError as CheckpointNotFoundError
    from vlens.model.vision_hooks import VisionHookError as VisionHookError


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'vlens' has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = importlib.import_module(module)
    value = value if attr is None else getattr(value, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
