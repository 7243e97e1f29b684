"""LongVA-7B and LLaVA-NeXT-Video-32B-Qwen as released: LLaVA-style `LlavaQwenForCausalLM`
checkpoints (the authors' own format, which transformers cannot load without remote code).

`HookedVideoLLM.from_pretrained(dir)` recognises them (config.json: architectures
["LlavaQwenForCausalLM"] + LLaVA's `mm_*` keys) and routes here. We read config.json and the
safetensors as they are on disk, rename the keys, and build an in-memory
`LlavaOnevisionForConditionalGeneration` (Qwen2 LM, the release's CLIP or SigLIP tower, the
2-layer GELU projector): those HF modules compute exactly the release's tower, projector and LM.
HF's OneVision *video* path does not (it always bilinear-pools to ⌈P/2⌉ and appends one newline
after the video), so the release's own video path is the family's `video_features` below.

Key mapping (release key on disk → in-memory HF key):

| release (LlavaQwenForCausalLM)                      | HF LlavaOnevisionForConditionalGeneration |
|-----------------------------------------------------|-------------------------------------------|
| `model.vision_tower.vision_tower.vision_model.X`    | `model.vision_tower.X`                    |
| `model.mm_projector.0.{weight,bias}`                | `model.multi_modal_projector.linear_1.*`  |
| `model.mm_projector.2.{weight,bias}`                | `model.multi_modal_projector.linear_2.*`  |
| `model.image_newline` (spatial_unpad releases)      | `model.image_newline` (zeros and unused where the release has none: LongVA) |
| `model.embed_tokens.weight`, `model.layers.*`, `model.norm.weight` | `model.language_model.*` (same suffixes) |
| `lm_head.weight`                                    | `lm_head.weight`                          |

The video path, from the authors' code (LongVA `longva/model/llava_arch.py`, LLaVA-NeXT
`llava/model/llava_arch.py`; `encode_multimodals` → `get_2dPool` → newline handling):

1. frames → the tower's image processor (CLIP: resize shortest edge + centre crop, CLIP mean/std;
   SigLIP: resize to S×S, mean/std 0.5);
2. tower hidden states: CLIP `hidden_states[mm_vision_select_layer]` with the CLS token dropped
   (`mm_vision_select_feature="patch"`); SigLIP: LLaVA deletes the tower's last layer and takes
   `hidden_states[-1]` (no post-layernorm), all tokens (no CLS);
3. `mm_projector` (Linear → GELU → Linear) on every patch, **before** pooling;
4. `get_2dPool`: the P×P grid pooled with `mm_spatial_pool_stride` s by `mm_spatial_pool_mode`
   (average/max: ⌊P/s⌋, floor as avg_pool2d; bilinear: ⌈P/s⌉);
5. newlines (`mm_newline_position`): LongVA ("unires" merge, video branch) none;
   "grid": `image_newline` after every pooled row of every frame; "frame": after every frame;
   "one_token": one after the video (only with an "unpad" merge type); "no_token": none.

Per-release settings (`RELEASES`): LongVA reads pooling from its config.json. For
LLaVA-NeXT-Video-32B-Qwen the authors' documented inference (`video_demo.sh … average grid`,
the lmms-eval `llava_vid` args) overwrites the config with pool average, stride 2, newline grid;
we apply the same overwrite.

Prompt: both use the `qwen_1_5` conversation template (ChatML, system "You are a helpful
assistant."), the video placeholder first in the user turn followed by "\\n". LLaVA splices the
features at IMAGE_TOKEN_INDEX (−200) between separately tokenized chunks; we add a special
placeholder token `<|vlens_video|>` to the tokenizer in memory (an unused embedding row; it is
overwritten by the features, and as a special token it splits the text exactly where LLaVA's
chunks split).

Layout: grid newlines are `video` positions of their frame with row/col −1 (a per-frame extra
token, like a CLS); a "one_token" newline is a `separator`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from vlens.families.base import chatml_template
from vlens.families.onevision import OneVision
from vlens.families.release_common import (
    ReleaseFormatError,
    build_hf_model,
    load_tokenizer,
    read_state_dict,
    take,
)
from vlens.inputs.layout import LayoutError, VideoLayout, VisionToken

if TYPE_CHECKING:  # pragma: no cover
    from transformers import LlavaOnevisionForConditionalGeneration

ARCHITECTURE = "LlavaQwenForCausalLM"
PLACEHOLDER = "<|vlens_video|>"

# The towers the releases name in `mm_vision_tower` (their public HF configs). A local directory
# with the tower's config.json (absolute, or relative to the checkpoint) is read instead.
KNOWN_TOWERS: dict[str, tuple[str, dict[str, Any]]] = {  # name -> (kind, the HF vision config's kwargs)
    "openai/clip-vit-large-patch14-336": (
        "clip",
        dict(
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            image_size=336,
            patch_size=14,
            hidden_act="quick_gelu",
            layer_norm_eps=1e-5,
            projection_dim=768,
        ),
    ),
    "google/siglip-so400m-patch14-384": (
        "siglip",
        dict(
            hidden_size=1152,
            intermediate_size=4304,
            num_hidden_layers=27,
            num_attention_heads=16,
            image_size=384,
            patch_size=14,
            hidden_act="gelu_pytorch_tanh",
            layer_norm_eps=1e-6,
        ),
    ),
}
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)

# qwen_1_5 (LLaVA's conv_templates): ChatML with the default system prompt.
QWEN_1_5_TEMPLATE = chatml_template(PLACEHOLDER + "\n", system="You are a helpful assistant.")


@dataclass(frozen=True)
class Release:
    """One release's identity and the inference settings its authors' code applies."""

    name: str  # the vlens family name
    title: str
    merge_type: str  # how config.json's mm_patch_merge_type identifies it (prefix)
    tower: str  # "clip" or "siglip"
    sampling: str  # the authors' frame sampling (vlens.inputs.video): LongVA linspace, LLaVA-NeXT demo fps
    overwrite: tuple = ()  # settings the authors' inference scripts overwrite the config with

    def settings(self, config: dict) -> dict:
        s = {
            "mm_spatial_pool_mode": config.get("mm_spatial_pool_mode", "average"),
            "mm_spatial_pool_stride": config.get("mm_spatial_pool_stride", 2),
            "mm_newline_position": config.get("mm_newline_position", "one_token"),
            "mm_vision_select_layer": config.get("mm_vision_select_layer", -2),
            "mm_vision_select_feature": config.get("mm_vision_select_feature", "patch"),
            "mm_patch_merge_type": config["mm_patch_merge_type"],
            # LLaVA's prepare_inputs_labels_for_multimodal cuts the spliced sequence to this length
            "tokenizer_model_max_length": config.get("tokenizer_model_max_length"),
        }
        s.update(dict(self.overwrite))
        if self.merge_type == "unires":  # LongVA's video branch never adds a newline
            s["mm_newline_position"] = "none"
        return s


RELEASES = (
    Release("longva", "LongVA (EvolvingLMMs-Lab/LongVA)", "unires", "clip", "linspace"),
    Release(
        "llava-next-video-qwen",
        "LLaVA-NeXT-Video-32B-Qwen (LLaVA-VL/LLaVA-NeXT)",
        "spatial",
        "siglip",
        "fps",
        overwrite=(("mm_spatial_pool_mode", "average"), ("mm_spatial_pool_stride", 2), ("mm_newline_position", "grid")),
    ),
)


def matches(config: dict) -> bool:
    return (config.get("architectures") or [None])[0] == ARCHITECTURE


def release_for(config: dict, tower_kind: str | None) -> Release:
    """The release a LlavaQwenForCausalLM config is, or a clear error naming what was found."""
    merge, tower = config.get("mm_patch_merge_type"), config.get("mm_vision_tower")
    projector = config.get("mm_projector_type")
    for r in RELEASES:
        if (
            isinstance(merge, str)
            and merge.startswith(r.merge_type)
            and projector == "mlp2x_gelu"
            and tower_kind == r.tower
        ):
            return r
    supported = "; ".join(
        f"{r.title}: mm_patch_merge_type {r.merge_type}*, a {r.tower.upper()} tower, mlp2x_gelu" for r in RELEASES
    )
    raise ReleaseFormatError(
        f"unrecognised LLaVA-style checkpoint ({ARCHITECTURE}): found mm_patch_merge_type={merge!r}, "
        f"mm_vision_tower={tower!r} ({tower_kind or 'unknown'} tower), mm_projector_type={projector!r}. Supported releases: {supported}. "
        "Other LLaVA-style checkpoints need their own converter (vlens/families/llava_qwen_release.py)."
    )


def tower_config(config: dict, path: Path):
    """The vision tower's HF config: a local directory named by mm_vision_tower (absolute or
    relative to the checkpoint) with its config.json, else the public config of a known tower."""
    from transformers import AutoConfig, CLIPVisionConfig, SiglipVisionConfig

    name = config["mm_vision_tower"]
    for cand in (Path(name), Path(path) / name):
        if (cand / "config.json").exists():
            c = AutoConfig.from_pretrained(cand, local_files_only=True)
            return getattr(c, "vision_config", c)
    if name in KNOWN_TOWERS:
        kind, kw = KNOWN_TOWERS[name]
        return CLIPVisionConfig(**kw) if kind == "clip" else SiglipVisionConfig(**kw, vision_use_head=False)
    raise ReleaseFormatError(
        f"mm_vision_tower {name!r} is neither a directory with a config.json (absolute or relative to {path}) "
        f"nor one of the known towers {sorted(KNOWN_TOWERS)}; put the tower's config.json in a folder and "
        "point mm_vision_tower at it"
    )


def pool_2d(x: Float[Tensor, "frames tokens d"], grid: int, mode: str, stride: int) -> Float[Tensor, "frames pooled d"]:
    """LLaVA's get_2dPool on a grid×grid patch grid."""
    n, _, d = x.shape
    x = x.view(n, grid, grid, d).permute(0, 3, 1, 2)
    if mode == "average":
        x = F.avg_pool2d(x, stride)
    elif mode == "max":
        x = F.max_pool2d(x, stride)
    elif mode == "bilinear":
        x = F.interpolate(x, size=[math.ceil(grid / stride)] * 2, mode="bilinear")
    else:
        raise ReleaseFormatError(f"mm_spatial_pool_mode {mode!r} is not one of average, max, bilinear")
    return x.permute(0, 2, 3, 1).reshape(n, -1, d)


