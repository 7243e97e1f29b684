"""Tiny random checkpoints built offline, saved with `save_pretrained`, loaded like real ones.

Tests, examples and benchmarks never download anything: they build a checkpoint here (a
word-level tokenizer made in code, a tiny vision tower, a tiny LM, a chat template, the family's
real HF processor), save it to a directory, and load it back through
`HookedVideoLLM.from_pretrained(dir)`, exactly the path users take with real checkpoints.

One file per family; `common.py` holds what the builders share (config kwargs, random weights,
saving), `tokenizer.py` the word-level tokenizer. The library never imports this package.
"""

from vlens.testing.glm4v import GLM4V_CHAT_TEMPLATE, make_tiny_glm4v
from vlens.testing.hub_cache import write_hub_cache
from vlens.testing.internvl import INTERNVL_CHAT_TEMPLATE, make_tiny_internvl
from vlens.testing.llava_llama import VICUNA_CHAT_TEMPLATE
from vlens.testing.llava_next_video import make_tiny_llava_next_video
from vlens.testing.onevision import CHAT_TEMPLATE, make_tiny_onevision
from vlens.testing.perception_lm import (
    PERCEPTION_LM_CHAT_TEMPLATE,
    make_tiny_perception_lm,
)
from vlens.testing.qwen2_5_vl import QWEN_VL_CHAT_TEMPLATE, make_tiny_qwen2_5_vl
from vlens.testing.qwen2_vl import make_tiny_qwen2_vl
from vlens.testing.qwen3_vl import make_tiny_qwen3_vl
from vlens.testing.qwen3_vl_moe import make_tiny_qwen3_vl_moe
from vlens.testing.releases import (
    make_tiny_internvideo2_5,
    make_tiny_llava_next_video_qwen,
    make_tiny_longva,
)
from vlens.testing.smolvlm import make_tiny_smolvlm
from vlens.testing.tokenizer import SPECIAL_TOKENS, build_word_tokenizer
from vlens.testing.video_llama3 import make_tiny_video_llama3
from vlens.testing.video_llava import make_tiny_video_llava

__all__ = [
    "CHAT_TEMPLATE",
    "GLM4V_CHAT_TEMPLATE",
    "INTERNVL_CHAT_TEMPLATE",
    "PERCEPTION_LM_CHAT_TEMPLATE",
    "QWEN_VL_CHAT_TEMPLATE",
    "SPECIAL_TOKENS",
    "VICUNA_CHAT_TEMPLATE",
    "build_word_tokenizer",
    "make_tiny_glm4v",
    "make_tiny_internvideo2_5",
    "make_tiny_internvl",
    "make_tiny_llava_next_video",
    "make_tiny_llava_next_video_qwen",
    "make_tiny_longva",
    "make_tiny_onevision",
    "make_tiny_perception_lm",
    "make_tiny_qwen2_5_vl",
    "make_tiny_qwen2_vl",
    "make_tiny_qwen3_vl",
    "make_tiny_qwen3_vl_moe",
    "make_tiny_smolvlm",
    "make_tiny_video_llama3",
    "make_tiny_video_llava",
    "write_hub_cache",
]
