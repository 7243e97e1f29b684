"""`vlens check MODEL`: what a checkpoint is and what it will cost, from its config and processor
alone — no weights are read or downloaded.

The HF model is built on the meta device (`torch.device("meta")`: shapes, no storage), wrapped
like a loaded one, and its processor lays out a sample prompt at each frame count. The plan then
says, per dtype and frame count, the bytes of the weights (decoder counted by formula from the
config, checked against the meta model's parameters; vision tower and projector counted on the
meta model), the KV cache of one forward, a `run_with_cache` without the N×N tensors and the N×N
attention scores + patterns alone (vlens.model.cache_memory's own estimate), an attribution
backward (every decoder activation and its gradient: an upper bound), the forward FLOPs
(vlens.interventions.flops), and whether weights + KV + the activation cache fit the present
device.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vlens.model.cache_memory import NXN_HOOKS, available_bytes, estimate, n_bytes

DTYPES = ("bfloat16", "float16", "float32")


@dataclass(frozen=True)
class ParameterCount:
    """Parameters of a checkpoint, counted without its weights.

    Attributes:
        decoder: the language model by formula from vlens' config (embedding, blocks, final norm,
            unembedding unless tied).
        meta_decoder: the same part counted on the meta-device HF model (must equal `decoder`).
        vision: everything else of the HF model (tower, projector, newline vectors), on the meta model.
        total: every parameter of the HF model (meta count; tied tensors once).
    """

    decoder: int
    meta_decoder: int
    vision: int
    total: int


@dataclass(frozen=True)
class PlanRow:
    """The memory and FLOPs of one forward at one dtype and frame count (bytes; batch 1)."""

    dtype: str
    frames: int
    positions: int
    weights: int
    kv_cache: int
    activation_cache: int  # run_with_cache without attn scores/pattern
    attention_patterns: int  # attn scores + pattern, every layer and head
    attribution_backward: int  # every decoder activation + its gradient (upper bound)
    forward_flops: float
    fits: bool | None  # weights + KV + activation cache ≤ the device's memory (None: unknown)


@dataclass
class CheckReport:
    """What `check` found (`str()` renders it as `vlens check` prints it)."""

    model: str
    family: str
    architecture: str
    params: ParameterCount
    tokens_per_frame: float | None
    text_positions: int | None
    sample_layout: str | None
    device: str
    device_bytes: int | None
    rows: list[PlanRow] = field(default_factory=list)

    def __str__(self) -> str:
        p = self.params
        lines = [
            f"{self.model}: family {self.family} ({self.architecture})",
            f"parameters: {p.total / 1e9:.3f} B (decoder {p.decoder / 1e9:.3f} B, vision + projector "
            f"{p.vision / 1e9:.3f} B)",
        ]
        if self.tokens_per_frame is not None:
            lines.append(
                f"video tokens per frame: {self.tokens_per_frame:g}; other positions (text, markers, "
                f"separators): {self.text_positions}"
            )
        if self.sample_layout:
            lines.append(f"sample prompt: {self.sample_layout}")
        mem = n_bytes(self.device_bytes) if self.device_bytes is not None else "unknown"
        lines.append(f"device: {self.device} ({mem} available)")
        lines.append(
            f"{'dtype':<9} {'frames':>6} {'N':>7} {'weights':>9} {'KV':>9} {'cache':>9} {'N×N':>9} "
            f"{'attrib.':>9} {'TFLOPs':>8}  fits"
        )
        for r in self.rows:
            fits = "?" if r.fits is None else ("yes" if r.fits else "no")
            lines.append(
                f"{r.dtype:<9} {r.frames:>6} {r.positions:>7} {n_bytes(r.weights):>9} {n_bytes(r.kv_cache):>9} "
                f"{n_bytes(r.activation_cache):>9} {n_bytes(r.attention_patterns):>9} "
                f"{n_bytes(r.attribution_backward):>9} {r.forward_flops / 1e12:>8.2f}  {fits}"
            )
        return "\n".join(lines)


def decoder_parameters(cfg, *, tied: bool) -> int:
    """The language model's parameters by formula from a `HookedVideoLLMConfig` (Qwen2/Llama-style
    blocks: q/k/v/o, gated MLP, RMSNorms; the config's q/k/v biases, q/k norms, sandwich norms).
    `tied`: the unembedding is the embedding matrix (counted once)."""
    D, H, K, d = cfg.d_model, cfg.n_heads, cfg.n_key_value_heads, cfg.d_head
    attn = D * H * d + 2 * D * K * d + H * d * D
    if cfg.qkv_bias:
        attn += H * d + 2 * K * d
    if getattr(cfg, "qk_norm", False):
        attn += 2 * d
    mlp = 3 * D * cfg.d_mlp
    norms = 2 * D * (2 if getattr(cfg, "use_normalization_before_and_after", False) else 1)
    if getattr(cfg, "moe", None) is not None:
        raise NotImplementedError("the decoder formula does not cover MoE blocks; read meta_decoder")
    embed = cfg.d_vocab * D
    unembed = 0 if tied else cfg.d_vocab * D
    return embed + cfg.n_layers * (attn + mlp + norms) + D + unembed


def meta_model(config) -> nn.Module:
    """The HF model of a transformers config on the meta device (no storage, no weights read)."""
    import transformers

    cls = getattr(transformers, config.architectures[0])
    with torch.device("meta"):
        return cls._from_config(config)


def _unique_numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())  # parameters() yields tied tensors once


def count_parameters(model) -> ParameterCount:
    """`ParameterCount` of a HookedVideoLLM built on the meta device."""
    hf = model.hf_model
    decoder_ids = {id(p) for n, p in model.named_parameters() if not n.startswith(("vision.", "vision_params."))}
    meta_decoder = sum(p.numel() for p in hf.parameters() if id(p) in decoder_ids)
    total = _unique_numel(hf)
    tied = hf.get_output_embeddings().weight is hf.get_input_embeddings().weight
    try:
        formula = decoder_parameters(model.cfg, tied=tied)
    except NotImplementedError:  # MoE: the meta count only
        formula = meta_decoder
    return ParameterCount(formula, meta_decoder, total - meta_decoder, total)


def _source(name_or_path, revision, cache_dir, local_files_only) -> tuple[Path, str]:
    from vlens.model.hub import HubCheckpoint, checkpoint_source

    source = checkpoint_source(name_or_path, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
    if isinstance(source, HubCheckpoint):
        source.config_file()  # the family is checked before anything else moves
        return source.snapshot(weights=False), source.repo_id
    return source, str(source)


def build_meta(path: Path, processor: Any = None):
    """A HookedVideoLLM of the checkpoint at `path` on the meta device, with its processor."""
    import transformers

    from vlens.families import resolve

    config_dict = json.loads((path / "config.json").read_text())
    entry = resolve(config_dict, where=str(path / "config.json"))
    if entry.is_release:
        raise NotImplementedError(
            f"vlens check reads HF-format checkpoints; {path} is the release format {entry.name}: "
            "convert it first (`vlens convert`) or load it with from_pretrained"
        )
    config = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
    return wrap_meta(meta_model(config), processor), config


def wrap_meta(hf_model: nn.Module, processor: Any = None):
    """HookedVideoLLM.from_hf on a meta-device HF model: vlens' own modules are created on the
    meta device too (a 7B decoder would otherwise allocate its full size before sharing)."""
    from vlens.model.hooked_video_llm import HookedVideoLLM

    with torch.device("meta"):
        return HookedVideoLLM.from_hf(hf_model, processor)


def check_config(
    config,
    *,
    processor: Any = None,
    name: str | None = None,
    frames: Sequence[int] = (8, 32, 64),
    dtypes: Sequence[str] = ("bfloat16", "float32"),
    frame_size: tuple[int, int] = (360, 640),
    tokens_per_frame: float | None = None,
    text_positions: int | None = None,
    device: str | torch.device | None = None,
) -> CheckReport:
    """The report of `check` for a transformers config (and processor) already in hand.

    Without a processor the sequence length is `text_positions + frames·tokens_per_frame`
    (both required then, e.g. the published tokens per frame).

    Raises:
        ValueError: a dtype not in DTYPES, a frame count < 1, or neither a processor nor
            tokens_per_frame/text_positions.
    """
    bad = [d for d in dtypes if d not in DTYPES]
    if bad:
        raise ValueError(f"dtypes {bad} are not among {list(DTYPES)}")
    if not frames or any(not isinstance(f, int) or f < 1 for f in frames):
        raise ValueError(f"frames must be frame counts ≥ 1, got {list(frames)}")
    if processor is None and (tokens_per_frame is None or text_positions is None):
        raise ValueError(
            "without a processor pass tokens_per_frame= and text_positions= (the sequence length is "
            "text_positions + frames·tokens_per_frame)"
        )
    model = wrap_meta(meta_model(config), processor)
    params = count_parameters(model)
    sample = None
    lengths: dict[int, int] = {}
    if processor is not None:
        h, w = frame_size
        for f in frames:
            inputs = model.to_inputs(
                np.zeros((f, h, w, 3), np.uint8), "What happens in the video?", n_frames=f, fps=1.0
            )
            lay = inputs.layouts[0]
            lengths[f] = len(lay)
            if sample is None:
                sample = repr(lay)
                n_vis = int(lay.is_vision.sum())  # video tokens + separators (newline vectors)
                tokens_per_frame, text_positions = int(lay.mask("video").sum()) / f, len(lay) - n_vis
    else:
        assert tokens_per_frame is not None and text_positions is not None
        lengths = {f: int(text_positions + round(f * tokens_per_frame)) for f in frames}
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    free = available_bytes(dev)
    rows = []
    for dtype_name in dtypes:
        dtype = getattr(torch, dtype_name)
        size = torch.empty((), dtype=dtype).element_size()
        cfg = dataclasses.replace(model.cfg, dtype=dtype)
        for f in frames:
            n = lengths[f]
            ids = torch.zeros(1, n, dtype=torch.long)
            no_nxn = estimate(
                model, ids, lambda name: not name.endswith(NXN_HOOKS) and not name.startswith("vision."), dtype=dtype
            )
            nxn = estimate(
                model, ids, lambda name: name.endswith(NXN_HOOKS) and not name.startswith("vision."), dtype=dtype
            )
            every = estimate(model, ids, lambda name: not name.startswith("vision."), incl_bwd=True, dtype=dtype)
            kv = 2 * cfg.n_layers * (cfg.n_key_value_heads or cfg.n_heads) * cfg.d_head * n * size
            weights = params.total * size
            rows.append(
                PlanRow(
                    dtype_name,
                    f,
                    n,
                    weights,
                    kv,
                    no_nxn.total,
                    nxn.total,
                    every.total,
                    _forward_flops(cfg, n),
                    None if free is None else weights + kv + no_nxn.total <= free,
                )
            )
    return CheckReport(
        name or getattr(config, "_name_or_path", "") or config.architectures[0],
        model.family.name,
        config.architectures[0],
        params,
        tokens_per_frame,
        text_positions,
        sample,
        str(dev),
        free,
        rows,
    )


def _forward_flops(cfg, n: int) -> float:
    from vlens.interventions.flops import suffix_layer_flops, unembed_per_row

    layer = suffix_layer_flops(cfg, n)
    return cfg.n_layers * (layer.attention + layer.linear) + unembed_per_row(cfg)


def check(
    name_or_path: str | Path,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    frames: Sequence[int] = (8, 32, 64),
    dtypes: Sequence[str] = ("bfloat16", "float32"),
    frame_size: tuple[int, int] = (360, 640),
    device: str | torch.device | None = None,
) -> CheckReport:
    """What a checkpoint is and costs, from its config and processor alone (module docstring).

    Args:
        name_or_path: a hub id or a local checkpoint directory (as `from_pretrained`); a hub id
            fetches config, tokenizer and processor files only, never the weights.
        revision: the hub id's branch, tag or commit (as `from_pretrained`).
        cache_dir: the hub cache (as `from_pretrained`).
        local_files_only: never reach the hub (as `from_pretrained`; `HF_HUB_OFFLINE=1` too).
        frames: the frame counts to plan for.
        dtypes: the dtypes to plan for ("bfloat16", "float16", "float32").
        frame_size: (height, width) of the sample video's frames.
        device: the device whose memory decides "fits" (default: cuda if present, else cpu).

    Returns:
        The `CheckReport` (`print(report)` shows the table).
    """
    import transformers

    path, name = _source(name_or_path, revision, cache_dir, local_files_only)
    try:
        processor = transformers.AutoProcessor.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, TypeError):
        processor = None
    _, config = build_meta(path, None)
    if processor is None:
        raise ValueError(
            f"{name} has no processor files vlens can read (preprocessor/tokenizer); vlens check lays out a "
            "sample prompt with them. Use vlens.check.check_config(config, tokens_per_frame=..., "
            "text_positions=...) to plan from the config alone"
        )
    return check_config(
        config, processor=processor, name=name, frames=frames, dtypes=dtypes, frame_size=frame_size, device=device
    )