def pooled_side(grid: int, mode: str, stride: int) -> int:
    return math.ceil(grid / stride) if mode == "bilinear" else grid // stride


class LlavaQwenRelease(OneVision):
    """The LLaVA-Qwen releases on an in-memory OneVision model, with the release's video path."""

    hf_merge = False  # the release's own video path (pooling, newline), not HF OneVision's forward

    architectures = (ARCHITECTURE,)
    release: Release
    settings: dict
    tower_kind: str

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.release.name

    @property
    def default_sampling(self) -> str:
        """The authors' frame sampling: LongVA `np.linspace(0, N−1, n)`; LLaVA-NeXT-Video's demo
        1 fps while that is ≤ n frames, else linspace (vlens.inputs.video)."""
        return self.release.sampling

    def __post_init__(self) -> None:
        settings = self.settings
        object.__setattr__(self, "settings", dict(settings))  # a copy: the spec never changes
        tower_kind = self.tower_kind
        if settings["mm_newline_position"] not in ("none", "grid", "frame", "one_token", "no_token"):
            raise ReleaseFormatError(
                f"mm_newline_position {settings['mm_newline_position']!r} is not supported "
                "(grid, frame, one_token, no_token)"
            )
        if settings["mm_vision_select_feature"] != "patch" and tower_kind == "clip":
            raise ReleaseFormatError(
                f"mm_vision_select_feature {settings['mm_vision_select_feature']!r}: only 'patch' "
                "(CLS dropped) is supported for CLIP towers"
            )

    # geometry ------------------------------------------------------------------------------
    def grid(self, hf_config) -> int:
        v = hf_config.vision_config
        return v.image_size // v.patch_size

    def pooled_grid(self, hf_config) -> int:
        s = self.settings
        return pooled_side(self.grid(hf_config), s["mm_spatial_pool_mode"], s["mm_spatial_pool_stride"])

    @property
    def newline(self) -> str:
        nl = self.settings["mm_newline_position"]
        if nl == "one_token" and "unpad" not in self.settings["mm_patch_merge_type"]:
            return "none"  # LLaVA adds the one newline only with an *unpad merge type
        return "none" if nl == "no_token" else nl

    def tokens(self, n_frames: int, g: int) -> list[VisionToken]:
        nl, out = self.newline, []
        for f in range(n_frames):
            for r in range(g):
                out += [VisionToken("video", f, r, c) for c in range(g)]
                if nl == "grid":
                    out.append(VisionToken("video", f))
            if nl == "frame":
                out.append(VisionToken("video", f))
        if nl == "one_token":
            out.append(VisionToken("separator"))
        return out

    # the release's video path ---------------------------------------------------------------
    def video_features(self, hf_model: nn.Module, inputs) -> Float[Tensor, "batch n_vision d_model"]:
        hf = cast("LlavaOnevisionForConditionalGeneration", hf_model)  # what build() makes
        m, s = hf.model, self.settings
        px = inputs["pixel_values_videos"]
        B, T = px.shape[:2]
        out = m.vision_tower(px.flatten(0, 1).to(m.vision_tower.dtype), output_hidden_states=True)
        # SigLIP: LLaVA deleted the tower's last layer, the checkpoint holds the rest: hidden_states[-1]
        x = out.hidden_states[-1 if self.tower_kind == "siglip" else s["mm_vision_select_layer"]]
        if self.tower_kind == "clip":
            x = x[:, 1:]  # select_feature "patch": drop CLS
        x = m.multi_modal_projector(x)  # projector before pooling, as encode_multimodals does
        x = pool_2d(x, self.grid(hf_model.config), s["mm_spatial_pool_mode"], s["mm_spatial_pool_stride"])
        g, d = self.pooled_grid(hf_model.config), x.shape[-1]
        nl = m.image_newline.to(x.dtype)
        if self.newline == "grid":
            x = torch.cat([x.view(B * T, g, g, d), nl.expand(B * T, g, 1, d)], dim=2).reshape(B * T, -1, d)
        elif self.newline == "frame":
            x = torch.cat([x, nl.expand(B * T, 1, d)], dim=1)
        x = x.reshape(B, -1, d)
        if self.newline == "one_token":
            x = torch.cat([x, nl.expand(B, 1, d)], dim=1)
        return x

    def layout(self, input_ids: Tensor, attention_mask: Tensor | None, video, hf_config, inputs: dict) -> VideoLayout:
        if "pixel_values_videos" not in inputs:
            raise LayoutError(f"no pixel_values_videos in the inputs: {self.name} layouts need a video")
        n_frames = inputs["pixel_values_videos"].shape[1]
        limit = self.settings.get("tokenizer_model_max_length")
        length = int(attention_mask.sum()) if attention_mask is not None else int(input_ids.shape[0])
        if limit is not None and length > limit:
            # LLaVA's prepare_inputs_labels_for_multimodal silently cuts the spliced sequence to
            # this length, i.e. drops the end of the prompt (the question); we do not run that
            raise LayoutError(
                f"the prompt is {length} positions long ({n_frames} frames), over the release's "
                f"tokenizer_model_max_length={limit}: the authors' code would cut it to {limit} positions, dropping "
                "the end of the prompt (the question). vlens refuses rather than run a different prompt: use fewer frames"
            )
        tokens = self.tokens(n_frames, self.pooled_grid(hf_config))
        is_pad = attention_mask == 0 if attention_mask is not None else None
        times = video.timestamps if video is not None else None
        return VideoLayout.build(input_ids == hf_config.video_token_id, tokens, is_pad=is_pad, frame_times=times)

    def tokens_per_video(self, n_frames: int, hf_config) -> int:
        return len(self.tokens(n_frames, self.pooled_grid(hf_config)))


