"""What every family provides (see vlens/families/__init__.py): the frozen `Family` spec, shared
helpers for Qwen2/Llama-style decoders, and the weight-coverage check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, cast

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn
from typing_extensions import dataclass_transform

from vlens.components.rotary import Rotary
from vlens.config import HookedVideoLLMConfig
from vlens.inputs.layout import LayoutError, VideoLayout, VisionToken

if TYPE_CHECKING:  # pragma: no cover
    from transformers import LlavaNextVideoForConditionalGeneration, VideoLlavaForConditionalGeneration
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    from vlens.inputs.sampling import SampledVideo
    from vlens.inputs.video_inputs import VideoInputs


class UnsupportedModelError(ValueError):
    """The checkpoint's architecture has no vlens family."""


@dataclass_transform(frozen_default=True)  # tells type checkers what __init_subclass__ does
@dataclass(frozen=True)
class Family:
    """A family's frozen spec: how one HF architecture maps onto the hooked decoder.

    Class attributes say what it is (`name`, `architectures`); methods are the rules (config
    translation, the weight-name table, dropped keys, rotary, positions, layout). A spec holds no
    per-checkpoint state; `bind(processor)` returns the adapter one model uses (a copy holding
    what its layout rules need from the checkpoint, e.g. InternVL's tokenizer). Subclasses that
    carry settings (a release's pooling, InternVideo2.5's token compression) declare them as
    dataclass fields, so a spec never changes after it is built.
    """

    name: ClassVar[str] = ""
    architectures: ClassVar[tuple[str, ...]] = ()
    title: ClassVar[str] = ""  # the model's name in error messages
    # Prefixes of the HF parameter names that belong to the language model: every one of them
    # must be used by the weight table or listed by `dropped_keys` (see check_weight_coverage).
    lm_prefixes: ClassVar[tuple[str, ...]] = ("model.language_model.", "lm_head.")

    def __init_subclass__(cls, **kwargs) -> None:
        # Every family class is a frozen dataclass too (its annotated attributes are its fields):
        # a spec cannot be changed after it is built, whatever subclass it is. (So subclasses
        # are not decorated with @dataclass themselves.)
        super().__init_subclass__(**kwargs)
        dataclass(frozen=True)(cls)

    def config(self, hf_config) -> HookedVideoLLMConfig:
        raise NotImplementedError

    def weight_table(self, cfg: HookedVideoLLMConfig) -> dict[str, str]:
        raise NotImplementedError

    def dropped_keys(self, cfg: HookedVideoLLMConfig) -> frozenset[str]:
        """HF language-model parameter names deliberately not used by the hooked decoder (none
        by default). The core checks that every LM key is used or dropped."""
        return frozenset()

    def rotary(self, cfg: HookedVideoLLMConfig) -> nn.Module:
        """The rotary module the family's attention needs: 1-D RoPE by default (over
        `cfg.rotary_dim` dims, in `cfg.rotary_adjacent_pairs` pairing). Its forward takes
        `position_ids(...)`'s positions and a dtype and returns cos/sin [batch, pos, rotary_dim]."""
        assert cfg.rotary_dim is not None  # HookedVideoLLMConfig.__post_init__ fills it (d_head when unset)
        return Rotary(cfg.rotary_dim, cfg.rope_theta, adjacent_pairs=cfg.rotary_adjacent_pairs)

    def vision_modules(self, hf_model: nn.Module) -> dict[str, nn.Module]:
        raise NotImplementedError

    def vision_parameters(self, hf_model: nn.Module) -> dict[str, nn.Parameter]:
        """HF parameters of the vision path outside `vision_modules` (e.g. OneVision's newline)."""
        return {}

    def video_token_id(self, hf_config) -> int:
        raise NotImplementedError

    def video_features(
        self, hf_model: nn.Module, inputs: VideoInputs | dict
    ) -> Float[Tensor, "batch n_vision d_model"]:
        """The projected vision features of `inputs` (VideoInputs, or the processor's dict of HF
        kwargs that the forward passes on)."""
        raise NotImplementedError

    def vision_outputs(
        self, hf_model: nn.Module, inputs: VideoInputs | dict
    ) -> tuple[Float[Tensor, "batch n_vision d_model"], list[Float[Tensor, "batch n_vision d_model"]]]:
        """`video_features` and the DeepStack features added after blocks 0, 1, … at the same
        vision positions (Qwen3-VL; none by default). One vision-tower run gives both."""
        return self.video_features(hf_model, inputs), []

    def layout(
        self, input_ids: Tensor, attention_mask: Tensor | None, video: SampledVideo | None, hf_config, inputs: dict
    ) -> VideoLayout:
        raise NotImplementedError

    def messages(self, question: str, system_prompt: str | None) -> list[dict]:
        """Chat messages for one video question, in the HF content-list format."""
        msgs = []
        if system_prompt is not None:
            msgs.append({"role": "system", "content": [{"type": "text", "text": system_prompt}]})
        msgs.append({"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]})
        return msgs

    def processor_kwargs(self, videos: list[SampledVideo]) -> dict:
        """Extra kwargs for the processor call (e.g. frame timestamps for M-RoPE)."""
        return {}

    def check_requirements(self) -> None:
        """Raise an ImportError naming the `pip install` when a package the HF model needs is
        missing (PerceptionLM's timm); called before the HF model is built. Nothing by default."""

    def bind(self, processor) -> Family:
        """The adapter one model uses: a family whose layout rules need the checkpoint's
        tokenizer (InternVL's per-frame text markers) returns a copy that holds it."""
        return self

    def position_ids(
        self, hf_model: nn.Module, inputs: dict, *, batch: int, n: int, q_start: int, device
    ) -> Int[Tensor, "*axes batch pos"]:
        """Rotary positions of the `n` positions starting at `q_start`: [batch, pos] for 1-D
        RoPE (the default, plain position indices), [3, batch, pos] for M-RoPE (Qwen2.5-VL)."""
        return torch.arange(q_start, q_start + n, device=device)[None].expand(batch, n)


def check_weight_coverage(family: Family, cfg: HookedVideoLLMConfig, hf_model: nn.Module) -> None:
    """Every HF language-model parameter (names under `family.lm_prefixes`) is used by the
    weight table (tied weights count as used) or listed in `family.dropped_keys(cfg)`.

    Raises:
        KeyError: naming the HF keys neither used nor dropped (the weight table is out of date).
    """
    used = {id(hf_parameter(hf_model, n)) for n in family.weight_table(cfg).values()}
    dropped = family.dropped_keys(cfg)
    unused = [
        n
        for n, p in hf_model.named_parameters(remove_duplicate=False)
        if n.startswith(family.lm_prefixes) and id(p) not in used and n not in dropped
    ]
    if unused:
        raise KeyError(
            f"{len(unused)} language-model parameters of the HF model are neither used by the {family.name} "
            f"weight table nor listed in its dropped_keys, e.g. {unused[:5]}; the family is out of date"
        )


def hf_parameter(hf_model: nn.Module, name: str) -> nn.Parameter:
    """The HF model's parameter by dotted name; tied weights resolve to the shared tensor."""
    try:
        p = hf_model.get_parameter(name)
    except AttributeError as e:
        raise KeyError(f"the HF model has no parameter {name!r}; the family's weight table is out of date") from e
    assert isinstance(p, torch.nn.Parameter)
    return p


def decoder_config(
    family: Family,
    t,
    *,
    qkv_bias: bool,
    rope_types: tuple[str, ...] = ("default",),
    attention_bias_biases_o_proj: bool = True,
    **extra,
) -> HookedVideoLLMConfig:
    """The hooked decoder's shape from a Qwen2/Llama-style HF text config.

    Refuses (NotImplementedError, naming the setting) what the decoder cannot run exactly:
    non-default RoPE scaling, MLP biases, Llama's attention_bias (it biases o_proj too),
    sliding-window layers. `rope_types`: the RoPE types the family's `rotary` runs (only the
    default unless it says so, e.g. PerceptionLM's "llama3"). `extra` goes to `cfg.extra`
    (e.g. `mrope_section` for Qwen2.5-VL's multimodal RoPE)."""
    d_head = getattr(t, "head_dim", None) or t.hidden_size // t.num_attention_heads
    rope = dict(getattr(t, "rope_parameters", None) or {})
    what = f"{family.name} ({family.architectures[0]})"
    if rope.get("rope_type", "default") not in rope_types:
        raise NotImplementedError(
            f"{what}: rope_type {rope['rope_type']!r} is not supported yet (only {list(rope_types)})"
        )
    if getattr(t, "mlp_bias", False):
        raise NotImplementedError(f"{what}: MLP biases (mlp_bias=True) are not supported by the hooked decoder")
    if getattr(t, "use_sliding_window", False) or "sliding_attention" in (getattr(t, "layer_types", None) or ()):
        raise NotImplementedError(f"{what}: sliding-window attention layers are not supported by the hooked decoder")
    # Llama-style attention_bias biases q/k/v AND o_proj (we have no o_proj bias); a family whose HF
    # attention ignores the flag (GLM-4: q/k/v always biased, o_proj never) says so
    if attention_bias_biases_o_proj and getattr(t, "attention_bias", False):
        raise NotImplementedError(
            f"{what}: attention_bias=True (which also biases o_proj) is not supported by the hooked decoder"
        )
    if t.hidden_act not in ("silu", "gelu"):
        raise NotImplementedError(f"{what}: hidden_act {t.hidden_act!r} is not supported (silu, gelu)")
    return HookedVideoLLMConfig(
        n_layers=t.num_hidden_layers,
        d_model=t.hidden_size,
        n_heads=t.num_attention_heads,
        n_key_value_heads=t.num_key_value_heads,
        d_head=d_head,
        d_mlp=t.intermediate_size,
        d_vocab=t.vocab_size,
        n_ctx=t.max_position_embeddings,
        eps=t.rms_norm_eps,
        rope_theta=rope.get("rope_theta", getattr(t, "rope_theta", 10000.0)),
        qkv_bias=qkv_bias,
        act_fn=t.hidden_act,
        family=family.name,
        original_architecture=family.architectures[0],
        extra=dict(extra),
    )


def decoder_weight_table(
    cfg: HookedVideoLLMConfig, lm: str = "model.language_model", lm_head: str = "lm_head.weight"
) -> dict[str, str]:
    """Our parameter name -> HF name for a Qwen2/Llama-style decoder under the prefix `lm`
    (q/k/v biases only where `cfg.qkv_bias`)."""
    table = {
        "embed.W_E": f"{lm}.embed_tokens.weight",
        "ln_final.w": f"{lm}.norm.weight",
        "unembed.lm_head.weight": lm_head,
    }
    for l in range(cfg.n_layers):
        ours, hf = f"blocks.{l}", f"{lm}.layers.{l}"
        table[f"{ours}.ln1.w"] = f"{hf}.input_layernorm.weight"
        table[f"{ours}.ln2.w"] = f"{hf}.post_attention_layernorm.weight"
        for p in ("q", "k", "v"):
            table[f"{ours}.attn.{p}_proj.weight"] = f"{hf}.self_attn.{p}_proj.weight"
            if cfg.qkv_bias:
                table[f"{ours}.attn.{p}_proj.bias"] = f"{hf}.self_attn.{p}_proj.bias"
        table[f"{ours}.attn.o_proj.weight"] = f"{hf}.self_attn.o_proj.weight"
        for p in ("gate", "up", "down"):
            table[f"{ours}.mlp.{p}_proj.weight"] = f"{hf}.mlp.{p}_proj.weight"
    return table


def pooler_output(out: tuple | BaseModelOutputWithPooling) -> Tensor:
    """The features of an HF `get_*_features(..., return_dict=True)` call. HF types the call as a
    tuple or an output with an optional `pooler_output`; with return_dict=True it is the output,
    filled."""
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    assert isinstance(out, BaseModelOutputWithPooling) and out.pooler_output is not None, type(out)
    return out.pooler_output


def per_row(features: Tensor, batch: int) -> Float[Tensor, "batch n_vision d_model"]:
    """[batch*frames, tokens, d] (or any split of the same rows) -> [batch, n_vision, d]; every
    row of a vlens batch has the same frame count and size, so rows are equal-length."""
    if features.shape[0] * features.shape[1] % batch:
        raise ValueError(f"{tuple(features.shape)} vision features cannot be split into {batch} equal rows")
    return features.reshape(batch, -1, features.shape[-1])


class LlavaVideoFamily(Family):
    """An HF LLaVA-style video model with a Llama LM (no q/k/v biases) whose
    `model.get_video_features` gives every frame's tokens in sequence order, nothing between
    frames: LLaVA-NeXT-Video, Video-LLaVA. A subclass names its vision modules and
    `video_tokens`, the layout of one row's frames."""

    def config(self, hf_config) -> HookedVideoLLMConfig:
        return decoder_config(self, hf_config.text_config, qkv_bias=False)  # Llama: attention_bias is refused

    def weight_table(self, cfg: HookedVideoLLMConfig) -> dict[str, str]:
        return decoder_weight_table(cfg)

    def video_token_id(self, hf_config) -> int:
        return hf_config.video_token_id

    def video_features(self, hf_model: nn.Module, inputs) -> Float[Tensor, "batch n_vision d_model"]:
        # The checkpoint's own path (tower, feature layer, CLS handling, pooling, projector).
        pixels = inputs["pixel_values_videos"]
        # the HF classes of the families that use this (PerceptionLM has its own)
        hf = cast("LlavaNextVideoForConditionalGeneration | VideoLlavaForConditionalGeneration", hf_model)
        out = hf.model.get_video_features(pixels, return_dict=True)  # [batch*frames, tokens, d]
        return per_row(pooler_output(out), pixels.shape[0])

    def video_tokens(self, hf_config, n_frames: int, height: int, width: int) -> list[VisionToken]:
        """The vision positions of `n_frames` frames of height×width pixels, in sequence order."""
        raise NotImplementedError

    # images and videos in any mix (vlens.inputs.media_layout; used where `hf_merge` is set) ------------
    def media_ids(self, hf_config) -> tuple[int | None, int | None]:
        return hf_config.image_token_id, hf_config.video_token_id

    def image_tokens(self, hf_config, inputs: dict) -> list[list[VisionToken]]:
        raise NotImplementedError

    def media_tokens(self, hf_config, inputs: dict) -> tuple[list[list[VisionToken]], list[list[VisionToken]]]:
        """Every image's and every video's tokens, in batch order."""
        images = self.image_tokens(hf_config, inputs) if self.image_key in inputs else []
        videos = []
        if "pixel_values_videos" in inputs:
            b, n_frames, _, h, w = inputs["pixel_values_videos"].shape
            videos = [self.video_tokens(hf_config, n_frames, h, w) for _ in range(b)]
        return images, videos

    image_key = "pixel_values"

    def layout(self, input_ids: Tensor, attention_mask: Tensor | None, video, hf_config, inputs: dict) -> VideoLayout:
        if "pixel_values_videos" not in inputs:
            raise LayoutError(f"no pixel_values_videos in the inputs: {self.title} layouts need a video")
        _, n_frames, _, h, w = inputs["pixel_values_videos"].shape
        tokens = self.video_tokens(hf_config, n_frames, h, w)
        is_pad = attention_mask == 0 if attention_mask is not None else None
        times = video.timestamps if video is not None else None
        return VideoLayout.build(input_ids == hf_config.video_token_id, tokens, is_pad=is_pad, frame_times=times)


def chatml_template(video: str, *, image: str | None = None, system: str | None = None) -> str:
    """A ChatML chat template over HF content lists (Qwen2/InternLM2-style checkpoints).

    `video` / `image` are the text a video / image item of a message writes (no image item when
    `image` is None); `system` is the system message written when the messages start with none
    (none is added when it is None). The texts go into Jinja string literals: no single quotes."""
    head = ""
    if system is not None:
        head = (
            "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n" + system + "<|im_end|>\n' }}{% endif %}"
        )
    items = "{% if content['type'] == 'video' %}{{ '" + video + "' }}"
    if image is not None:
        items += "{% elif content['type'] == 'image' %}{{ '" + image + "' }}"
    return (
        head + "{% for message in messages %}"
        "{{ '<|im_start|>' + message['role'] + '\n' }}"
        "{% if message['content'] is string %}{{ message['content'] }}"
        "{% else %}"
        "{% for content in message['content'] %}"
        + items
        + "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
        "{% endfor %}"
        "{% endif %}"
        "{{ '<|im_end|>\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
