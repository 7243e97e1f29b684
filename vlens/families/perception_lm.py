"""PerceptionLM (HF `PerceptionLMForConditionalGeneration`; Meta's PLM-1B/3B/8B).

Vision path (HF's `get_image_features`, run as it is, for video frames and image tiles alike):
timm's Perception Encoder through HF's `TimmWrapperModel` → CLS dropped (`vision_use_cls_token`)
→ 2-layer MLP projector (linear, GELU, linear) → *then* `projector_pooling_ratio` average pooling
of the square patch grid (P/ratio)² (HF's `PerceptionLMAdaptiveAvgPooling`; LLaVA-NeXT-Video
pools before its projector, PLM after). Loading needs `timm` (`pip install timm`).

Prompt: the processor expands the template's `<|video|>` into one run of `<|video|>` tokens,
frame after frame, (P/ratio)² a frame row-major, nothing between frames: no separators, no
markers, no timestamps. An `<|image|>` becomes its thumbnail (the whole image at one tile's size)
then its tiles (`thumb+tile`, up to `max_num_tiles`, row-major over the tile grid), (P/ratio)²
tokens each, in one run.

Layout: frame f's tokens are the `video` positions of frame f (row/col in the pooled grid); an
image's tokens are `image` positions of that image, its thumbnail's first, every tile's row/col in
the tile's own pooled grid (the tile grid's shape is not in the inputs: it depends on the
original image size). Everything before the first vision position is `system`.

LM: Llama (no attention biases) under `model.language_model`, 1-D RoPE: default or Llama 3.1's
"llama3" frequency scaling (the released checkpoints use it), computed by HF's own rope function.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, cast

from torch import Tensor, nn

from vlens.components.rotary import Rotary
from vlens.config import HookedVideoLLMConfig
from vlens.families.base import LlavaVideoFamily, decoder_config, per_row, pooler_output
from vlens.inputs.layout import LayoutError, VisionToken

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PerceptionLMForConditionalGeneration

ROPE_TYPES = ("default", "llama3")  # llama3 rescales frequencies only (attention scaling 1)


class MissingDependencyError(ImportError):
    """A package the checkpoint's HF model needs is not installed."""


def require_timm(doing: str = "loading a PerceptionLM checkpoint") -> None:
    """PerceptionLM's vision tower is a timm model (HF's TimmWrapperModel).

    Raises:
        MissingDependencyError: timm is not importable; the message says how to install it.
    """
    try:
        import timm  # noqa: F401
    except ImportError as e:
        raise MissingDependencyError(
            f"{doing} needs timm (its vision tower is a timm Perception Encoder, run through HF's TimmWrapperModel): "
            "pip install timm  (or pip install 'vlens[perceptionlm]')"
        ) from e