# conversion -------------------------------------------------------------------------------------
def hf_state_dict(state: dict[str, Tensor], tower_keys: set[str], d_model: int, dtype) -> dict[str, Tensor]:
    """Release keys → LlavaOnevisionForConditionalGeneration keys (the table in the docstring)."""
    out: dict[str, Tensor] = {}
    tower_prefix = "model.vision_tower.vision_tower."
    for k, v in state.items():
        if k.startswith(tower_prefix):
            rest = k[len(tower_prefix) :]
            for cand in (f"model.vision_tower.{rest}", f"model.vision_tower.{rest.removeprefix('vision_model.')}"):
                if cand in tower_keys:
                    out[cand] = v
                    break
            # else: a tensor LLaVA does not run (SigLIP's deleted last layer, head, post-layernorm)
        elif k.startswith("model.mm_projector."):
            idx, _, leaf = k[len("model.mm_projector.") :].partition(".")
            name = {"0": "linear_1", "2": "linear_2"}.get(idx)
            if name is None:
                raise ReleaseFormatError(f"unexpected projector tensor {k!r}: only mlp2x_gelu (0 and 2) is supported")
            out[f"model.multi_modal_projector.{name}.{leaf}"] = v
        elif k == "model.image_newline":
            out[k] = v
        elif k.startswith("model.vision_resampler."):
            raise ReleaseFormatError(f"the checkpoint has a vision resampler ({k}); no release vlens supports uses one")
        elif k.startswith("model."):
            out["model.language_model." + k[len("model.") :]] = v
        elif k == "lm_head.weight":
            out[k] = v
        else:
            raise ReleaseFormatError(f"unexpected tensor {k!r} in a {ARCHITECTURE} checkpoint")
    if "model.image_newline" not in out:  # LongVA: no newline parameter, and none is ever used
        out["model.image_newline"] = torch.zeros(d_model, dtype=dtype)
    if not any(k.startswith("model.vision_tower.") for k in out):
        raise ReleaseFormatError(
            "the checkpoint holds no vision tower weights (model.vision_tower.vision_tower.*); vlens does not "
            "download the tower: use a release whose safetensors include it"
        )
    return out


