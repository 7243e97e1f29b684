"""Tiny random checkpoints built offline, saved with `save_pretrained`, loaded like real ones.

Tests, examples and benchmarks never download anything: they build a checkpoint here (a
word-level tokenizer made in code, a tiny vision tower, a tiny LM, a chat template, the family's
real HF processor), save it to a directory, and load it back through
`HookedVideoLLM.from_pretrained(dir)`, exactly the path users take with real checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from vlens.families.base import chatml_template

SPECIAL_TOKENS = ["<pad>", "<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<video>", "<image>"]

WORDS = """
the a an is are was be of to in on at with from by for and or not it its this that these those there
what which who how many much does do did when where why whose video clip frame frames object objects
answer option options choice choices letter given directly best question questions please only
you helpful assistant system user carefully watch describe following select below
color colour shape first last appears appear appeared moving move moves direction left right up down
change changes changed same different count number one two three four five six seven eight nine ten
zero yes no red green blue yellow purple orange white black gray cyan magenta circle square triangle
cross star ball box size big small large top bottom middle before after during end start person
action happening happens doing scene camera background
""".split()

PUNCTUATION = list(".,:;?!'\"()-/")


def build_word_tokenizer(extra_words: Iterable[str] = ()):
    """A word-level tokenizer made in code: splits on whitespace and punctuation; special tokens
    stay whole; capitalised variants of every word; single letters A–F and digits are tokens."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words: list[str] = []
    for w in [*WORDS, *extra_words]:
        for v in (w, w.capitalize()):
            if v not in words:
                words.append(v)
    vocab_list = SPECIAL_TOKENS + [c for c in "ABCDEF"] + [str(d) for d in range(10)] + PUNCTUATION
    vocab_list += [w for w in words if w not in vocab_list]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(r"\s+"), behavior="removed"), pre_tokenizers.Punctuation(), pre_tokenizers.Digits(individual_digits=True)]
    )
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins words with spaces
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="<|im_end|>",
        bos_token=None,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in ("<pad>", "<unk>")],
        padding_side="left",
    )
    return fast


# ChatML as LLaVA-OneVision/Qwen2 checkpoints use it, with HF content lists ({"type": "video"}).
CHAT_TEMPLATE = chatml_template("<video>\n", image="<image>\n")


def _randomise(model: torch.nn.Module, std: float = 0.08) -> None:
    # HF's init gives near-zero LM outputs at this size; a wider normal makes logits differ
    # visibly between inputs, so parity and knockout tests measure something.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name or "layer_norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0.0, std)


# --- what the builders share -----------------------------------------------------------------------

def _lm_kwargs(tokenizer, *, n_layers: int, d_model: int, n_heads: int, n_kv_heads: int, d_mlp: int,
               vocab_size: int | None = None) -> dict:
    """The tiny LM's shape and special-token ids as HF text-config kwargs. `vocab_size` larger
    than the tokenizer adds unused embedding rows."""
    return dict(
        vocab_size=max(len(tokenizer), vocab_size or 0),
        hidden_size=d_model,
        intermediate_size=d_mlp,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv_heads,
        max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )


def _text_config(kind: str, tokenizer, *, tie: bool = False, **sizes):
    """The tiny LM's HF config: "qwen2" (RMSNorm eps 1e-6, q/k/v biases) or "llama" (eps 1e-5, no
    attention biases); `sizes` as `_lm_kwargs` takes them."""
    from transformers import LlamaConfig, Qwen2Config

    common = dict(_lm_kwargs(tokenizer, **sizes), tie_word_embeddings=tie)
    if kind == "llama":
        return LlamaConfig(**common, rms_norm_eps=1e-5, attention_bias=False)
    return Qwen2Config(**common, rope_theta=10000.0, rms_norm_eps=1e-6)


