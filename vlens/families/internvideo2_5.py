"""InternVideo2.5-Chat-8B as released: remote-code `InternVLChatModel`
(`modeling_internvl_chat_hico2.py`) on the InternVL2.5 design with an InternLM2 LM.

`HookedVideoLLM.from_pretrained(dir)` recognises it (config.json: architectures
["InternVLChatModel"], llm_config.architectures ["InternLM2ForCausalLM"]) and routes here; no
remote code runs. We build an in-memory `InternVLForConditionalGeneration` with a **Llama** text
config (InternLM2 is Llama's equations with a fused, head-interleaved `wqkv`, split into q/k/v
exactly as HF's `convert_internvl_weights_to_hf.py` does) and an `InternVLVisionModel` tower.

Key mapping (release key on disk → in-memory HF key):

| release (InternVLChatModel)                                  | HF InternVLForConditionalGeneration |
|--------------------------------------------------------------|-------------------------------------|
| `vision_model.embeddings.class_embedding`                    | `model.vision_tower.embeddings.cls_token` |
| `vision_model.embeddings.patch_embedding.{weight,bias}`      | `model.vision_tower.embeddings.patch_embeddings.projection.*` |
| `vision_model.embeddings.position_embedding`                 | `model.vision_tower.embeddings.position_embeddings` |
| `vision_model.encoder.layers.i.attn.qkv.{weight,bias}` (q;k;v rows) | `….encoder.layer.i.attention.{q,k,v}_proj.*` |
| `vision_model.encoder.layers.i.attn.proj.*`                  | `….encoder.layer.i.attention.projection_layer.*` |
| `vision_model.encoder.layers.i.ls1` / `ls2`                  | `….encoder.layer.i.lambda_1` / `lambda_2` |
| `vision_model.encoder.layers.i.norm1` / `norm2`              | `….encoder.layer.i.layernorm_before` / `layernorm_after` |
| `vision_model.encoder.layers.i.mlp.fc1` / `fc2`              | `….encoder.layer.i.mlp.fc1` / `fc2` |
| `mlp1.0` / `mlp1.1` / `mlp1.3`                               | `model.multi_modal_projector.layer_norm` / `linear_1` / `linear_2` |
| `language_model.model.tok_embeddings.weight`                 | `model.language_model.embed_tokens.weight` |
| `language_model.model.layers.i.attention.wqkv.weight`        | `….self_attn.{q,k,v}_proj.weight` (view [kv, groups+2, d_head, d]: `groups` q, then k, v) |
| `language_model.model.layers.i.attention.wo.weight`          | `….layers.i.self_attn.o_proj.weight` |
| `language_model.model.layers.i.attention_norm` / `ffn_norm`  | `….layers.i.input_layernorm` / `post_attention_layernorm` |
| `language_model.model.layers.i.feed_forward.w1` / `w3` / `w2` | `….layers.i.mlp.gate_proj` / `up_proj` / `down_proj` |
| `language_model.model.norm.weight`                           | `model.language_model.norm.weight` |
| `language_model.output.weight`                               | `lm_head.weight` |

The video path (the release's `extract_feature`): every frame one 448² tile (the README's
`load_video` with `max_num=1`: resize to 448×448 bicubic, ImageNet mean/std); InternViT
(`select_layer`, CLS dropped) → pixel shuffle by `downsample_ratio` (ps_version v2) → **HiCo
token compression**: frames in groups of `local_num_frames` = 4, the group's 4·(P/2)² tokens
merged by ToMe bipartite soft matching (`merge_tokens`, weighted averages, rounds of at most
half) down to `num_tome_tokens` = 64, then split back into 4 blocks of 16 → `mlp1`. (Both
constants are hard-coded in the release's `__init__`, not in config.json.) HF's InternVL video
path has no compression, so the family below runs it explicitly between the shuffle and the
projector; `token_compression=False` gives the plain InternVL2.5 path HF computes (what
`vlens convert --no-token-compression` writes).

Prompt: the `internvl2_5` template (ChatML, the release's system message), the question
prefixed with "Frame1: <image>\\nFrame2: <image>\\n…", each `<image>` →
`<img>` + `<IMG_CONTEXT>`×16 + `</img>`: the same string HF's InternVLProcessor writes for a video.

Layout with compression: a group's 64 merged tokens mix its 4 frames, so the 16 positions in the
block of frame k are `video` positions of temporal group k // 4 (`frames_per_group` 4, row/col
−1: merged tokens have no grid position). The "FrameN: <img>"/"</img>" text stays `marker`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch
from jaxtyping import Float
from torch import Tensor, nn

from vlens.families.base import chatml_template, per_row
from vlens.families.internvl import InternVL
from vlens.families.release_common import (
    ReleaseFormatError,
    build_hf_model,
    load_tokenizer,
    read_config,
    read_state_dict,
    take,
)
from vlens.inputs.layout import LayoutError, VideoLayout

if TYPE_CHECKING:  # pragma: no cover
    from transformers import InternVLForConditionalGeneration

ARCHITECTURE = "InternVLChatModel"
LOCAL_NUM_FRAMES = 4  # modeling_internvl_chat_hico2.py: self.local_num_frames = 4
NUM_TOME_TOKENS = 64  # self.num_tome_tokens = 64 (per group of LOCAL_NUM_FRAMES frames)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SYSTEM_MESSAGE = (
    "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。"
)

# internvl2_5 (the release's conversation template): ChatML with its system message; InternVLProcessor
# expands the `<video>` placeholder into the "FrameN: <img>…</img>" lines.
INTERNVL2_5_TEMPLATE = chatml_template("<video>\n", system=SYSTEM_MESSAGE)


def matches(config: dict) -> bool:
    return (config.get("architectures") or [None])[0] == ARCHITECTURE


# HiCo token compression (the release's merge_tokens / bipartite_soft_matching / merge_wavg) ------
def _bipartite_merge(x: Tensor, size: Tensor, metric: Tensor, r: int) -> tuple[Tensor, Tensor]:
    """One ToMe round: tokens alternate into sets A (even) and B (odd); the r A-tokens most similar
    (cosine) to their best B-token are summed into it; sizes are carried so that means stay weighted."""
    r = min(r, metric.shape[1] // 2)
    metric = metric / metric.norm(dim=-1, keepdim=True)
    a, b = metric[..., ::2, :], metric[..., 1::2, :]
    node_max, node_idx = (a @ b.transpose(-1, -2)).max(dim=-1)
    edge_idx = node_max.argsort(dim=-1, descending=True)[..., None]
    unm_idx, src_idx = edge_idx[..., r:, :], edge_idx[..., :r, :]
    dst_idx = node_idx[..., None].gather(dim=-2, index=src_idx)

    def merge(t: Tensor) -> Tensor:
        src, dst = t[..., ::2, :], t[..., 1::2, :]
        n, t1, c = src.shape
        unm = src.gather(dim=-2, index=unm_idx.expand(n, t1 - r, c))
        src = src.gather(dim=-2, index=src_idx.expand(n, r, c))
        return torch.cat([unm, dst.scatter_add(-2, dst_idx.expand(n, r, c), src)], dim=1)

    x, size = merge(x * size), merge(size)
    return x / size, size


def merge_tokens(x: Float[Tensor, "groups tokens c"], target: int, n_heads: int) -> Float[Tensor, "groups target c"]:
    b, p, c = x.shape
    if p <= target:
        raise LayoutError(f"InternVideo2.5 merges {p} tokens a group down to {target}: the frames are too small")
    schedule, tmp = [], p
    while tmp != target:  # remove at most half the tokens a round
        if tmp - target <= tmp // 2:
            schedule.append(tmp - target)
            break
        schedule.append(tmp // 2)
        tmp -= tmp // 2
    size = torch.ones_like(x[..., :1])
    for r in schedule:
        metric = x.reshape(b, x.shape[1], n_heads, c // n_heads).mean(2)
        x, size = _bipartite_merge(x, size, metric, r)
    return x


class InternVideo25(InternVL):
    name = "internvideo2.5"
    architectures = (ARCHITECTURE,)
    hf_merge = False  # the release's own vision path (token compression), not HF InternVL's forward
    default_sampling = "internvl"  # the release's get_index (vlens.inputs.sampling)
    token_compression: bool = True  # the release's ToMe merge to 16 tokens a frame
    n_lm_heads: int = 1  # ToMe's metric averages over this many heads

    def tokens_per_frame(self, hf_config) -> int:
        if self.token_compression:
            return NUM_TOME_TOKENS // LOCAL_NUM_FRAMES
        v = hf_config.vision_config
        return (v.image_size[0] // v.patch_size[0] // round(1 / hf_config.downsample_ratio)) ** 2

    def video_features(self, hf_model: nn.Module, inputs) -> Float[Tensor, "batch n_vision d_model"]:
        if not self.token_compression:
            return super().video_features(hf_model, inputs)
        hf = cast("InternVLForConditionalGeneration", hf_model)  # what build() makes
        m, cfg = hf.model, hf.config
        px = inputs["pixel_values"]
        if px.shape[0] % LOCAL_NUM_FRAMES:
            raise ValueError(
                f"InternVideo2.5 compresses frames in groups of {LOCAL_NUM_FRAMES}: sample a multiple of "
                f"{LOCAL_NUM_FRAMES} frames (got {px.shape[0]} frames in the batch)"
            )
        out = m.vision_tower(pixel_values=px.to(m.dtype), output_hidden_states=True)
        x = out.last_hidden_state if cfg.vision_feature_layer == -1 else out.hidden_states[cfg.vision_feature_layer]
        x = x[:, 1:]
        side = int(x.shape[1] ** 0.5)
        x = m.pixel_shuffle(x.reshape(x.shape[0], side, side, -1), scale_factor=cfg.downsample_ratio)
        c = x.shape[-1]
        x = x.reshape(-1, LOCAL_NUM_FRAMES * x.shape[1] * x.shape[2], c)  # one row per group of 4 frames
        x = merge_tokens(x, NUM_TOME_TOKENS, self.n_lm_heads)
        x = m.multi_modal_projector(x.reshape(-1, NUM_TOME_TOKENS // LOCAL_NUM_FRAMES, c))
        return per_row(x, inputs["input_ids"].shape[0])

    def shuffled_grid(self, hf_config, height: int, width: int) -> tuple[int, int]:
        if not self.token_compression:
            return super().shuffled_grid(hf_config, height, width)
        return 1, self.tokens_per_frame(hf_config)  # 16 merged tokens in every <img> block

    def layout(self, input_ids: Tensor, attention_mask: Tensor | None, video, hf_config, inputs: dict) -> VideoLayout:
        lay = super().layout(input_ids, attention_mask, video, hf_config, inputs)  # markers and block checks
        if not self.token_compression:
            return lay
        if lay.n_frames % LOCAL_NUM_FRAMES:
            raise LayoutError(
                f"InternVideo2.5 needs a multiple of {LOCAL_NUM_FRAMES} frames, the prompt has {lay.n_frames}"
            )
        vid = lay.frame >= 0
        frame = torch.where(vid, lay.frame // LOCAL_NUM_FRAMES, lay.frame)
        none = torch.full_like(lay.row, -1)
        return VideoLayout(
            lay.segment, frame, none, none.clone(), frames_per_group=LOCAL_NUM_FRAMES, frame_times=lay.frame_times
        )


# conversion -------------------------------------------------------------------------------------
def hf_state_dict(state: dict[str, Tensor], lc: dict, n_vision_heads: int) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    H, KV = lc["num_attention_heads"], lc.get("num_key_value_heads", lc["num_attention_heads"])
    D = lc["hidden_size"]
    dh, G = D // H, H // KV
    vit, lm = "vision_model.", "language_model.model."
    for k, v in state.items():
        if k.startswith(vit):
            rest = k[len(vit) :]
            emb = {
                "embeddings.class_embedding": "embeddings.cls_token",
                "embeddings.patch_embedding.weight": "embeddings.patch_embeddings.projection.weight",
                "embeddings.patch_embedding.bias": "embeddings.patch_embeddings.projection.bias",
                "embeddings.position_embedding": "embeddings.position_embeddings",
            }
            if rest in emb:
                out["model.vision_tower." + emb[rest]] = v
                continue
            if not rest.startswith("encoder.layers."):
                raise ReleaseFormatError(f"unexpected vision tensor {k!r}")
            i, _, leaf = rest[len("encoder.layers.") :].partition(".")
            dst = f"model.vision_tower.encoder.layer.{i}."
            if leaf.startswith("attn.qkv."):
                for name, part in zip("qkv", v.chunk(3, dim=0)):  # rows: q, then k, then v
                    out[dst + f"attention.{name}_proj.{leaf.rsplit('.', 1)[1]}"] = part
            else:
                simple = {
                    "attn.proj.weight": "attention.projection_layer.weight",
                    "attn.proj.bias": "attention.projection_layer.bias",
                    "ls1": "lambda_1",
                    "ls2": "lambda_2",
                    "norm1.weight": "layernorm_before.weight",
                    "norm1.bias": "layernorm_before.bias",
                    "norm2.weight": "layernorm_after.weight",
                    "norm2.bias": "layernorm_after.bias",
                }
                if leaf in simple:
                    out[dst + simple[leaf]] = v
                elif leaf.startswith("mlp."):
                    out[dst + leaf] = v
                else:
                    raise ReleaseFormatError(
                        f"unexpected vision tensor {k!r} (qk-normalised InternViT is not supported)"
                    )
        elif k.startswith("mlp1."):
            idx, _, leaf = k[len("mlp1.") :].partition(".")
            out[
                f"model.multi_modal_projector.{ {'0': 'layer_norm', '1': 'linear_1', '3': 'linear_2'}[idx] }.{leaf}"
            ] = v
        elif k == "language_model.output.weight":
            out["lm_head.weight"] = v
        elif k == lm + "tok_embeddings.weight":
            out["model.language_model.embed_tokens.weight"] = v
        elif k == lm + "norm.weight":
            out["model.language_model.norm.weight"] = v
        elif k.startswith(lm + "layers."):
            i, _, leaf = k[len(lm + "layers.") :].partition(".")
            dst = f"model.language_model.layers.{i}."
            if leaf == "attention.wqkv.weight":
                w = v.view(KV, G + 2, dh, D)
                out[dst + "self_attn.q_proj.weight"] = w[:, :G].reshape(-1, D)
                out[dst + "self_attn.k_proj.weight"] = w[:, -2].reshape(-1, D)
                out[dst + "self_attn.v_proj.weight"] = w[:, -1].reshape(-1, D)
            else:
                simple = {
                    "attention.wo.weight": "self_attn.o_proj.weight",
                    "attention_norm.weight": "input_layernorm.weight",
                    "ffn_norm.weight": "post_attention_layernorm.weight",
                    "feed_forward.w1.weight": "mlp.gate_proj.weight",
                    "feed_forward.w3.weight": "mlp.up_proj.weight",
                    "feed_forward.w2.weight": "mlp.down_proj.weight",
                }
                if leaf not in simple:
                    raise ReleaseFormatError(
                        f"unexpected language-model tensor {k!r} (InternLM2 with biases is not supported)"
                    )
                out[dst + simple[leaf]] = v
        else:
            raise ReleaseFormatError(f"unexpected tensor {k!r} in an {ARCHITECTURE} checkpoint")
    return out


def export_refusal(path: Path, config: dict, *, token_compression: bool) -> str | None:
    """Why `vlens convert` cannot write this release as an HF directory: HF's InternVL has no
    token compression, so only the uncompressed path can be written."""

    if not token_compression:
        return None
    return (
        "InternVideo2.5's released inference compresses every 4 frames to 64 tokens (HiCo/ToMe), which "
        "InternVLForConditionalGeneration does not compute. Pass --no-token-compression to write the plain "
        "InternVL2.5 path HF computes (a different model input than the release's chat), or load the release "
        "with HookedVideoLLM.from_pretrained(DIR)"
    )


def needs_bos(path: Path, tokenizer) -> bool:
    """Whether the chat template must write `<s>` itself so that every prompt starts with it, as the
    authors' tokenizer makes it start: InternLM2Tokenizer prepends BOS (`add_bos_token`: as
    tokenizer_config.json says, else True when the tokenizer has a BOS token) and `model.chat`
    tokenizes the templated prompt with it. A tokenizer.json's post-processor may or may not add it; we look at what it does.

    Raises:
        ReleaseFormatError: the release says no BOS but the tokenizer.json adds one, or BOS is
            wanted and the tokenizer has none.
    """
    import json

    tc_file = Path(path) / "tokenizer_config.json"
    wanted = json.loads(tc_file.read_text()).get("add_bos_token") if tc_file.exists() else None
    if wanted is None:  # InternLM2Tokenizer's default: prepend BOS whenever the tokenizer has one
        wanted = tokenizer.bos_token_id is not None
    probe = tokenizer("a", add_special_tokens=True)["input_ids"]
    adds = tokenizer.bos_token_id is not None and probe[:1] == [tokenizer.bos_token_id]
    if wanted and tokenizer.bos_token_id is None:
        raise ReleaseFormatError("the release's tokenizer prepends a BOS token, but this tokenizer has no bos_token")
    if not wanted and adds:
        raise ReleaseFormatError(
            "tokenizer_config.json says add_bos_token=false but the tokenizer.json adds a BOS token"
        )
    return wanted and not adds


def build(
    path: str | Path,
    *,
    dtype: torch.dtype = torch.float32,
    device="cpu",
    attn_implementation: str = "sdpa",
    config: dict | None = None,
    token_compression: bool = True,
):
    """(hf_model, processor, family) for an InternVideo2.5 release directory."""
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
        InternVLVisionConfig,
        LlamaConfig,
    )

    path = Path(path)
    config = config or read_config(path)
    lc, vc = config.get("llm_config") or {}, config.get("vision_config") or {}
    llm = (lc.get("architectures") or [None])[0]
    if llm != "InternLM2ForCausalLM":
        raise ReleaseFormatError(
            f"{ARCHITECTURE} with a {llm!r} language model is not supported: vlens converts "
            "InternVideo2.5 (InternLM2ForCausalLM) only"
        )
    if lc.get("bias", False):
        raise ReleaseFormatError("InternLM2 with bias=True (wqkv and wo biases) is not supported by the hooked decoder")
    if config.get("ps_version", "v2") != "v2":
        raise ReleaseFormatError(f"ps_version {config.get('ps_version')!r}: only v2 pixel shuffle is supported")
    if vc.get("qk_normalization", False):
        raise ReleaseFormatError(
            "InternViT with qk_normalization is not supported (InternVideo2.5 uses InternViT-300M)"
        )
    rope = lc.get("rope_scaling") or {}
    if rope and rope.get("type", rope.get("rope_type")) != "dynamic":
        raise ReleaseFormatError(
            f"InternLM2 rope_scaling {rope} is not supported (only none, or dynamic NTK below "
            "max_position_embeddings, where it equals plain RoPE)"
        )
    image_size = config.get("force_image_size") or vc["image_size"]
    vision = InternVLVisionConfig(
        hidden_size=vc["hidden_size"],
        intermediate_size=vc["intermediate_size"],
        num_hidden_layers=vc["num_hidden_layers"],
        num_attention_heads=vc["num_attention_heads"],
        image_size=image_size,
        patch_size=vc["patch_size"],
        attention_bias=vc.get("qkv_bias", True),
        use_qk_norm=False,
        norm_type=vc.get("norm_type", "layer_norm"),
        layer_norm_eps=vc.get("layer_norm_eps", 1e-6),
        hidden_act=vc.get("hidden_act", "gelu"),
        use_mean_pooling=True,
    )
    text = LlamaConfig(
        vocab_size=lc["vocab_size"],
        hidden_size=lc["hidden_size"],
        intermediate_size=lc["intermediate_size"],
        num_hidden_layers=lc["num_hidden_layers"],
        num_attention_heads=lc["num_attention_heads"],
        num_key_value_heads=lc.get("num_key_value_heads", lc["num_attention_heads"]),
        max_position_embeddings=lc.get("max_position_embeddings", 32768),
        rms_norm_eps=lc.get("rms_norm_eps", 1e-5),
        rope_parameters={"rope_type": "default", "rope_theta": lc.get("rope_theta", 10000.0)},
        hidden_act=lc.get("hidden_act", "silu"),
        tie_word_embeddings=lc.get("tie_word_embeddings", False),
        attention_bias=False,
    )
    tokenizer = load_tokenizer(path)
    named = {
        "start_image_token": "<img>",
        "end_image_token": "</img>",
        "context_image_token": "<IMG_CONTEXT>",
        "video_token": "<video>",
    }
    vocab = tokenizer.get_vocab()
    missing = [t for t in ("<img>", "</img>", "<IMG_CONTEXT>") if t not in vocab]
    if missing:
        raise ReleaseFormatError(f"the tokenizer lacks InternVL's tokens {missing}; is this the release's tokenizer?")
    if "<video>" not in vocab:  # the template's placeholder, expanded by the processor before tokenizing
        tokenizer.add_tokens(["<video>"], special_tokens=True)
    tokenizer._set_model_specific_special_tokens(named)
    template = INTERNVL2_5_TEMPLATE if not needs_bos(path, tokenizer) else "{{ bos_token }}" + INTERNVL2_5_TEMPLATE
    tokens_per_frame = (
        NUM_TOME_TOKENS // LOCAL_NUM_FRAMES
        if token_compression
        else (image_size // vc["patch_size"] // round(1 / config["downsample_ratio"])) ** 2
    )
    hf_config = InternVLConfig(
        text_config=text.to_dict(),
        vision_config=vision.to_dict(),
        image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"),
        image_seq_length=tokens_per_frame,
        downsample_ratio=config["downsample_ratio"],
        vision_feature_layer=config.get("select_layer", -1),
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        tie_word_embeddings=text.tie_word_embeddings,
    )
    hf_config.architectures = ["InternVLForConditionalGeneration"]
    state = read_state_dict(path)
    take(state, "language_model.output.weight", "InternVideo2.5")
    hf_model = build_hf_model(
        InternVLForConditionalGeneration,
        hf_config,
        hf_state_dict(state, lc, vc["num_attention_heads"]),
        dtype=dtype,
        device=device,
        attn_implementation=attn_implementation,
    )
    size = {"height": image_size, "width": image_size}
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(
            size=size, crop_to_patches=False, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD
        ),
        video_processor=InternVLVideoProcessor(size=size, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD),
        tokenizer=tokenizer,
        image_seq_length=tokens_per_frame,
        chat_template=template,
    )
    family = InternVideo25(token_compression=token_compression, n_lm_heads=lc["num_attention_heads"])
    return hf_model, processor, family