def resolve(config: dict, path: Path):
    """(tower config, tower kind "clip"/"siglip", Release) of a LlavaQwenForCausalLM directory."""
    if "mm_vision_tower" not in config:
        raise ReleaseFormatError(
            f"{path}/config.json names {ARCHITECTURE} but has no mm_vision_tower: not a LLaVA release"
        )
    vcfg = tower_config(config, path)
    kind = (
        "siglip"
        if vcfg.model_type.startswith("siglip")
        else "clip"
        if vcfg.model_type.startswith("clip")
        else vcfg.model_type
    )
    return vcfg, kind, release_for(config, kind)


def export_refusal(path: Path, config: dict, *, token_compression: bool) -> str | None:
    """Why `vlens convert` cannot write this release as an HF directory (always: see the docstring)."""
    _, _, release = resolve(config, path)
    s = release.settings(config)
    return (
        f"no transformers class computes {release.title}'s video path (projector before "
        f"{s['mm_spatial_pool_mode']} pooling with stride {s['mm_spatial_pool_stride']}, newline "
        f"{s['mm_newline_position']!r}; LlavaOnevision always bilinear-pools and appends one newline, "
        "LlavaNextVideo pools before the projector). Load it with HookedVideoLLM.from_pretrained(DIR) instead"
    )


