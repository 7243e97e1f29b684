"""vlens: TransformerLens-style interpretability for video LLMs.

    from vlens import HookedVideoLLM, knockout as ko
    model = HookedVideoLLM.from_pretrained("path/to/checkpoint")
"""

from vlens import knockout
from vlens.config import HookedVideoLLMConfig
from vlens.inputs import VideoInputs
from vlens.layout import LayoutError, VideoLayout
from vlens.model import HookedVideoLLM

__version__ = "0.1.0"

__all__ = [
    "HookedVideoLLM",
    "HookedVideoLLMConfig",
    "LayoutError",
    "VideoInputs",
    "VideoLayout",
    "knockout",
]