def _vision_config(config_cls, vision_d: int, vision_layers: int, image_size: int, patch_size: int, **extra):
    """A tiny vision tower's HF config (CLIP, SigLIP, InternViT): 2 heads, MLP width 2·vision_d."""
    return config_cls(
        hidden_size=vision_d, intermediate_size=2 * vision_d, num_hidden_layers=vision_layers,
        num_attention_heads=2, image_size=image_size, patch_size=patch_size, **extra,
    )


def _save_checkpoint(model, processor, tokenizer, path: Path, dtype: torch.dtype) -> Path:
    """Randomise (after the caller seeded torch), save model and processor with save_pretrained."""
    from transformers.utils import logging as hf_logging

    model.eval()
    _randomise(model)
    model.to(dtype)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(path)
        processor.save_pretrained(path)
    finally:
        hf_logging.enable_progress_bar()
    return path


def make_tiny_onevision(
    path: str | Path,
    *,
    seed: int = 0,
    n_layers: int = 2,
    d_model: int = 64,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    d_mlp: int = 128,
    image_size: int = 32,
    patch_size: int = 8,
    vision_layers: int = 2,
    vision_d: int = 32,
    extra_words: Iterable[str] = (),
    vocab_size: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """A tiny random LLaVA-OneVision checkpoint (SigLIP tower, Qwen2 LM, real processor) in `path`.

    Each frame gives ⌈P/2⌉² video tokens (P = image_size // patch_size) and the video ends with one
    `image_newline` separator: 4 frames of the defaults are 4·4 + 1 = 17 vision positions.
    `vocab_size` larger than the tokenizer pads the embedding/unembedding (benchmarks use it to
    give the unembed a realistic cost).
    """
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
        SiglipVisionConfig,
    )

    path = Path(path)
    tokenizer = build_word_tokenizer(extra_words)
    text = _text_config("qwen2", tokenizer, n_layers=n_layers, d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads,
                        d_mlp=d_mlp, vocab_size=vocab_size)
    vision = _vision_config(SiglipVisionConfig, vision_d, vision_layers, image_size, patch_size)
    config = LlavaOnevisionConfig(
        text_config=text.to_dict(),
        vision_config=vision.to_dict(),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_id=tokenizer.convert_tokens_to_ids("<video>"),
        vision_feature_select_strategy="full",  # SigLIP has no CLS token
        vision_feature_layer=-1,
        tie_word_embeddings=False,
    )
    config.architectures = ["LlavaOnevisionForConditionalGeneration"]
    torch.manual_seed(seed)
    model = LlavaOnevisionForConditionalGeneration(config)
    size = {"height": image_size, "width": image_size}
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size=size, image_grid_pinpoints=[[image_size, image_size]]),
        video_processor=LlavaOnevisionVideoProcessor(size=size),
        tokenizer=tokenizer,
        num_image_tokens=(image_size // patch_size) ** 2,
        vision_feature_select_strategy="full",
        chat_template=CHAT_TEMPLATE,
    )
    return _save_checkpoint(model, processor, tokenizer, path, dtype)


# --- more families -------------------------------------------------------------------------------

# Vicuna-style "USER: ... ASSISTANT:" as LLaVA-NeXT-Video and Video-LLaVA checkpoints use it
# (the video placeholder first, then the text; a system message is plain text before).
VICUNA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{% for content in message['content'] %}{{ content['text'] + ' ' }}{% endfor %}"
    "{% else %}"
    "{{ message['role'].upper() + ': ' }}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' ' }}{% endfor %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

VICUNA_WORDS = ("USER", "ASSISTANT", "SYSTEM")


def _word_tokenizer_with(named: dict[str, str] | None = None, extra_words: Iterable[str] = (), new_special: Iterable[str] = ()):
    """build_word_tokenizer() plus extra special tokens; `named` also exposes them as the
    model-specific attributes processors read (e.g. tokenizer.start_image_token)."""
    tok = build_word_tokenizer(extra_words)
    new = [t for t in [*new_special, *(named or {}).values()] if t not in tok.get_vocab()]
    if new:
        tok.add_tokens(list(dict.fromkeys(new)), special_tokens=True)
    if named:
        tok._set_model_specific_special_tokens(dict(named))
    return tok