class PerceptionLM(LlavaVideoFamily):
    name = "perception-lm"
    title = "PerceptionLM"
    architectures = ("PerceptionLMForConditionalGeneration",)
    hf_merge = True  # features placed by HF's own forward (vlens.model.hf_merge); images supported
    hf_inputs = ("pixel_values", "pixel_values_videos")
    patch_size: int | None = None  # the processor's patch size (set by bind(): it counted the placeholders)

    def check_requirements(self) -> None:
        """Before the HF model is built: timm is installed (HF's own error would not say how)."""
        require_timm()

    def config(self, hf_config) -> HookedVideoLLMConfig:
        t = hf_config.text_config
        rope = dict(getattr(t, "rope_parameters", None) or {})
        # Llama: attention_bias is refused by decoder_config; llama3 RoPE is run by `rotary` below
        return decoder_config(self, t, qkv_bias=False, rope_types=ROPE_TYPES, rope_parameters=rope)

    def rotary(self, cfg: HookedVideoLLMConfig) -> nn.Module:
        """1-D RoPE; with "llama3" scaling the inverse frequencies are HF's own
        (`ROPE_INIT_FUNCTIONS["llama3"]`), so they are the checkpoint's to the bit."""
        rot = Rotary(cfg.d_head, cfg.rope_theta)
        rope = dict(cfg.extra.get("rope_parameters") or {})
        if rope.get("rope_type", "default") == "llama3":
            from transformers import LlamaConfig
            from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

            shape = LlamaConfig(
                hidden_size=cfg.d_model,
                num_attention_heads=cfg.n_heads,
                head_dim=cfg.d_head,
                max_position_embeddings=cfg.n_ctx,
                rope_parameters=rope,
            )
            inv_freq, scaling = ROPE_INIT_FUNCTIONS["llama3"](shape, "cpu")
            assert scaling == 1.0  # llama3 scales frequencies only
            rot.inv_freq.copy_(inv_freq)
        return rot

    def vision_modules(self, hf_model: nn.Module) -> dict[str, nn.Module]:
        return {n: hf_model.get_submodule(f"model.{n}") for n in ("vision_tower", "multi_modal_projector")}

    def video_features(self, hf_model: nn.Module, inputs) -> Tensor:
        # The checkpoint's own path (tower, CLS drop, projector, pooling): frames are tiles to it.
        pixels = inputs["pixel_values_videos"]
        hf = cast("PerceptionLMForConditionalGeneration", hf_model)  # this family's one HF class
        out = hf.model.get_image_features(pixel_values=pixels, return_dict=True)  # [batch*frames, tokens, d]
        return per_row(pooler_output(out), pixels.shape[0])

    def messages(self, question: str, system_prompt: str | None) -> list[dict]:
        """As every family, except the system message's content is a plain string: PerceptionLM's
        template writes `messages[0]['content'] | trim` (a content list would be printed as a
        Python list); without one, the template writes its own default system message."""
        msgs = super().messages(question, None)
        return msgs if system_prompt is None else [{"role": "system", "content": system_prompt}, *msgs]

    def bind(self, processor) -> PerceptionLM:
        return dataclasses.replace(self, patch_size=getattr(processor, "patch_size", None))

    # layout -------------------------------------------------------------------------------------
    def rule_side(self, hf_config, side: int) -> int | None:
        """side // patch // ratio, the processor's rule for one side×side tile's pooled grid, or
        None where the patch size is unknown (no processor, none in the config's model_args: the
        released configs take it from the timm architecture)."""
        patch = self.patch_size or (hf_config.vision_config.model_args or {}).get("patch_size")
        return side // patch // hf_config.projector_pooling_ratio if patch else None  # ratio 1: no pooling

    def pooled_side(self, hf_config, side: int, n_placeholders: int, n_tiles: int, what: str) -> int:
        """The side g of one tile's pooled token grid (a frame, a thumbnail, an image tile): by
        the processor's rule (`rule_side`); without its patch size (`from_hf(hf, None)` +
        `inputs_from_hf`), from the placeholder count, since HF fills exactly g² features per tile
        (its pooling keeps the grid square).

        Raises:
            LayoutError: the count does not match the rule, or is not `n_tiles` squares.
        """
        g = self.rule_side(hf_config, side)
        if g is not None:
            if n_placeholders != n_tiles * g * g:
                raise LayoutError(
                    f"{n_placeholders} {what} placeholder tokens, expected {n_tiles} tiles of the "
                    f"{g}x{g} pooled grid = {n_tiles * g * g}"
                )
            return g
        g = math.isqrt(n_placeholders // n_tiles) if n_tiles else 0
        if n_tiles == 0 or g * g * n_tiles != n_placeholders:
            raise LayoutError(f"{n_placeholders} {what} placeholder tokens are not {n_tiles} square pooled grids")
        return g

    def media_tokens(self, hf_config, inputs: dict) -> tuple[list[list[VisionToken]], list[list[VisionToken]]]:
        """Every image's and every video's tokens, in batch order: frames and tiles are each one
        pooled g×g grid, row-major; an image is its thumbnail then its tiles."""
        ids = inputs["input_ids"]
        images, videos = [], []
        if "pixel_values" in inputs:
            pixels = inputs["pixel_values"]
            if pixels.ndim != 5 or pixels.shape[-1] != pixels.shape[-2]:
                raise LayoutError(
                    f"PerceptionLM pixel_values are [images, tiles, 3, side, side], got {tuple(pixels.shape)}"
                )
            n_images, n_tiles = pixels.shape[:2]
            n = int((ids == hf_config.image_token_id).sum())
            g = self.pooled_side(hf_config, pixels.shape[-1], n, n_images * n_tiles, "<|image|>")
            one = [VisionToken("image", -1, r, c) for _ in range(n_tiles) for r in range(g) for c in range(g)]
            images = [list(one) for _ in range(n_images)]
        if "pixel_values_videos" in inputs:
            pixels = inputs["pixel_values_videos"]
            if pixels.ndim != 5 or pixels.shape[-1] != pixels.shape[-2]:
                raise LayoutError(
                    "PerceptionLM pools a square patch grid: pixel_values_videos must be [batch, frames, "
                    f"3, side, side], got {tuple(pixels.shape)}"
                )
            b, n_frames = pixels.shape[:2]
            n = int((ids == hf_config.video_token_id).sum())
            g = self.pooled_side(hf_config, pixels.shape[-1], n, b * n_frames, "<|video|>")
            one = [VisionToken("video", f, r, c) for f in range(n_frames) for r in range(g) for c in range(g)]
            videos = [list(one) for _ in range(b)]
        return images, videos

    def video_tokens(self, hf_config, n_frames: int, height: int, width: int) -> list[VisionToken]:
        """One video's tokens by the processor's rule (`media_tokens` is what layouts use)."""
        g = self.rule_side(hf_config, height)
        if g is None or height != width:
            raise LayoutError(
                f"no pooled grid for {height}x{width} frames: PerceptionLM pools square tiles, and needs "
                "the processor's patch_size for this rule"
            )
        return [VisionToken("video", f, r, c) for f in range(n_frames) for r in range(g) for c in range(g)]
