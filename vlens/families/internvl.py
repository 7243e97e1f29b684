"""InternVL (HF `InternVLForConditionalGeneration`: InternVL2.5/3 as converted to transformers).

A video is a sequence of images: the processor resizes every frame to one square tile (no
cropping into sub-tiles, unlike a still image) and writes, in place of the template's `<video>`,

    Frame1: <img><IMG_CONTEXT>×k</img>\\nFrame2: <img><IMG_CONTEXT>×k</img>\\n…

(`InternVLProcessor.replace_video_token`). The model fills every `<IMG_CONTEXT>` (the config's
`image_token_id`; there is no separate video token) with the frame's features: InternViT tower
(features of `vision_feature_layer`, CLS dropped by the "default" strategy) → pixel shuffle of the
P×P patch grid by `downsample_ratio` (0.5: 2×2 neighbouring patches concatenated into one token,
so k = (P/2)², row-major; HF's double transpose keeps rows as rows) → LayerNorm + 2-layer MLP
projector.

Layout: frame i's k context tokens are the `video` positions of frame i (row/col on the
shuffled grid). `<img>`, `</img>` and the per-frame text the processor writes ("Frame1: " before
the first `<img>`, "\\nFrameN: " between `</img>` and the next `<img>`) are `marker`s: template
text, not vision, so knockouts of text→video edges leave them alone. The trailing newline after
the last `</img>` comes from the chat template and is plain `text`. The per-frame text is found by
tokenizing what the processor writes with the checkpoint's own tokenizer (so `bind` keeps it) and
checked token by token; a prompt that does not have it is a `LayoutError`.

The LM is Qwen2 (InternVL2.5/3: q/k/v biases) or Llama without attention biases. Other decoders
(InternLM2, Qwen3 with q/k norms in InternVL3.5, Llama with `attention_bias`, which biases o_proj
too) are refused.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor, nn

from vlens.config import HookedVideoLLMConfig
from vlens.families.base import Family, decoder_config, decoder_weight_table, per_row, pooler_output
from vlens.inputs.layout import LayoutError, VideoLayout, VisionToken

if TYPE_CHECKING:  # pragma: no cover
    from transformers import InternVLForConditionalGeneration

# What InternVLProcessor.replace_video_token writes before each frame's <img> (frames are
# joined by "\n", so every frame after the first has the newline in front of its label).
FIRST_FRAME_TEXT = "Frame{n}: "
NEXT_FRAME_TEXT = "\nFrame{n}: "


class InternVL(Family):
    name = "internvl"
    architectures = ("InternVLForConditionalGeneration",)
    hf_merge = True  # features placed by HF's own forward (vlens.model.hf_merge)
    hf_inputs = ("pixel_values",)
    tokenizer: Any = None  # set by bind(): the per-frame text markers are tokenized with it
    img_ids: tuple[int | None, int | None] = (None, None)  # <img>, </img>; set by bind()
    _label_ids: dict = field(default_factory=dict, compare=False, repr=False)  # memo: label text -> ids

    def config(self, hf_config) -> HookedVideoLLMConfig:
        t = hf_config.text_config
        if t.model_type == "qwen2":  # Qwen2 always has q/k/v biases (no config switch)
            return decoder_config(self, t, qkv_bias=True)
        if t.model_type == "llama":
            # Llama's attention_bias also puts a bias on o_proj, which the hooked decoder lacks:
            # refuse it rather than run a silently different model.
            if getattr(t, "attention_bias", False):
                raise NotImplementedError(
                    "InternVL with a Llama LM with attention_bias=True (o_proj bias) is not supported"
                )
            return decoder_config(self, t, qkv_bias=False)
        raise NotImplementedError(
            f"InternVL with a {t.model_type!r} language model is not supported (only qwen2 and llama)"
        )

    def weight_table(self, cfg: HookedVideoLLMConfig) -> dict[str, str]:
        # lm_head may be tied to embed_tokens (InternVL3-1B/2B); hf_parameter resolves ties.
        return decoder_weight_table(cfg)

    def vision_modules(self, hf_model: nn.Module) -> dict[str, nn.Module]:
        return {n: hf_model.get_submodule(f"model.{n}") for n in ("vision_tower", "multi_modal_projector")}

    def video_token_id(self, hf_config) -> int:
        return hf_config.image_token_id  # <IMG_CONTEXT>: frames are images to InternVL

    def video_features(self, hf_model: nn.Module, inputs) -> Tensor:
        # The checkpoint's own path, as its forward runs `pixel_values` (all rows' frames, in
        # order): tower, feature layer, CLS drop, pixel shuffle, projector.
        # InternVL's HF class, which InternVideo2.5 is built on too
        hf = cast("InternVLForConditionalGeneration", hf_model)
        out = hf.model.get_image_features(pixel_values=inputs["pixel_values"], return_dict=True)
        return per_row(pooler_output(out), inputs["input_ids"].shape[0])

    # prompt -----------------------------------------------------------------------------------
    def bind(self, processor) -> InternVL:
        # The processor's own <img>/</img> ids and tokenizer: the markers are what it writes.
        return dataclasses.replace(
            self,
            tokenizer=getattr(processor, "tokenizer", None),
            img_ids=(getattr(processor, "start_image_token_id", None), getattr(processor, "end_image_token_id", None)),
            _label_ids={},
        )

    def _text_ids(self, text: str) -> tuple[int, ...]:
        # Labels repeat in every row and call: tokenize each once.
        if text not in self._label_ids:
            self._label_ids[text] = tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return self._label_ids[text]

    # layout -------------------------------------------------------------------------------------
    def shuffled_grid(self, hf_config, height: int, width: int) -> tuple[int, int]:
        v = hf_config.vision_config
        ph, pw = v.patch_size if isinstance(v.patch_size, (list, tuple)) else (v.patch_size,) * 2
        if height != width or height % ph or width % pw:
            raise LayoutError(f"InternVL shuffles a square patch grid; the processor gave {height}x{width} frames")
        scale = round(1 / hf_config.downsample_ratio)
        if (height // ph) % scale:
            raise LayoutError(f"a {height // ph}-patch grid cannot be pixel-shuffled by {hf_config.downsample_ratio}")
        return height // ph // scale, width // pw // scale

    def layout(self, input_ids: Tensor, attention_mask: Tensor | None, video, hf_config, inputs: dict) -> VideoLayout:
        if "pixel_values" not in inputs:
            raise LayoutError("no pixel_values in the inputs: InternVL layouts need a video")
        if self.tokenizer is None or None in self.img_ids:
            raise LayoutError("InternVL layouts need the checkpoint's InternVLProcessor (its tokenizer and <img> ids)")
        ids = input_ids.cpu()
        h, w = inputs["pixel_values"].shape[-2:]
        gh, gw = self.shuffled_grid(hf_config, int(h), int(w))
        start_id, end_id = self.img_ids
        starts = (ids == start_id).nonzero().flatten().tolist()
        ends = (ids == end_id).nonzero().flatten().tolist()
        n_frames = len(starts)
        if video is not None and n_frames != len(video):
            raise LayoutError(
                f"{len(video)} frames should make {len(video)} <img> blocks, the prompt has {n_frames} "
                "(one video per row and no images are supported)"
            )
        if (
            len(ends) != n_frames
            or any(not s < e for s, e in zip(starts, ends))
            or any(e >= s for e, s in zip(ends, starts[1:]))
        ):
            raise LayoutError(f"<img> at {starts} and </img> at {ends} do not pair up into frame blocks")
        is_vision = ids == hf_config.image_token_id
        is_marker = torch.zeros_like(is_vision)
        for i, (s, e) in enumerate(zip(starts, ends)):
            if e - s - 1 != gh * gw or not bool(is_vision[s + 1 : e].all()):
                raise LayoutError(
                    f"frame {i}'s <img> block holds {e - s - 1} positions, expected {gh * gw} "
                    f"<IMG_CONTEXT> tokens ({gh}x{gw} after pixel shuffle)"
                )
            # the label in front of this frame: right before its <img>, after the previous </img>
            text = (FIRST_FRAME_TEXT if i == 0 else NEXT_FRAME_TEXT).format(n=i + 1)
            label = self._text_ids(text)
            lo = s - len(label)
            if lo < 0 or tuple(ids[lo:s].tolist()) != label or (i > 0 and lo != ends[i - 1] + 1):
                raise LayoutError(
                    f"frame {i} is not preceded by the processor's label {text!r} (token ids {list(label)})"
                )
            is_marker[lo : s + 1] = True
            is_marker[e] = True
        if int(is_vision.sum()) != n_frames * gh * gw:
            raise LayoutError("<IMG_CONTEXT> tokens outside the frames' <img> blocks (images are not supported)")
        tokens = [VisionToken("video", f, r, c) for f in range(n_frames) for r in range(gh) for c in range(gw)]
        is_pad = attention_mask.cpu() == 0 if attention_mask is not None else None
        times = video.timestamps if video is not None else None
        return VideoLayout.build(is_vision, tokens, is_pad=is_pad, is_marker=is_marker, frame_times=times)

    # images (vlens.inputs.media_layout) ------------------------------------------------------------------
    def media_layout_applies(self, inputs: dict, hf_config=None) -> bool:
        """Frame-labelled prompts (the processor's `FrameN: <img>…</img>`, found with the
        tokenizer) take the video rules above; anything else is laid out as images."""
        if self.tokenizer is None or None in self.img_ids:
            return True
        label = self._text_ids(FIRST_FRAME_TEXT.format(n=1))
        ids = inputs["input_ids"]
        return not any(_contains(row.tolist(), list(label)) for row in ids)

    def media_ids(self, hf_config) -> tuple[int | None, int | None]:
        return hf_config.image_token_id, None

    def markers(self, input_ids: Tensor, hf_config) -> Tensor:
        """`<img>` / `</img>` (known from the bound processor) are template markers."""
        ids = input_ids.cpu()
        marks = torch.zeros_like(ids, dtype=torch.bool)
        for tok in self.img_ids:
            if tok is not None:
                marks |= ids == tok
        return marks

    def media_tokens(self, hf_config, inputs: dict) -> tuple[list, list]:
        """Every tile of `pixel_values` is one image of the shuffled grid's tokens (HF InternVL
        does not record which tiles form one picture; `inputs_from_hf(..., images_as_frames=True)`
        reads them as the frames of a video)."""
        if "pixel_values" not in inputs:
            return [], []
        h, w = inputs["pixel_values"].shape[-2:]
        gh, gw = self.shuffled_grid(hf_config, int(h), int(w))
        one = [VisionToken("image", -1, r, c) for r in range(gh) for c in range(gw)]
        return [list(one) for _ in range(inputs["pixel_values"].shape[0])], []


def _contains(seq: list[int], sub: list[int]) -> bool:
    n = len(sub)
    return any(seq[i : i + n] == sub for i in range(len(seq) - n + 1))