def _tiny_llava_llama(path: str | Path, hf_classes: tuple, *, config_extra: dict, image_processor_extra: dict, seed: int,
                      n_layers: int, d_model: int, n_heads: int, n_kv_heads: int, d_mlp: int, image_size: int,
                      patch_size: int, vision_layers: int, vision_d: int, dtype: torch.dtype) -> Path:
    """What the Vicuna-style LLaVA video checkpoints share (LLaVA-NeXT-Video, Video-LLaVA): the
    word tokenizer with USER/ASSISTANT, a Llama LM, a CLIP tower read at layer −2 with the
    "default" (CLS-dropping) strategy, frames resized to the shortest edge and centre-cropped.
    `hf_classes`: (config, model, processor, image processor, video processor) classes."""
    from transformers import CLIPVisionConfig

    config_cls, model_cls, processor_cls, image_processor_cls, video_processor_cls = hf_classes
    path = Path(path)
    tokenizer = _word_tokenizer_with(extra_words=VICUNA_WORDS)
    text = _text_config("llama", tokenizer, n_layers=n_layers, d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads,
                        d_mlp=d_mlp)
    vision = _vision_config(CLIPVisionConfig, vision_d, vision_layers, image_size, patch_size, projection_dim=vision_d)
    config = config_cls(
        text_config=text.to_dict(),
        vision_config=vision.to_dict(),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        tie_word_embeddings=False,
        **config_extra,
    )
    config.architectures = [model_cls.__name__]
    torch.manual_seed(seed)
    model = model_cls(config)
    size, crop = {"shortest_edge": image_size}, {"height": image_size, "width": image_size}
    processor = processor_cls(
        image_processor=image_processor_cls(size=size, crop_size=crop, **image_processor_extra),
        video_processor=video_processor_cls(size=size, crop_size=crop),
        tokenizer=tokenizer,
        chat_template=VICUNA_CHAT_TEMPLATE,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    return _save_checkpoint(model, processor, tokenizer, path, dtype)


def make_tiny_llava_next_video(
    path: str | Path,
    *,
    seed: int = 0,
    n_layers: int = 2,
    d_model: int = 64,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    d_mlp: int = 128,
    image_size: int = 32,
    patch_size: int = 8,
    vision_layers: int = 2,
    vision_d: int = 32,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """A tiny random LLaVA-NeXT-Video checkpoint (CLIP tower, Llama LM, real processor) in `path`.

    Frames are resized/cropped to image_size; CLIP's CLS is dropped ("default" strategy), the
    P×P patch grid (P = image_size // patch_size) is 2×2 average-pooled: (P/2)² tokens a frame,
    no separators. The defaults give 2·2 = 4 video tokens a frame.
    """
    from transformers import (
        LlavaNextImageProcessor,
        LlavaNextVideoConfig,
        LlavaNextVideoForConditionalGeneration,
        LlavaNextVideoProcessor,
        LlavaNextVideoVideoProcessor,
    )

    pinpoints = [[image_size, image_size]]
    return _tiny_llava_llama(
        path, (LlavaNextVideoConfig, LlavaNextVideoForConditionalGeneration, LlavaNextVideoProcessor,
               LlavaNextImageProcessor, LlavaNextVideoVideoProcessor),
        config_extra=dict(spatial_pool_mode="average", spatial_pool_stride=2, image_grid_pinpoints=pinpoints),
        image_processor_extra=dict(image_grid_pinpoints=pinpoints),
        seed=seed, n_layers=n_layers, d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads, d_mlp=d_mlp,
        image_size=image_size, patch_size=patch_size, vision_layers=vision_layers, vision_d=vision_d, dtype=dtype)


def make_tiny_video_llava(
    path: str | Path,
    *,
    seed: int = 0,
    n_layers: int = 2,
    d_model: int = 64,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    d_mlp: int = 128,
    image_size: int = 16,
    patch_size: int = 8,
    vision_layers: int = 2,
    vision_d: int = 32,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """A tiny random Video-LLaVA checkpoint (CLIP-architecture video tower as HF converts
    LanguageBind's, Llama LM, real processor) in `path`.

    Every frame gives 1 + P² tokens (its CLS token first, then the P×P patches, P = image_size //
    patch_size): the defaults give 1 + 2·2 = 5 video tokens a frame.
    """
    from transformers import (
        VideoLlavaConfig,
        VideoLlavaForConditionalGeneration,
        VideoLlavaImageProcessor,
        VideoLlavaProcessor,
        VideoLlavaVideoProcessor,
    )

    patches = (image_size // patch_size) ** 2
    return _tiny_llava_llama(
        path, (VideoLlavaConfig, VideoLlavaForConditionalGeneration, VideoLlavaProcessor,
               VideoLlavaImageProcessor, VideoLlavaVideoProcessor),
        config_extra=dict(image_seq_length=patches, video_seq_length=8 * (patches + 1)),
        image_processor_extra={},
        seed=seed, n_layers=n_layers, d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads, d_mlp=d_mlp,
        image_size=image_size, patch_size=patch_size, vision_layers=vision_layers, vision_d=vision_d, dtype=dtype)


# ChatML with Qwen2-VL's vision wrapping; the default system prompt as Qwen2.5-VL's template has it.
QWEN_VL_CHAT_TEMPLATE = chatml_template("<|vision_start|><|video_pad|><|vision_end|>",
                                        image="<|vision_start|><|image_pad|><|vision_end|>",
                                        system="You are a helpful assistant.")


def make_tiny_qwen2_5_vl(
    path: str | Path,
    *,
    seed: int = 0,
    n_layers: int = 2,
    d_model: int = 64,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    d_mlp: int = 128,
    mrope_section: tuple[int, int, int] = (2, 3, 3),
    patch_size: int = 4,
    vision_layers: int = 2,
    vision_d: int = 32,
    window_size: int = 16,
    tokens_per_second: int = 2,
    min_pixels: int = 16 * 16,
    max_pixels: int = 64 * 64,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """A tiny random Qwen2.5-VL checkpoint (windowed ViT with 2×2 patch merging, Qwen2 LM with
    M-RoPE, real processor) in `path`.

    Frames are resized to multiples of patch_size·2 (min/max_pixels bound the area); two frames
    make one temporal patch (a trailing odd frame is repeated), so a clip of T frames of H×W gives
    ⌈T/2⌉ groups of (H/2p)·(W/2p) tokens between `<|vision_start|>` and `<|vision_end|>`:
    32×32 frames give 4·4 = 16 tokens a group. The vision tower uses window attention in every
    block but the last (`fullatt_block_indexes`).
    """
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    path = Path(path)
    tokenizer = _word_tokenizer_with(
        {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
         "vision_start_token": "<|vision_start|>", "vision_end_token": "<|vision_end|>"}
    )
    ids = tokenizer.convert_tokens_to_ids
    text = dict(
        _lm_kwargs(tokenizer, n_layers=n_layers, d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads, d_mlp=d_mlp),
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": list(mrope_section)},
    )
    vision = dict(
        depth=vision_layers,
        hidden_size=vision_d,
        intermediate_size=2 * vision_d,
        num_heads=2,
        patch_size=patch_size,
        spatial_merge_size=2,
        temporal_patch_size=2,
        tokens_per_second=tokens_per_second,
        window_size=window_size,
        out_hidden_size=d_model,
        fullatt_block_indexes=[vision_layers - 1],
    )
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=False,
    )
    config.architectures = ["Qwen2_5_VLForConditionalGeneration"]
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    common = dict(size=size, patch_size=patch_size, temporal_patch_size=2, merge_size=2)
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**common),
        video_processor=Qwen2VLVideoProcessor(**common),
        tokenizer=tokenizer,
        chat_template=QWEN_VL_CHAT_TEMPLATE,
    )
    return _save_checkpoint(model, processor, tokenizer, path, dtype)


# ChatML as InternVL-HF checkpoints use it: the video placeholder on its own line, the processor
# expands it into "Frame1: <img>…</img>\nFrame2: …"; a default system prompt as InternVL3's
# template has one (in English here: the word-level tokenizer has no Chinese).
INTERNVL_CHAT_TEMPLATE = chatml_template("<video>\n", image="<image>\n", system="You are a helpful assistant.")


def make_tiny_internvl(
    path: str | Path,
    *,
    seed: int = 0,
    n_layers: int = 2,
    d_model: int = 64,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    d_mlp: int = 128,
    image_size: int = 32,
    patch_size: int = 4,
    vision_layers: int = 2,
    vision_d: int = 32,
    tie_word_embeddings: bool = False,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """A tiny random InternVL checkpoint (InternViT tower with CLS, 2×2 pixel shuffle, MLP
    projector, Qwen2 LM with q/k/v biases, real `InternVLProcessor`) in `path`.

    Every frame is resized to image_size² and is one image: its P×P patches (P = image_size //
    patch_size, CLS dropped) are pixel-shuffled to (P/2)² tokens, written by the processor as
    "FrameN: <img>" + (P/2)² × <IMG_CONTEXT> + "</img>", frames joined by newlines. The defaults give
    4·4 = 16 video tokens a frame.
    """
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
        InternVLVisionConfig,
    )

    path = Path(path)
    # The names InternVLProcessor reads from its tokenizer (tokenizer.start_image_token, ...).
    tokenizer = _word_tokenizer_with(
        {"start_image_token": "<img>", "end_image_token": "</img>",
         "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"}
    )
    text = _text_config("qwen2", tokenizer, n_layers=n_layers, d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads,
                        d_mlp=d_mlp, tie=tie_word_embeddings)
    vision = _vision_config(InternVLVisionConfig, vision_d, vision_layers, image_size, patch_size)
    tokens_per_frame = (image_size // patch_size // 2) ** 2  # downsample_ratio 0.5
    config = InternVLConfig(
        text_config=text.to_dict(),
        vision_config=vision.to_dict(),
        image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"),
        image_seq_length=tokens_per_frame,
        downsample_ratio=0.5,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",  # drop InternViT's CLS token
        tie_word_embeddings=tie_word_embeddings,
    )
    config.architectures = ["InternVLForConditionalGeneration"]
    torch.manual_seed(seed)
    model = InternVLForConditionalGeneration(config)
    size = {"height": image_size, "width": image_size}
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(size=size, crop_to_patches=False),
        video_processor=InternVLVideoProcessor(size=size),
        tokenizer=tokenizer,
        image_seq_length=tokens_per_frame,
        chat_template=INTERNVL_CHAT_TEMPLATE,
    )
    return _save_checkpoint(model, processor, tokenizer, path, dtype)


# --- the study's models in their authors' own release formats (vlens/families/*release*) --------------

def _save_release(path: Path, config: dict, state: dict, tokenizer) -> Path:
    """config.json + model.safetensors + tokenizer files, as the authors' releases ship them."""
    import json

    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.contiguous() for k, v in state.items()}, str(path / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(path)
    return path


def _random_like_release(state: dict, std: float = 0.08) -> dict:
    # the same widening as _randomise: norms near 1, other tensors N(0, std)
    out = {}
    for k, v in state.items():
        if "norm" in k and k.endswith("weight"):
            out[k] = 1.0 + 0.1 * torch.randn_like(v)
        else:
            out[k] = torch.randn_like(v) * std
    return out


def _tiny_llava_qwen_release(
    path, *, tower: str, merge_type: str, config_extra: dict, seed: int, n_layers: int, d_model: int, n_heads: int,
    n_kv_heads: int, d_mlp: int, image_size: int, patch_size: int, vision_layers: int, vision_d: int, dtype,
) -> Path:
    from transformers import CLIPVisionConfig, CLIPVisionModel, Qwen2ForCausalLM, SiglipVisionConfig, SiglipVisionModel

    path = Path(path)
    torch.manual_seed(seed)
    tokenizer = build_word_tokenizer()
    vocab = len(tokenizer) + 8  # Qwen releases have spare embedding rows beyond the tokenizer
    text = _text_config("qwen2", tokenizer, n_layers=n_layers, d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads,
                        d_mlp=d_mlp, vocab_size=vocab)
    state = dict(Qwen2ForCausalLM(text).state_dict())  # model.embed_tokens / model.layers / model.norm / lm_head
    # the vision tower as the hub publishes it: its config in a folder that mm_vision_tower names
    if tower == "clip":
        vcfg = _vision_config(CLIPVisionConfig, vision_d, vision_layers, image_size, patch_size, projection_dim=vision_d)
        tower_state = CLIPVisionModel(vcfg).state_dict()
    else:
        vcfg = _vision_config(SiglipVisionConfig, vision_d, vision_layers, image_size, patch_size, vision_use_head=False)
        tower_state = SiglipVisionModel(vcfg).state_dict()
        # LLaVA's SigLipVisionTower deletes the last layer before training: the release holds the rest
        last = f"encoder.layers.{vision_layers - 1}."
        tower_state = {k: v for k, v in tower_state.items() if last not in k}
    vcfg.save_pretrained(path / "vision_tower")
    for k, v in tower_state.items():
        key = k if k.startswith("vision_model.") else "vision_model." + k
        state["model.vision_tower.vision_tower." + key] = v
    state["model.mm_projector.0.weight"] = torch.empty(d_model, vision_d)
    state["model.mm_projector.0.bias"] = torch.empty(d_model)
    state["model.mm_projector.2.weight"] = torch.empty(d_model, d_model)
    state["model.mm_projector.2.bias"] = torch.empty(d_model)
    if "unpad" in merge_type:
        state["model.image_newline"] = torch.empty(d_model)
    state = {k: v.to(dtype) for k, v in _random_like_release(state).items()}
    config = {
        "architectures": ["LlavaQwenForCausalLM"], "model_type": "llava_qwen",
        "hidden_size": d_model, "intermediate_size": d_mlp, "num_hidden_layers": n_layers,
        "num_attention_heads": n_heads, "num_key_value_heads": n_kv_heads, "max_position_embeddings": 4096,
        "rope_theta": 10000.0, "rms_norm_eps": 1e-6, "vocab_size": vocab, "hidden_act": "silu",
        "tie_word_embeddings": False, "use_sliding_window": False, "sliding_window": 4096,
        "bos_token_id": None, "eos_token_id": tokenizer.eos_token_id, "torch_dtype": str(dtype).removeprefix("torch."),
        "mm_hidden_size": vision_d, "mm_patch_merge_type": merge_type, "mm_projector_type": "mlp2x_gelu",
        "mm_resampler_type": None, "mm_use_im_patch_token": False, "mm_use_im_start_end": False,
        "mm_vision_select_feature": "patch", "mm_vision_select_layer": -2, "mm_vision_tower": "vision_tower",
        "use_mm_proj": True, "image_aspect_ratio": "anyres",
        **config_extra,
    }
    return _save_release(path, config, state, tokenizer)


def make_tiny_longva(path: str | Path, *, seed: int = 0, n_layers: int = 2, d_model: int = 64, n_heads: int = 4,
                     n_kv_heads: int = 2, d_mlp: int = 128, image_size: int = 32, patch_size: int = 8,
                     vision_layers: int = 3, vision_d: int = 32, dtype: torch.dtype = torch.float32) -> Path:
    """A tiny random LongVA release (LlavaQwenForCausalLM, "unires" merge, CLIP tower with CLS,
    `mm_vision_select_layer` −2, average pool stride 2), in LongVA's own key layout and config.

    Each frame: the P×P patch grid (P = image_size // patch_size) projected then 2×2 average
    pooled: (P/2)² tokens, no newline. The defaults give 2·2 = 4 tokens a frame."""
    return _tiny_llava_qwen_release(
        path, tower="clip", merge_type="unires",
        config_extra={"mm_spatial_pool_mode": "average", "mm_spatial_pool_stride": 2,
                      "image_grid_pinpoints": [[image_size, image_size]]},
        seed=seed, n_layers=n_layers, d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads, d_mlp=d_mlp,
        image_size=image_size, patch_size=patch_size, vision_layers=vision_layers, vision_d=vision_d, dtype=dtype)


def make_tiny_llava_next_video_qwen(path: str | Path, *, seed: int = 0, n_layers: int = 2, d_model: int = 64,
                                    n_heads: int = 4, n_kv_heads: int = 2, d_mlp: int = 128, image_size: int = 40,
                                    patch_size: int = 8, vision_layers: int = 3, vision_d: int = 32,
                                    dtype: torch.dtype = torch.float32) -> Path:
    """A tiny random LLaVA-NeXT-Video-32B-Qwen release (LlavaQwenForCausalLM, "spatial_unpad"
    merge, SigLIP tower whose last layer LLaVA deleted, `image_newline`), in the release's key layout.

    The authors' inference pools average, stride 2, newline "grid": an odd P×P grid (P = 5 here,
    27 in the release) pools to ⌊P/2⌋² and every pooled row ends with the newline: 2·(2+1) = 6
    tokens a frame with the defaults."""
    return _tiny_llava_qwen_release(
        path, tower="siglip", merge_type="spatial_unpad",
        config_extra={"image_grid_pinpoints": [[image_size, image_size]]},
        seed=seed, n_layers=n_layers, d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads, d_mlp=d_mlp,
        image_size=image_size, patch_size=patch_size, vision_layers=vision_layers, vision_d=vision_d, dtype=dtype)


def make_tiny_internvideo2_5(path: str | Path, *, seed: int = 0, n_layers: int = 2, d_model: int = 64, n_heads: int = 4,
                             n_kv_heads: int = 2, d_mlp: int = 128, image_size: int = 48, patch_size: int = 4,
                             vision_layers: int = 2, vision_d: int = 32, dtype: torch.dtype = torch.float32) -> Path:
    """A tiny random InternVideo2.5 release (remote-code `InternVLChatModel` layout: InternViT with
    fused qkv and layer scale, `mlp1`, InternLM2 with fused `wqkv`, `output`), config.json with
    `vision_config` / `llm_config` as the release writes it.

    Each frame: (P/2)² shuffled tokens (P = image_size // patch_size: 6·6 = 36 with the defaults);
    the release's HiCo compression merges every group of 4 frames to 64 tokens (16 a frame), so
    frames must come in multiples of 4."""
    path = Path(path)
    torch.manual_seed(seed)
    tokenizer = _word_tokenizer_with(new_special=["<img>", "</img>", "<IMG_CONTEXT>"])
    V, D, C, dh = len(tokenizer), d_model, vision_d, d_model // n_heads
    n_patches = (image_size // patch_size) ** 2
    st: dict = {
        "vision_model.embeddings.class_embedding": torch.empty(1, 1, C),
        "vision_model.embeddings.patch_embedding.weight": torch.empty(C, 3, patch_size, patch_size),
        "vision_model.embeddings.patch_embedding.bias": torch.empty(C),
        "vision_model.embeddings.position_embedding": torch.empty(1, 1 + n_patches, C),
        "mlp1.0.weight": torch.empty(4 * C), "mlp1.0.bias": torch.empty(4 * C),
        "mlp1.1.weight": torch.empty(D, 4 * C), "mlp1.1.bias": torch.empty(D),
        "mlp1.3.weight": torch.empty(D, D), "mlp1.3.bias": torch.empty(D),
        "language_model.model.tok_embeddings.weight": torch.empty(V, D),
        "language_model.model.norm.weight": torch.empty(D),
        "language_model.output.weight": torch.empty(V, D),
    }
    for i in range(vision_layers):
        p = f"vision_model.encoder.layers.{i}."
        st.update({p + "attn.qkv.weight": torch.empty(3 * C, C), p + "attn.qkv.bias": torch.empty(3 * C),
                   p + "attn.proj.weight": torch.empty(C, C), p + "attn.proj.bias": torch.empty(C),
                   p + "ls1": torch.empty(C), p + "ls2": torch.empty(C),
                   p + "norm1.weight": torch.empty(C), p + "norm1.bias": torch.empty(C),
                   p + "norm2.weight": torch.empty(C), p + "norm2.bias": torch.empty(C),
                   p + "mlp.fc1.weight": torch.empty(2 * C, C), p + "mlp.fc1.bias": torch.empty(2 * C),
                   p + "mlp.fc2.weight": torch.empty(C, 2 * C), p + "mlp.fc2.bias": torch.empty(C)})
    for i in range(n_layers):
        p = f"language_model.model.layers.{i}."
        st.update({p + "attention.wqkv.weight": torch.empty((n_heads + 2 * n_kv_heads) * dh, D),
                   p + "attention.wo.weight": torch.empty(D, D), p + "attention_norm.weight": torch.empty(D),
                   p + "ffn_norm.weight": torch.empty(D), p + "feed_forward.w1.weight": torch.empty(d_mlp, D),
                   p + "feed_forward.w3.weight": torch.empty(d_mlp, D), p + "feed_forward.w2.weight": torch.empty(D, d_mlp)})
    st = _random_like_release(st)
    for k in st:  # InternViT's layer scales and norms near 1 (not N(0, 0.08)), as trained towers have them
        if k.endswith(("ls1", "ls2", "norm1.weight", "norm2.weight", "mlp1.0.weight")):
            st[k] = 1.0 + 0.1 * torch.randn_like(st[k])
    st = {k: v.to(dtype) for k, v in st.items()}
    config = {
        "architectures": ["InternVLChatModel"], "model_type": "internvl_chat",
        "auto_map": {"AutoConfig": "configuration_internvl_chat.InternVLChatConfig",
                     "AutoModel": "modeling_internvl_chat_hico2.InternVLChatModel"},
        "downsample_ratio": 0.5, "dynamic_image_size": True, "force_image_size": image_size, "max_dynamic_patch": 12,
        "min_dynamic_patch": 1, "ps_version": "v2", "select_layer": -1, "template": "internvl2_5",
        "use_thumbnail": True, "torch_dtype": str(dtype).removeprefix("torch."),
        "llm_config": {
            "architectures": ["InternLM2ForCausalLM"], "model_type": "internlm2", "bias": False,
            "hidden_size": D, "intermediate_size": d_mlp, "num_hidden_layers": n_layers, "num_attention_heads": n_heads,
            "num_key_value_heads": n_kv_heads, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
            "rope_theta": 1000000, "rope_scaling": {"type": "dynamic", "factor": 2.0}, "vocab_size": V,
            "hidden_act": "silu", "tie_word_embeddings": False, "pad_token_id": tokenizer.pad_token_id,
        },
        "vision_config": {
            "architectures": ["InternVisionModel"], "model_type": "intern_vit_6b", "hidden_size": C,
            "intermediate_size": 2 * C, "num_hidden_layers": vision_layers, "num_attention_heads": 2,
            "image_size": image_size, "patch_size": patch_size, "qkv_bias": True, "qk_normalization": False,
            "norm_type": "layer_norm", "layer_norm_eps": 1e-6, "hidden_act": "gelu", "use_flash_attn": False,
        },
    }
    return _save_release(path, config, st, tokenizer)
