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
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'video' %}{{ '<video>\n' }}"
    "{% elif content['type'] == 'image' %}{{ '<image>\n' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _randomise(model: torch.nn.Module, std: float = 0.08) -> None:
    # HF's init gives near-zero LM outputs at this size; a wider normal makes logits differ
    # visibly between inputs, so parity and knockout tests measure something.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name or "layer_norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0.0, std)


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
        Qwen2Config,
        SiglipVisionConfig,
    )

    path = Path(path)
    tokenizer = build_word_tokenizer(extra_words)
    text = Qwen2Config(
        vocab_size=max(len(tokenizer), vocab_size or 0),
        hidden_size=d_model,
        intermediate_size=d_mlp,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv_heads,
        max_position_embeddings=4096,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    vision = SiglipVisionConfig(
        hidden_size=vision_d,
        intermediate_size=2 * vision_d,
        num_hidden_layers=vision_layers,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch_size,
    )
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
    model = LlavaOnevisionForConditionalGeneration(config).eval()
    _randomise(model)
    model.to(dtype)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    size = {"height": image_size, "width": image_size}
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size=size, image_grid_pinpoints=[[image_size, image_size]]),
        video_processor=LlavaOnevisionVideoProcessor(size=size),
        tokenizer=tokenizer,
        num_image_tokens=(image_size // patch_size) ** 2,
        vision_feature_select_strategy="full",
        chat_template=CHAT_TEMPLATE,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(path)
        processor.save_pretrained(path)
    finally:
        hf_logging.enable_progress_bar()
    return path


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


def _llama_text_config(tokenizer, *, n_layers, d_model, n_heads, n_kv_heads, d_mlp, tie: bool = False):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=d_model,
        intermediate_size=d_mlp,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv_heads,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        attention_bias=False,
        tie_word_embeddings=tie,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
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


def _clip_vision_config(vision_d: int, vision_layers: int, image_size: int, patch_size: int):
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(
        hidden_size=vision_d, intermediate_size=2 * vision_d, num_hidden_layers=vision_layers,
        num_attention_heads=2, image_size=image_size, patch_size=patch_size, projection_dim=vision_d,
    )


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

    path = Path(path)
    tokenizer = _word_tokenizer_with(extra_words=VICUNA_WORDS)
    text = _llama_text_config(
        tokenizer, n_layers=n_layers, d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads, d_mlp=d_mlp
    )
    vision = _clip_vision_config(vision_d, vision_layers, image_size, patch_size)
    config = LlavaNextVideoConfig(
        text_config=text.to_dict(),
        vision_config=vision.to_dict(),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        spatial_pool_mode="average",
        spatial_pool_stride=2,
        image_grid_pinpoints=[[image_size, image_size]],
        tie_word_embeddings=False,
    )
    config.architectures = ["LlavaNextVideoForConditionalGeneration"]
    torch.manual_seed(seed)
    model = LlavaNextVideoForConditionalGeneration(config)
    size, crop = {"shortest_edge": image_size}, {"height": image_size, "width": image_size}
    processor = LlavaNextVideoProcessor(
        video_processor=LlavaNextVideoVideoProcessor(size=size, crop_size=crop),
        image_processor=LlavaNextImageProcessor(size=size, crop_size=crop, image_grid_pinpoints=[[image_size, image_size]]),
        tokenizer=tokenizer,
        chat_template=VICUNA_CHAT_TEMPLATE,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    return _save_checkpoint(model, processor, tokenizer, path, dtype)


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

    path = Path(path)
    tokenizer = _word_tokenizer_with(extra_words=VICUNA_WORDS)
    text = _llama_text_config(
        tokenizer, n_layers=n_layers, d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads, d_mlp=d_mlp
    )
    vision = _clip_vision_config(vision_d, vision_layers, image_size, patch_size)
    config = VideoLlavaConfig(
        text_config=text.to_dict(),
        vision_config=vision.to_dict(),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        image_seq_length=(image_size // patch_size) ** 2,
        video_seq_length=8 * ((image_size // patch_size) ** 2 + 1),
        tie_word_embeddings=False,
    )
    config.architectures = ["VideoLlavaForConditionalGeneration"]
    torch.manual_seed(seed)
    model = VideoLlavaForConditionalGeneration(config)
    size, crop = {"shortest_edge": image_size}, {"height": image_size, "width": image_size}
    processor = VideoLlavaProcessor(
        image_processor=VideoLlavaImageProcessor(size=size, crop_size=crop),
        video_processor=VideoLlavaVideoProcessor(size=size, crop_size=crop),
        tokenizer=tokenizer,
        chat_template=VICUNA_CHAT_TEMPLATE,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    return _save_checkpoint(model, processor, tokenizer, path, dtype)


# ChatML with Qwen2-VL's vision wrapping; the default system prompt as Qwen2.5-VL's template has it.
QWEN_VL_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}"
    "{% endif %}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'video' %}{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{% elif content['type'] == 'image' %}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


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
        vocab_size=len(tokenizer),
        hidden_size=d_model,
        intermediate_size=d_mlp,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv_heads,
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": list(mrope_section)},
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
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
INTERNVL_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}"
    "{% endif %}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'video' %}{{ '<video>\n' }}"
    "{% elif content['type'] == 'image' %}{{ '<image>\n' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


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
        Qwen2Config,
    )

    path = Path(path)
    # The names InternVLProcessor reads from its tokenizer (tokenizer.start_image_token, ...).
    tokenizer = _word_tokenizer_with(
        {"start_image_token": "<img>", "end_image_token": "</img>",
         "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"}
    )
    text = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=d_model,
        intermediate_size=d_mlp,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv_heads,
        max_position_embeddings=4096,
        rope_theta=10000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=tie_word_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    vision = InternVLVisionConfig(
        hidden_size=vision_d,
        intermediate_size=2 * vision_d,
        num_hidden_layers=vision_layers,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch_size,
    )
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
