"""Tiny checkpoints with the real parts of published ones: only the widths are small.

`make_realistic("llava-onevision-qwen2-0.5b-ov", path, tokenizer)` builds the family's tiny
random checkpoint with what the published checkpoint has instead of the made-up parts: its real
tokenizer (passed in: llama.cpp's vocab-only GGUF files turned into HF tokenizers, see
tests/real_vocab.py), its special tokens at their real ids, its published chat template
(`templates/`, each with its provenance in `templates/PROVENANCE.json`; where none was found,
the prompt format its docs give, said so in `template_source`), its processor's real geometry
(image size, patch size, pixel budgets, pooling) and the frame count its docs sample. The LM
and the vision tower stay tiny (64 and 32 wide), so a forward at real resolution runs in
seconds on a CPU, and every token id, layout, role and letter is the one the real checkpoint has.

What could not be checked against the real thing is said in `notes` and in
docs/real-checkpoints.md: no weights are downloaded, so the hub's current tokenizer files and
templates (which may have been edited since the conversion scripts wrote them) were never read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from vlens.testing.special_tokens import RealisticError, place_special_tokens

TEMPLATES = Path(__file__).parent / "templates"
# A spec's tiny widths: the LM and tower shapes every realistic build shares.
SMALL = dict(n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, d_mlp=128, vision_layers=2, vision_d=32)


@dataclass(frozen=True)
class RealisticSpec:
    """What a published checkpoint has that a tiny build can have too.

    Attributes:
        checkpoint: the published checkpoint's hub id.
        vocab: the llama.cpp vocabulary its LM's tokenizer is ("qwen2", "llama-spm", "llama-bpe").
        builder: the family's tiny builder (`vlens.testing.make_tiny_*`).
        special_tokens: real id → token of the multimodal tokens the checkpoint adds (ids at or
            past the base vocabulary's end; a base vocabulary's padding slot is renamed).
        named_tokens: processor attribute → token (e.g. "video_token": "<|video_pad|>"), as the
            family's HF processor reads them off its tokenizer.
        settings: builder kwargs giving the processor's real geometry.
        template: the chat template as a file name under `templates/` or the template text itself.
        template_source: where the template comes from ("published": the file's provenance).
        n_frames: frames its docs sample.
        tokens_per_frame: video tokens per frame (per temporal group for Qwen-VL) at `probe_size`
            (height, width) as its docs or source state them; None where it depends on the video.
        probe_size: the frame size `tokens_per_frame` holds for.
        pad_token: the pad token the checkpoint's tokenizer sets (None: the base vocabulary's).
        notes: what differs from the real checkpoint or could not be checked.
    """

    checkpoint: str
    vocab: str
    builder: Callable[..., Path]
    special_tokens: Mapping[int, str]
    named_tokens: Mapping[str, str] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    template: str = ""
    template_source: str = "published"
    n_frames: int = 8
    tokens_per_frame: int | None = None
    probe_size: tuple[int, int] = (360, 640)
    pad_token: str | None = None
    notes: str = ""

    def chat_template(self) -> str:
        """The chat template text."""
        if self.template.endswith(".jinja"):
            return (TEMPLATES / self.template).read_text(encoding="utf-8")
        return self.template


def _video_pixels(video_processor: str) -> tuple[int, int]:
    # A released video processor's pixel budget is its HF class's default `size` (the class
    # mirrors the preprocessor config the checkpoints ship).
    import transformers

    size = getattr(transformers, video_processor).size
    return size["shortest_edge"], size["longest_edge"]


def _ov_pinpoints() -> list[list[int]]:
    # LLaVA-OneVision's anyres grids (384 × 1..6 in each direction) are its HF config's default.
    from transformers import LlavaOnevisionConfig

    pinpoints = LlavaOnevisionConfig().image_grid_pinpoints
    assert pinpoints is not None  # the class default is the anyres grid list
    return [list(p) for p in pinpoints]


def _with_video_branch(template: str) -> str:
    # LLaVA-NeXT-Video's template as its conversion script wrote it renders images only; HF's docs
    # prompt the checkpoint with "USER: <video>\n… ASSISTANT:", so a video item is written like an
    # image item, before the text.
    marker = "{# Render all text next #}"
    video = (
        "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>\n' }}{% endfor %}"
    )
    if marker not in template:
        raise RealisticError("LLaVA-NeXT-Video's template has changed: no '{# Render all text next #}' marker")
    return template.replace(marker, video + marker)


def _builders() -> dict[str, Callable[..., Path]]:
    from vlens import testing

    return {
        name: getattr(testing, f"make_tiny_{name}")
        for name in (
            "onevision",
            "llava_next_video",
            "video_llava",
            "qwen2_vl",
            "qwen2_5_vl",
            "qwen3_vl",
            "internvl",
            "perception_lm",
            "video_llama3",
        )
    }


QWEN_VL_TOKENS = {
    151652: "<|vision_start|>",
    151653: "<|vision_end|>",
    151654: "<|vision_pad|>",
    151655: "<|image_pad|>",
    151656: "<|video_pad|>",
}
QWEN_VL_NAMED = {
    "image_token": "<|image_pad|>",
    "video_token": "<|video_pad|>",
    "vision_start_token": "<|vision_start|>",
    "vision_end_token": "<|vision_end|>",
}


def _specs() -> dict[str, RealisticSpec]:
    b = _builders()
    vicuna = (TEMPLATES / "llava-hf--LLaVA-NeXT-Video-7B-hf.jinja").read_text(encoding="utf-8")
    from vlens.testing.llava_llama import VICUNA_CHAT_TEMPLATE
    from vlens.testing.qwen3_vl import QWEN3_VL_CHAT_TEMPLATE
    from vlens.testing.video_llama3 import VIDEO_LLAMA3_CHAT_TEMPLATE

    qwen_video = _video_pixels("Qwen2VLVideoProcessor")
    specs = [
        RealisticSpec(
            checkpoint="llava-hf/llava-onevision-qwen2-0.5b-ov-hf",
            vocab="qwen2",
            builder=b["onevision"],
            special_tokens={151646: "<image>", 151647: "<video>"},
            # the conversion resizes the embedding to len(tokenizer) + 2 rounded up to 64: 152000
            settings=dict(image_size=384, patch_size=14, vocab_size=152_000, image_grid_pinpoints=_ov_pinpoints()),
            template="llava-hf--llava-onevision-qwen2-0.5b-ov-hf.jinja",
            n_frames=8,
            tokens_per_frame=196,  # 27×27 SigLIP patches, bilinear-pooled to ⌈27/2⌉² (HF model docs)
            probe_size=(384, 384),
        ),
        RealisticSpec(
            checkpoint="llava-hf/LLaVA-NeXT-Video-7B-hf",
            vocab="llama-spm",
            builder=b["llava_next_video"],
            special_tokens={32000: "<video>", 32001: "<image>"},
            settings=dict(image_size=336, patch_size=14),
            template=_with_video_branch(vicuna),
            template_source="published (conversion script), with a '<video>\\n' branch written like its "
            "'<image>\\n' one: the published string renders images only",
            n_frames=8,
            tokens_per_frame=144,  # 24×24 CLIP-L/14 patches at 336², 2×2 average pooling
            probe_size=(336, 336),
            pad_token="<unk>",
            notes="pad token: the conversion adds none and Vicuna's tokenizer has none; <unk> pads here "
            "(batches only; a single prompt is not padded)",
        ),
        RealisticSpec(
            checkpoint="LanguageBind/Video-LLaVA-7B-hf",
            vocab="llama-spm",
            builder=b["video_llava"],
            special_tokens={32000: "<image>", 32001: "<video>", 32002: "<pad>"},
            settings=dict(image_size=224, patch_size=14),
            template=VICUNA_CHAT_TEMPLATE,
            template_source="documented prompt format 'USER: <video>\\n… ASSISTANT:' (HF model docs); "
            "no published template was found",
            n_frames=8,
            tokens_per_frame=257,  # 16×16 patches of 224² at patch 14, plus the CLS token
            probe_size=(224, 224),
            pad_token="<pad>",
        ),
        RealisticSpec(
            checkpoint="Qwen/Qwen2-VL-7B-Instruct",
            vocab="qwen2",
            builder=b["qwen2_vl"],
            special_tokens=QWEN_VL_TOKENS,
            named_tokens=QWEN_VL_NAMED,
            settings=dict(patch_size=14, min_pixels=56 * 56, max_pixels=28 * 28 * 1280, video_pixels=qwen_video),
            template="Qwen--Qwen2-VL-7B-Instruct.jinja",
            n_frames=8,
            tokens_per_frame=299,  # 640×360 → 644×364 (multiples of 28) → 23×13 merged patches
        ),
        RealisticSpec(
            checkpoint="Qwen/Qwen2.5-VL-7B-Instruct",
            vocab="qwen2",
            builder=b["qwen2_5_vl"],
            special_tokens=QWEN_VL_TOKENS,
            named_tokens=QWEN_VL_NAMED,
            settings=dict(
                patch_size=14,
                window_size=112,
                min_pixels=56 * 56,
                max_pixels=28 * 28 * 1280,
                video_pixels=qwen_video,
            ),
            template="Qwen--Qwen2.5-VL-7B-Instruct.jinja",
            template_source="published for Qwen2-VL-7B-Instruct; the same string is Qwen2.5-VL's in "
            "transformers' tests, but no source ties it to the 2.5 checkpoint",
            n_frames=8,
            tokens_per_frame=299,
        ),
        RealisticSpec(
            checkpoint="Qwen/Qwen3-VL-8B-Instruct",
            vocab="qwen2",
            builder=b["qwen3_vl"],
            special_tokens=QWEN_VL_TOKENS,
            named_tokens=QWEN_VL_NAMED,
            settings=dict(
                patch_size=16,
                min_pixels=32 * 32 * 4,
                max_pixels=32 * 32 * 16384,
                video_pixels=_video_pixels("Qwen3VLVideoProcessor"),
            ),
            template=QWEN3_VL_CHAT_TEMPLATE,
            template_source="ChatML with Qwen-VL's vision tokens and no default system prompt, as "
            "Qwen3's templates write it; the Qwen3-VL template itself was not found",
            n_frames=8,
            tokens_per_frame=None,
            notes="Qwen3's own added tokens (<think>, tool tokens) are not placed; the base is Qwen2's "
            "151,643-token BPE, which Qwen3 shares",
        ),
        RealisticSpec(
            checkpoint="OpenGVLab/InternVL3-8B-hf",
            vocab="qwen2",
            builder=b["internvl"],
            special_tokens={
                151665: "<img>",
                151666: "</img>",
                151667: "<IMG_CONTEXT>",
                **dict(enumerate(["<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>", "<video>"], 151668)),
            },
            named_tokens={
                "start_image_token": "<img>",
                "end_image_token": "</img>",
                "context_image_token": "<IMG_CONTEXT>",
                "video_token": "<video>",
            },
            settings=dict(image_size=448, patch_size=14),
            template="OpenGVLab--InternVL3-8B-hf.jinja",
            n_frames=8,
            tokens_per_frame=256,  # 32×32 InternViT patches at 448², pixel-shuffled by 0.5
            probe_size=(448, 448),
            notes="ids 151646–151664 (Qwen2.5's tool and FIM tokens) and InternVL's box/ref tokens "
            "stay unnamed placeholders; <img> … </box> in the order the conversion script adds them; the <video> "
            "placeholder's id (after </box>) is not stated in the sources read",
        ),
        RealisticSpec(
            checkpoint="facebook/Perception-LM-1B",
            vocab="llama-bpe",
            builder=b["perception_lm"],
            special_tokens={128002: "<|image|>", 128003: "<|video|>"},  # Llama 3 reserved slots 0 and 1
            named_tokens={"image_token": "<|image|>", "video_token": "<|video|>"},
            settings=dict(tile_size=448, patch_size=14, pooling_ratio=2),
            template="facebook--Perception-LM-8B.jinja",
            template_source="published for the family (the conversion script converts every PerceptionLM checkpoint)",
            n_frames=8,
            tokens_per_frame=256,  # 32×32 patches of a 448² tile, 2×2 average pooling
            probe_size=(448, 448),
            pad_token="<|end_of_text|>",
        ),
        RealisticSpec(
            checkpoint="DAMO-NLP-SG/VideoLLaMA3-2B",
            vocab="qwen2",
            builder=b["video_llama3"],
            special_tokens={151655: "<|image_pad|>", 151656: "<|video_pad|>"},
            named_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
            settings=dict(zip(("min_pixels", "max_pixels"), _video_pixels("VideoLlama3VideoProcessor")), patch_size=14),
            template=VIDEO_LLAMA3_CHAT_TEMPLATE,
            template_source="ChatML with a default system prompt as HF's VideoLLaMA3 docs prompt it; "
            "the released template was not found",
            n_frames=8,
            notes="the media token ids are assumed to be Qwen-VL's; the sources read do not state them",
        ),
    ]
    return {s.checkpoint.split("/")[1]: s for s in specs}


def realistic_specs() -> dict[str, RealisticSpec]:
    """Every realistic spec by short name (the checkpoint id's name part)."""
    return _specs()


def realistic_spec(name: str) -> RealisticSpec:
    """The spec of `name` (a short name or the full hub id)."""
    specs = _specs()
    short = name.split("/")[-1]
    if short not in specs:
        raise RealisticError(f"no realistic spec for {name!r}; known: {sorted(specs)}")
    return specs[short]


def make_realistic(
    name: str,
    path: str | Path,
    tokenizer,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    **overrides: Any,
) -> Path:
    """The tiny random checkpoint of `name` with its real tokenizer, ids, template and geometry.

    Args:
        name: a spec's short name or hub id (`realistic_specs()` lists them).
        path: where to save it.
        tokenizer: the real HF tokenizer of the spec's `vocab`, without the checkpoint's special
            tokens (tests/real_vocab.py: `real_tokenizer(spec.vocab)`).
        seed: the random weights' seed.
        dtype: the saved weights' dtype.
        **overrides: builder kwargs that replace the tiny widths or the real geometry.

    Raises:
        RealisticError: an unknown name, or a tokenizer that is not the spec's vocabulary.
    """
    spec = realistic_spec(name)
    expected = {"qwen2": 151_936, "llama-spm": 32_000, "llama-bpe": 128_256}[spec.vocab]
    if tokenizer.vocab_size != expected:
        raise RealisticError(
            f"{spec.checkpoint} needs the {spec.vocab} vocabulary ({expected:,} ids); "
            f"the tokenizer given has {tokenizer.vocab_size:,}"
        )
    real = place_special_tokens(tokenizer, spec.special_tokens, named=spec.named_tokens, pad=spec.pad_token)
    kwargs = {**SMALL, **dict(spec.settings), **overrides}
    build = partial(spec.builder, path, seed=seed, dtype=dtype, tokenizer=real, chat_template=spec.chat_template())
    return build(**kwargs)