def build(
    path: str | Path,
    *,
    dtype: torch.dtype = torch.float32,
    device="cpu",
    attn_implementation: str = "sdpa",
    config: dict | None = None,
):
    """(hf_model, processor, family) for a LlavaQwenForCausalLM release directory."""
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionVideoProcessor,
        Qwen2Config,
    )

    from vlens.families.release_common import read_config

    path = Path(path)
    config = config or read_config(path)
    vcfg, kind, release = resolve(config, path)
    settings = release.settings(config)
    if config.get("rope_scaling"):
        import logging

        logging.getLogger(__name__).warning(
            "%s: config.json has rope_scaling=%s, which the authors' loader overrides with None; vlens does the same",
            path,
            config["rope_scaling"],
        )
    if kind == "siglip":  # LLaVA's SigLipVisionTower deletes the last layer (and the head)
        vcfg.num_hidden_layers -= 1
        vcfg.vision_use_head = False
    tokenizer = load_tokenizer(path)
    if PLACEHOLDER not in tokenizer.get_vocab():
        tokenizer.add_tokens([PLACEHOLDER], special_tokens=True)
    placeholder_id = tokenizer.convert_tokens_to_ids(PLACEHOLDER)
    if placeholder_id >= config["vocab_size"]:
        raise ReleaseFormatError(
            f"the tokenizer fills all {config['vocab_size']} embedding rows; vlens needs one unused row for its "
            f"video placeholder {PLACEHOLDER} (id {placeholder_id})"
        )
    text = Qwen2Config(
        vocab_size=config["vocab_size"],
        hidden_size=config["hidden_size"],
        intermediate_size=config["intermediate_size"],
        num_hidden_layers=config["num_hidden_layers"],
        num_attention_heads=config["num_attention_heads"],
        num_key_value_heads=config.get("num_key_value_heads", config["num_attention_heads"]),
        max_position_embeddings=config.get("max_position_embeddings", 32768),
        # the authors' loader (LLaVA builder) forces rope_scaling=None whatever config.json says: plain RoPE
        rope_parameters={"rope_type": "default", "rope_theta": config.get("rope_theta", 10000.0)},
        rms_norm_eps=config.get("rms_norm_eps", 1e-6),
        hidden_act=config.get("hidden_act", "silu"),
        tie_word_embeddings=config.get("tie_word_embeddings", False),
        use_sliding_window=config.get("use_sliding_window", False),
    )
    hf_config = LlavaOnevisionConfig(
        text_config=text.to_dict(),
        vision_config=vcfg.to_dict(),
        video_token_index=placeholder_id,  # the fields behind video_token_id / image_token_id
        image_token_index=placeholder_id,
        vision_feature_layer=-1 if kind == "siglip" else settings["mm_vision_select_layer"],
        vision_feature_select_strategy="full" if kind == "siglip" else "default",
        projector_hidden_act="gelu",
        multimodal_projector_bias=True,
        tie_word_embeddings=text.tie_word_embeddings,
    )
    hf_config.architectures = ["LlavaOnevisionForConditionalGeneration"]
    with torch.device("meta"):
        tower_keys = set(LlavaOnevisionForConditionalGeneration(hf_config).state_dict())
    state = hf_state_dict(read_state_dict(path), tower_keys, config["hidden_size"], dtype)
    take(state, "lm_head.weight", release.title) if not text.tie_word_embeddings else None
    hf_model = build_hf_model(
        LlavaOnevisionForConditionalGeneration,
        hf_config,
        state,
        dtype=dtype,
        device=device,
        attn_implementation=attn_implementation,
    )
    family = LlavaQwenRelease(release, settings, kind)

    size, patch = vcfg.image_size, vcfg.patch_size
    assert isinstance(size, int) and isinstance(patch, int)  # LLaVA's towers are square: one int each
    if kind == "clip":  # CLIPImageProcessor: shortest edge, centre crop, CLIP statistics
        vp = LlavaOnevisionVideoProcessor(
            size={"shortest_edge": size},
            do_center_crop=True,
            crop_size={"height": size, "width": size},
            image_mean=CLIP_MEAN,
            image_std=CLIP_STD,
        )
    else:  # LLaVA's SigLipImageProcessor: resize to size×size, mean/std 0.5
        vp = LlavaOnevisionVideoProcessor(
            size={"height": size, "width": size}, image_mean=(0.5,) * 3, image_std=(0.5,) * 3
        )
    processor = ReleaseProcessor(
        image_processor=LlavaOnevisionImageProcessor(size={"height": size, "width": size}),
        video_processor=vp,
        tokenizer=tokenizer,
        chat_template=QWEN_1_5_TEMPLATE,
        num_image_tokens=(size // patch) ** 2,
        video_token=PLACEHOLDER,
        image_token="<image>",  # images unsupported
        vision_feature_select_strategy="full",
    )
    processor.vlens_tokens_per_video = lambda n: family.tokens_per_video(n, hf_model.config)
    if processor.video_token != PLACEHOLDER:
        raise ReleaseFormatError(f"the tokenizer declares its own video token {processor.video_token!r}")
    return hf_model, processor, family


def _processor_class():
    from transformers import LlavaOnevisionProcessor

    class ReleaseProcessor(LlavaOnevisionProcessor):
        """LlavaOnevisionProcessor whose video placeholder count is the release's layout (HF's
        counts ⌈P/2⌉² per frame + 1, which the releases do not lay out)."""

        vlens_tokens_per_video: Callable[[int], int]  # set by build(): the release's tokens for n frames

        def replace_video_token(self, video_inputs: dict, video_idx: int, **kwargs) -> str:
            video = video_inputs["pixel_values_videos"][video_idx]
            n_frames = len(video) if isinstance(video, (list, tuple)) else video.shape[0]
            return self.video_token * self.vlens_tokens_per_video(n_frames)

    return ReleaseProcessor


ReleaseProcessor = _processor_class()
