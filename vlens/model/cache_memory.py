"""What `run_with_cache` is about to keep, in bytes, and the budget that refuses too much.

The cache holds one tensor per hook that passes `names_filter`. Most are [batch, pos, d] — the
residual stream, MLP activations, per-head q/k/v/z — and grow linearly with the sequence. Two per
layer grow with its square: `attn.hook_attn_scores` and `attn.hook_pattern`, each
[batch, head, pos, pos]. At 32 frames of a 7B video LLM (N ≈ 6.3k positions, 28 layers × 28 heads,
fp32) one head's scores are N²·4 B ≈ 159 MB, scores + pattern of every head and layer ≈ 250 GB.
So `run_with_cache` estimates the total before running and refuses above a budget, naming the
filter that keeps the N×N tensors out:

    names_filter=lambda name: not name.endswith(("hook_attn_scores", "hook_pattern"))

The estimate is exact for the hooks of the hooked decoder (shapes below, in the model's dtype; the
norms' `hook_scale` in fp32) and counts gradients too when `incl_bwd=True`; hooks it does not know
(a family's extra hooks, e.g. MoE routing) are counted as [batch, pos, d_model]. The vision
tower's hooks (cached only when a filter names them) are bounded from the pixel values' shape.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

NXN_HOOKS = ("hook_attn_scores", "hook_pattern")
NO_NXN_FILTER = 'names_filter=lambda name: not name.endswith(("hook_attn_scores", "hook_pattern"))'
DEFAULT_BUDGET = "auto"  # half the memory now available on the cache's device
_BLOCK = re.compile(r"^blocks\.(\d+)\.")
_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


class CacheMemoryError(MemoryError, ValueError):
    """The activations `run_with_cache` would keep exceed the memory budget."""


@dataclass(frozen=True)
class CacheEstimate:
    """Bytes a `run_with_cache` call would keep.

    Attributes:
        total: all cached tensors.
        nxn: the part in [batch, head, pos, pos] tensors (attention scores and pattern).
        n_tensors: how many tensors.
        largest: (hook name, bytes) of the largest tensor.
    """

    total: int
    nxn: int
    n_tensors: int
    largest: tuple[str, int]

    def __str__(self) -> str:
        return (
            f"{n_bytes(self.total)} in {self.n_tensors} tensors ({n_bytes(self.nxn)} of them N×N attention "
            f"scores/patterns; largest {self.largest[0]}: {n_bytes(self.largest[1])})"
        )


def n_bytes(b: float) -> str:
    """Bytes for people: 1.5 GB, 160 MB (powers of 1000)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= size:
            return f"{b / size:.1f} {unit}"
    return f"{int(b)} B"


def _elements(name: str, cfg, batch: int, pos: int, n_vision: int) -> int:
    """Elements of the tensor hook `name` holds (shapes of vlens.components / model.py)."""
    leaf = name.rsplit(".", 1)[-1]
    H, K, d = cfg.n_heads, cfg.n_key_value_heads, cfg.d_head
    if leaf in NXN_HOOKS:
        return batch * H * pos * pos
    if leaf in ("hook_q", "hook_rot_q", "hook_z"):
        return batch * pos * H * d
    if leaf in ("hook_k", "hook_v", "hook_rot_k"):
        return batch * pos * K * d
    if leaf == "hook_scale":
        return batch * pos
    if leaf in ("hook_pre", "hook_pre_linear", "hook_post") and ".mlp." in name:
        return batch * pos * cfg.d_mlp
    if leaf == "hook_video_features":
        return batch * n_vision * cfg.d_model
    return batch * pos * cfg.d_model  # residual stream, attn/mlp out, normalised, embed


