"""SmolVLM2 (HF `SmolVLMForConditionalGeneration`, video input).

A video is a sequence of images: the video processor resizes every frame to one square
`max_image_size` image (never split into tiles), and the processor writes, in place of the
template's `<video>`,

    You are provided the following series of {three} frames from a {0:00:02} [H:MM:SS] video.\\n
    \\nFrame from 00:00:<fake_token_around_image><global-img><image>×k<fake_token_around_image>
    \\nFrame from 00:01:<fake_token_around_image><global-img><image>×k<fake_token_around_image> … \\n\\n

(`SmolVLMProcessor.replace_video_token`; the times are the frames' own, index / fps, from the
`video_metadata` vlens passes). Every `<image>` is filled with the frame's features: SigLIP tower →
pixel shuffle (`scale_factor`² neighbouring patches concatenated into one token, row-major, as
Idefics3) → linear projection, so k = (P/scale)².

Layout: frame f's k `<image>` tokens are the `video` positions of frame f; its "Frame from MM:SS:"
text, `<fake_token_around_image>`, `<global-img>` and the closing `<fake_token_around_image>` are
`marker`s of frame f (`layout.frame` = f, the frame they announce). The intro line is before the
video, so it is `system` text; the closing "\\n\\n" and the question are `text`.

LM: Llama (no attention biases), under `model.text_model`.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor, nn

from vlens.config import HookedVideoLLMConfig
from vlens.families.base import Family, decoder_config, decoder_weight_table, pooler_output
from vlens.inputs.layout import LayoutError, VideoLayout, VisionToken

if TYPE_CHECKING:  # pragma: no cover
    from transformers import SmolVLMForConditionalGeneration

FRAME_TEXT = re.compile(r"\s*Frame\s*from\s*[\d\s]+:[\d\s]+:\s*")  # "\nFrame from 00:01:", however tokenized


class SmolVLM(Family):
    name = "smolvlm2"
    architectures = ("SmolVLMForConditionalGeneration",)
    title = "SmolVLM2"
    lm_prefixes = ("model.text_model.", "lm_head.")
    tokenizer: Any = None  # set by bind(): the per-frame text is read with it
    fake_id: int | None = None  # <fake_token_around_image>; set by bind()
    global_id: int | None = None  # <global-img>; set by bind()

    def config(self, hf_config) -> HookedVideoLLMConfig:
        return decoder_config(self, hf_config.text_config, qkv_bias=False)  # Llama: attention_bias is refused

    def weight_table(self, cfg: HookedVideoLLMConfig) -> dict[str, str]:
        return decoder_weight_table(cfg, lm="model.text_model")

    def vision_modules(self, hf_model: nn.Module) -> dict[str, nn.Module]:
        return {n: hf_model.get_submodule(f"model.{n}") for n in ("vision_model", "connector")}

    def video_token_id(self, hf_config) -> int:
        return hf_config.image_token_id  # frames are images to SmolVLM

    def video_features(self, hf_model: nn.Module, inputs) -> Tensor:
        # The checkpoint's own path (tower, pixel shuffle, projection), row by row as its forward.
        hf = cast("SmolVLMForConditionalGeneration", hf_model)  # this family's one HF class
        out = hf.model.get_image_features(
            pixel_values=inputs["pixel_values"],
            pixel_attention_mask=inputs.get("pixel_attention_mask"),
            return_dict=True,
        )
        rows = list(pooler_output(out))
        if len({r.shape[0] for r in rows}) != 1:
            raise ValueError(
                "rows of the batch have different numbers of frames after HF dropped all-zero frames "
                f"({[r.shape[0] for r in rows]} tokens); an all-black frame is treated as padding by SmolVLM"
            )
        return torch.stack(rows)

    # prompt -----------------------------------------------------------------------------------
    def bind(self, processor) -> SmolVLM:
        tok = getattr(processor, "tokenizer", None)
        ids = (lambda t: tok.convert_tokens_to_ids(t)) if tok is not None else (lambda t: None)
        return dataclasses.replace(
            self,
            tokenizer=tok,
            fake_id=ids(getattr(processor, "fake_image_token", "")),
            global_id=ids(getattr(processor, "global_image_token", "")),
        )

    def processor_kwargs(self, videos) -> dict:
        """The sampled frames' indices and the clip's frame rate: the processor writes every frame's
        time (index / fps) and the duration into the prompt."""
        meta = []
        for v in videos:
            if v.fps is None:
                raise ValueError(
                    "SmolVLM2 writes every frame's timestamp into the prompt, and these frames have none: pass fps= "
                    "(the clip's frame rate) to to_inputs, or give a video file"
                )
            meta.append(
                {"total_num_frames": max(v.indices) + 1, "fps": float(v.fps), "frames_indices": list(v.indices)}
            )
        return {"video_metadata": meta}

    # layout -------------------------------------------------------------------------------------
    def layout(self, input_ids: Tensor, attention_mask: Tensor | None, video, hf_config, inputs: dict) -> VideoLayout:
        if "pixel_values" not in inputs:
            raise LayoutError("no pixel_values in the inputs: SmolVLM2 layouts need a video")
        if self.tokenizer is None or self.fake_id is None or self.global_id is None:
            raise LayoutError(
                "SmolVLM2 layouts need the checkpoint's SmolVLMProcessor (its tokenizer and image tokens)"
            )
        ids = input_ids.cpu()
        n_frames = inputs["pixel_values"].shape[1]
        side = hf_config.vision_config.image_size // hf_config.vision_config.patch_size
        g = side // hf_config.scale_factor
        k = g * g
        if video is not None and n_frames != len(video):
            raise LayoutError(f"{len(video)} frames should make {len(video)} images, the processor made {n_frames}")
        is_vision = ids == hf_config.image_token_id
        vis = is_vision.nonzero().flatten()
        if len(vis) != n_frames * k:
            raise LayoutError(f"{len(vis)} <image> tokens, expected {n_frames} frames of {g}x{g} = {n_frames * k}")
        is_marker = torch.zeros_like(is_vision)
        frame = torch.full(ids.shape, -1, dtype=torch.long)
        prev_close = None
        for f in range(n_frames):
            lo, hi = int(vis[f * k]), int(vis[(f + 1) * k - 1])
            open_ = lo - 2  # <fake_token_around_image><global-img> right before the tokens
            if (
                hi - lo + 1 != k
                or open_ < 0
                or int(ids[open_]) != self.fake_id
                or int(ids[lo - 1]) != self.global_id
                or hi + 1 >= len(ids)
                or int(ids[hi + 1]) != self.fake_id
            ):
                raise LayoutError(
                    f"frame {f}'s {k} <image> tokens are not one block inside "
                    "<fake_token_around_image><global-img>…<fake_token_around_image>"
                )
            if prev_close is not None:
                first = prev_close + 1  # exactly the text between the previous frame and this one
            else:  # after the intro: the shortest run of tokens before the frame that holds "Frame"
                first = next(
                    (
                        j
                        for j in range(open_ - 1, max(open_ - 32, -1), -1)
                        if "Frame" in self.tokenizer.decode(ids[j:open_].tolist())
                    ),
                    None,
                )
            text = self.tokenizer.decode(ids[first:open_].tolist()) if first is not None else ""
            if first is None or not FRAME_TEXT.fullmatch(text):
                raise LayoutError(
                    f"frame {f} is not preceded by the processor's 'Frame from MM:SS:' text (found {text!r})"
                )
            is_marker[first:lo] = True
            is_marker[hi + 1] = True
            frame[first:lo] = f
            frame[hi + 1] = f
            prev_close = hi + 1
        tokens = [VisionToken("video", f, r, c) for f in range(n_frames) for r in range(g) for c in range(g)]
        is_pad = attention_mask.cpu() == 0 if attention_mask is not None else None
        lay = VideoLayout.build(
            is_vision,
            tokens,
            is_pad=is_pad,
            is_marker=is_marker,
            frame_times=video.timestamps if video is not None else None,
        )
        frame = torch.where(lay.mask("marker"), frame, lay.frame)  # a timestamp belongs to its frame
        return VideoLayout(lay.segment, frame, lay.row, lay.col, lay.frames_per_group, lay.frame_times)
