"""Qwen2-VL (HF `Qwen2VLForConditionalGeneration`).

The same video path and layout as Qwen2.5-VL (vlens/families/qwen2_5_vl.py): 2 frames a temporal
patch, 2×2 patch merging, the groups' tokens row-major between `<|vision_start|>` and
`<|vision_end|>` (`marker`s), `layout.frames_per_group` = 2. The ViT has full attention in every
block (no windows) and the LM is Qwen2 with M-RoPE (chunked `mrope_section`).

One difference matters to a study: Qwen2-VL's M-RoPE time axis is the temporal-group *index*
(group g at start + g), not the frames' timestamps, so frames need no `fps=` and two clips sampled
at different rates get the same positions. vlens takes the positions from the HF model's own
`get_rope_index`, as for Qwen2.5-VL.
"""

from __future__ import annotations

from vlens.families.qwen2_5_vl import Qwen25VL


class Qwen2VL(Qwen25VL):
    name = "qwen2-vl"
    architectures = ("Qwen2VLForConditionalGeneration",)
    title = "Qwen2-VL"
    hf_inputs = ("pixel_values", "pixel_values_videos", "image_grid_thw", "video_grid_thw", "mm_token_type_ids")

    def processor_kwargs(self, videos) -> dict:
        """Nothing: Qwen2-VL's positions do not depend on the frames' times."""
        return {}