def _vision_elements(model, name: str, inputs: Any) -> int:
    """An upper bound on the elements of a vision tower hook (vlens.model.vision_hooks): the tower's
    token count is read off the pixel values — packed towers (Qwen/GLM) take one row per patch,
    per-frame towers (H/p)·(W/p) patches per frame plus a class token — before the tower runs."""
    tower = model.vision_hooks.tower
    pixels = next((inputs[k] for k in ("pixel_values_videos", "pixel_values") if k in inputs), None)
    if tower is None or pixels is None:
        return 0
    blk = tower.blocks[0]
    d, heads, d_mlp = blk.attn_out.out_features, blk.n_heads, blk.mlp_out.in_features
    if pixels.ndim == 2:  # packed: [patches, channels·t·p·p]
        seqs, pos = 1, pixels.shape[0]
    else:
        cfg = model.hf_model.config.vision_config
        p = getattr(cfg, "patch_size", None) or (getattr(cfg, "model_args", None) or {}).get("patch_size", 1)
        ph, pw = (p[0], p[-1]) if isinstance(p, (list, tuple)) else (p, p)  # InternViT: [p, p]
        seqs = int(pixels[..., 0, 0, 0].numel())
        pos = (pixels.shape[-2] // ph) * (pixels.shape[-1] // pw) + 1
    leaf = name.rsplit(".", 1)[-1]
    if leaf in NXN_HOOKS:
        return seqs * heads * pos * pos
    if leaf == "hook_post":
        return seqs * pos * d_mlp
    if leaf == "hook_merger_out":
        return seqs * pos * model.cfg.d_model
    return seqs * pos * d  # resid, z, merger input


def _filter(names_filter: Any) -> Callable[[str], bool]:
    # the same forms TransformerLens' get_caching_hooks accepts
    if names_filter is None:  # run_with_cache's default: the vision tower's hooks are opt-in
        return lambda name: not name.startswith("vision.")
    if isinstance(names_filter, str):
        return lambda name: name == names_filter
    if isinstance(names_filter, list):
        return lambda name: name in names_filter
    if callable(names_filter):
        return lambda name: bool(names_filter(name))
    raise ValueError("names_filter must be a string, list of strings, or function")


def estimate(
    model,
    inputs: Any,
    names_filter: Any = None,
    *,
    incl_bwd: bool = False,
    start_at_layer: int | None = None,
    stop_at_layer: int | None = None,
    dtype: torch.dtype | None = None,
) -> CacheEstimate:
    """Bytes `model.run_with_cache(inputs, names_filter=...)` would keep.

    Args:
        model: a HookedVideoLLM.
        inputs: what `run_with_cache` is given (VideoInputs, a dict with input_ids, or tokens).
        names_filter: as for `run_with_cache` (None: every hook).
        incl_bwd: gradients are cached too (twice the bytes).
        start_at_layer, stop_at_layer: the blocks that run (as `forward`).
        dtype: the activations' dtype (the model's by default).

    Returns:
        The `CacheEstimate`.
    """
    ids = inputs if isinstance(inputs, torch.Tensor) else inputs["input_ids"]
    batch, pos = (1, ids.shape[0]) if ids.ndim == 1 else tuple(ids.shape[:2])
    layouts = getattr(inputs, "layouts", None)
    n_vision = max((int(l.is_vision.sum()) for l in layouts), default=0) if layouts else pos
    size = torch.empty((), dtype=dtype or model.cfg.dtype).element_size()
    keep = _filter(names_filter)
    blocks = range(model.cfg.n_layers)[start_at_layer:stop_at_layer]
    total = nxn = count = 0
    largest = ("", 0)
    for name in model.hook_dict:
        if not keep(name):
            continue
        m = _BLOCK.match(name)
        if m and int(m.group(1)) not in blocks:
            continue
        if not m and start_at_layer is not None and name in ("hook_embed", "hook_video_features"):
            continue
        if not m and stop_at_layer is not None and name.startswith("ln_final."):
            continue
        if name.startswith("vision."):
            b = _vision_elements(model, name, inputs) * size
        else:
            b = _elements(name, model.cfg, batch, pos, n_vision) * (4 if name.endswith("hook_scale") else size)
        b *= 2 if incl_bwd else 1
        total += b
        count += 1
        nxn += b if name.endswith(NXN_HOOKS) else 0
        largest = max(largest, (name, b), key=lambda t: t[1])
    return CacheEstimate(total, nxn, count, largest)


def available_bytes(device: torch.device | str) -> int | None:
    """Memory now free on `device` (CUDA: the driver's free memory; CPU: MemAvailable), or None
    when it cannot be read."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def budget_bytes(budget: int | float | str | None, device: torch.device | str) -> int | None:
    """A memory budget in bytes: an int, a string such as "8GB" / "500 MiB", "auto" (half the
    memory now available on `device`) or None (no limit).

    Raises:
        ValueError: an unreadable budget.
    """
    if budget is None:
        return None
    if isinstance(budget, str):
        text = budget.strip().lower().replace(" ", "")
        if text == "auto":
            free = available_bytes(device)
            return None if free is None else free // 2
        m = re.fullmatch(r"([0-9]*\.?[0-9]+)([kmgt]i?b|b)?", text)
        if not m:
            raise ValueError(
                f"memory_budget {budget!r} is not a size: use bytes (an int), '8GB', '500MiB', 'auto' or None"
            )
        return int(float(m.group(1)) * _UNITS[m.group(2) or "b"])
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0:
        raise ValueError(
            f"memory_budget must be a positive number of bytes, a size string, 'auto' or None; got {budget!r}"
        )
    return int(budget)


def check(model, model_args: Iterable, kwargs: dict, memory_budget: Any) -> CacheEstimate | None:
    """Refuse a `run_with_cache` call whose cache would exceed `memory_budget`.

    Args:
        model: the HookedVideoLLM.
        model_args, kwargs: the call's positional arguments and keyword arguments.
        memory_budget: see `budget_bytes`.

    Returns:
        The estimate (None when there is no budget or no inputs to measure).

    Raises:
        CacheMemoryError: the estimate is above the budget; names the filter that avoids N×N tensors.
    """
    args = list(model_args)
    device = kwargs.get("device") or model.cfg.device
    limit = budget_bytes(memory_budget, device)
    if limit is None or not args:
        return None
    est = estimate(
        model,
        args[0],
        kwargs.get("names_filter"),
        incl_bwd=kwargs.get("incl_bwd", False),
        start_at_layer=kwargs.get("start_at_layer"),
        stop_at_layer=kwargs.get("stop_at_layer"),
    )
    if est.total <= limit:
        return None if est.total == 0 else est
    hint = (
        f"keep the N×N attention scores/patterns out of the cache with {NO_NXN_FILTER} "
        f"(that leaves {n_bytes(est.total - est.nxn)})"
        if est.nxn
        else "cache fewer hooks with names_filter (e.g. only the residual stream: names_filter=lambda name: 'resid' in name)"
    )
    raise CacheMemoryError(
        f"run_with_cache would keep {est}, over the memory budget of {n_bytes(limit)}"
        f"{' (half the memory now available)' if memory_budget == 'auto' else ''}. To fix: {hint}; "
        "or raise memory_budget= (bytes, '40GB', or None for no limit)."
    )
