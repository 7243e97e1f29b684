"""TransformerLens hook points inside the HF vision tower and projector, installed only when used.

The vision tower and projector stay the checkpoint's own HF modules (their numbers are HF's, by
construction); this module gives them TransformerLens hook points without reimplementing them:

    vision.blocks.{l}.hook_resid_pre        [seqs, pos, d_vision]   the tower block's input
    vision.blocks.{l}.attn.hook_attn_scores [seqs, head, pos, pos]  QKᵀ·scale + HF's mask (hooked path)
    vision.blocks.{l}.attn.hook_pattern     [seqs, head, pos, pos]  softmax of the scores (hooked path)
    vision.blocks.{l}.attn.hook_z           [seqs, pos, head, d_head] the input of the output projection
    vision.blocks.{l}.mlp.hook_post         [seqs, pos, d_mlp]      the input of the MLP's output projection
    vision.blocks.{l}.hook_resid_post       [seqs, pos, d_vision]   the block's output
    vision.hook_merger_in / hook_merger_out                         the projector / merger's input and output
    vision.deepstack.{i}.hook_merger_in / _out                      Qwen3-VL's DeepStack mergers

`seqs` is how the tower batches: one row per frame for per-frame towers (SigLIP, CLIP, InternViT,
SmolVLM's, PerceptionLM's), one packed row of every frame group for the Qwen/GLM towers (which
attend inside each group via `cu_seqlens`); those towers' tensors are 2-D in HF and get a leading
1 here. Qwen2.5-VL's blocks run in window order (HF permutes the patches before block 0 and undoes
it after the merger), so its `vision.blocks.*` positions are in that order.

Nothing is installed while no vision hook point has a hook: the clean forward is HF's untouched
(benchmarks/vision_hooks.py measures it). When one has, PyTorch forward (pre-)hooks on the HF
modules route the tensors through the hook points for that forward only. The attention scores and
pattern exist only where HF computes them on the eager path, so a hook on either switches the
tower's attention, for that forward, to `vlens_vision_*` (registered in transformers'
`AttentionInterface`): HF's eager math — QKᵀ·scale + mask, float32 softmax, ·V — with the two hook
points in it. Packed (`cu_seqlens`) towers run it as one call over all their tokens with a
block-diagonal mask, so the pattern is one matrix per layer, zero between groups and windows.
"""

from __future__ import annotations

import contextlib
import inspect
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

ATTENTION_CHILDREN = ("self_attn", "attn", "attention")
OUT_PROJECTIONS = ("out_proj", "proj", "o_proj", "projection_layer", "dense")
MERGERS = ("multi_modal_projector", "merger", "connector", "projector")
# transformers reads "flash" in an attention implementation's name as "pass the packed sequence
# with cu_seqlens in one call" (is_flash_attention_requested); the packed towers then give our
# function every token at once instead of one call per group.
EAGER_NAME = "vlens_vision_eager"
PACKED_NAME = "vlens_vision_packed_flash_varlen"


class VisionHookError(KeyError):
    """A vision hook name this family's tower does not have (the message lists those it has)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass
class TowerCall:
    """What the hooks of one attention call know about its tokens.

    Attributes:
        group: `[pos]` the attention group (frame / temporal patch group, or window in Qwen2.5-VL's
            window layers) of every packed token, or None for per-frame towers (one row = one frame).
        window: `[pos]` Qwen2.5-VL's window of every token (the tower's own window order), else None.
        layer: the tower layer.
    """

    group: Tensor | None
    window: Tensor | None
    layer: int


class VisionAttentionHooks(nn.Module):
    """`vision.blocks.{l}.attn.*` hook points."""

    def __init__(self, with_pattern: bool):
        super().__init__()
        if with_pattern:  # only where HF's attention runs through the AttentionInterface
            self.hook_attn_scores = HookPoint()  # [seqs, head, q, k]
            self.hook_pattern = HookPoint()  # [seqs, head, q, k]
        self.hook_z = HookPoint()  # [seqs, pos, head, d_head]


class VisionMLPHooks(nn.Module):
    def __init__(self):
        super().__init__()
        self.hook_post = HookPoint()  # [seqs, pos, d_mlp]


class VisionBlockHooks(nn.Module):
    """`vision.blocks.{l}.*` hook points of one tower block."""

    def __init__(self, with_pattern: bool):
        super().__init__()
        self.hook_resid_pre = HookPoint()
        self.attn = VisionAttentionHooks(with_pattern)
        self.mlp = VisionMLPHooks()
        self.hook_resid_post = HookPoint()


class MergerHooks(nn.Module):
    def __init__(self):
        super().__init__()
        self.hook_merger_in = HookPoint()
        self.hook_merger_out = HookPoint()


@dataclass(frozen=True)
class TowerBlock:
    """The HF modules of one tower block the hooks attach to."""

    block: nn.Module
    attn: nn.Module
    attn_out: nn.Linear
    mlp_out: nn.Linear
    n_heads: int
    packed: bool  # the attention takes cu_seqlens (Qwen/GLM towers)
    hf_attention: bool  # runs through transformers' AttentionInterface (a pattern can be hooked)


@dataclass(frozen=True)
class Tower:
    """A vision path's hookable HF modules, found by the rules below (tested for every family)."""

    root: nn.Module  # the module holding the block list
    blocks: tuple[TowerBlock, ...]
    merger: nn.Module | None
    deepstack: tuple[nn.Module, ...]
    windows: bool  # Qwen2.5-VL: window attention (window_size, fullatt_block_indexes)

    @property
    def attn_configs(self) -> list:
        seen: dict[int, Any] = {}
        for b in self.blocks:
            if b.hf_attention:
                seen.setdefault(id(b.attn.config), b.attn.config)
        return list(seen.values())


def _child(module: nn.Module, names: tuple[str, ...]) -> nn.Module | None:
    for n in names:
        if isinstance(getattr(module, n, None), nn.Module):
            return getattr(module, n)
    return None


def _n_heads(attn: nn.Module) -> int:
    for owner in (attn, getattr(attn, "config", None)):
        for name in ("num_heads", "num_attention_heads"):
            v = getattr(owner, name, None)
            if isinstance(v, int):
                return v
    raise ValueError(f"cannot find the head count of {type(attn).__name__}")


def find_tower(vision: nn.ModuleDict) -> Tower | None:
    """The hookable modules of a vision path: the first `ModuleList` whose items have an attention
    (`self_attn`/`attn`/`attention`, with an output projection `out_proj`/`proj`/...) and an
    `mlp`; the MLP's last `Linear` is its output projection; the projector is the first of
    `multi_modal_projector`/`merger`/`connector`/`projector` found; DeepStack mergers are
    `deepstack_merger_list`. None when the path has no such list."""
    for key, top in vision.items():
        for _, lst in top.named_modules():
            if not isinstance(lst, nn.ModuleList) or not len(lst):
                continue
            blocks = []
            for blk in lst:
                attn = _child(blk, ATTENTION_CHILDREN)
                mlp: nn.Module | None = getattr(blk, "mlp", None)
                out = _child(attn, OUT_PROJECTIONS) if attn is not None else None
                inside = list(mlp.modules()) if mlp is not None else []
                linears = [m for m in inside if isinstance(m, nn.Linear)]
                assert out is None or isinstance(out, nn.Linear), f"{type(out).__name__} is not a Linear"
                if attn is None or out is None or not linears:
                    break
                params = inspect.signature(type(attn).forward).parameters
                hf_attention = type(attn).__module__.startswith("transformers.") and hasattr(attn, "config")
                blocks.append(
                    TowerBlock(blk, attn, out, linears[-1], _n_heads(attn), "cu_seqlens" in params, hf_attention)
                )
            if len(blocks) != len(lst):
                continue
            root = next(m for m in top.modules() if any(c is lst for c in m.children()))
            merger = None
            for name in MERGERS:
                merger = vision[name] if name in vision else getattr(root, name, None) or getattr(top, name, None)
                if isinstance(merger, nn.Module):
                    break
            deep = getattr(root, "deepstack_merger_list", None)
            cfg = getattr(root, "config", None)
            windows = hasattr(cfg, "window_size") and hasattr(cfg, "fullatt_block_indexes")
            return Tower(root, tuple(blocks), merger, tuple(deep) if deep is not None else (), windows)
        del key
    return None


# the hooked attention ------------------------------------------------------------------------------------
_ACTIVE: weakref.WeakKeyDictionary[nn.Module, tuple[VisionAttentionHooks, int, VisionHooks]] = (
    weakref.WeakKeyDictionary()
)


def _hooked_attention(
    module: nn.Module,
    query: Float[Tensor, "seqs head q d_head"],
    key: Float[Tensor, "seqs kv_head k d_head"],
    value: Float[Tensor, "seqs kv_head k d_head"],
    attention_mask: Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    cu_seq_lens_q: Tensor | None = None,
    **kwargs,
) -> tuple[Tensor, Tensor]:
    """HF's eager attention with `hook_attn_scores` and `hook_pattern` (and a block-diagonal mask
    from `cu_seq_lens_q` for packed towers). Registered in transformers' AttentionInterface."""
    # another module sharing the switched config (Video-LLaVA's image tower) runs the same math unhooked
    hooks, layer, owner = _ACTIVE.get(module, (None, -1, None))
    groups = getattr(module, "num_key_value_groups", 1)
    if groups > 1:
        key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale
    group = None
    if cu_seq_lens_q is not None:
        n = query.shape[-2]
        group = torch.repeat_interleave(
            torch.arange(len(cu_seq_lens_q) - 1, device=query.device), (cu_seq_lens_q[1:] - cu_seq_lens_q[:-1]).long()
        )
        if group.numel() != n:
            raise ValueError(f"cu_seqlens cover {group.numel()} tokens, the attention has {n}")
        scores = scores.masked_fill(group[:, None] != group[None, :], float("-inf"))
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask[..., : key.shape[-2]], float("-inf"))
        else:
            scores = scores + attention_mask[..., : key.shape[-2]]
    if hooks is not None and owner is not None:
        call = TowerCall(group, owner.window_ids, layer)
        # read by vision knockouts (vlens.interventions.vision_knockout); the ignores: torch's stub types
        # Module.__setattr__ for tensors and modules only, any value works at runtime
        hooks.hook_attn_scores.tower = call  # pyright: ignore[reportArgumentType]
        hooks.hook_pattern.tower = call  # pyright: ignore[reportArgumentType]
        scores = hooks.hook_attn_scores(scores)
    pattern = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    if hooks is not None and owner is not None:
        pattern = hooks.hook_pattern(pattern)
    pattern = nn.functional.dropout(pattern, p=dropout, training=module.training)
    out = torch.matmul(pattern, value).transpose(1, 2).contiguous()
    return out, pattern


def _register_attention() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(EAGER_NAME, _hooked_attention)
    AttentionInterface.register(PACKED_NAME, _hooked_attention)


# the hook points and their installation --------------------------------------------------------------------
def _as_3d(t: Tensor) -> Tensor:
    return t[None] if t.ndim == 2 else t


def _through(hook: HookPoint, t: Tensor) -> Tensor:
    """Run a hook point on HF's tensor, packed 2-D tensors seen with a leading 1."""
    out = hook(_as_3d(t))
    return out[0] if t.ndim == 2 else out


class VisionHooks:
    """The tower's hook points (registered by the model under `vision.`) and the context that
    attaches them to the HF modules for one forward."""

    def __init__(self, tower: Tower | None, family: str):
        self.tower = tower
        self.family = family
        self.blocks = nn.ModuleList([VisionBlockHooks(b.hf_attention) for b in (tower.blocks if tower else ())])
        self.merger = MergerHooks() if tower is not None and tower.merger is not None else None
        self.deepstack = nn.ModuleList([MergerHooks() for _ in (tower.deepstack if tower else ())])
        self.window_ids: Tensor | None = None
        if tower is not None and any(b.hf_attention for b in tower.blocks):
            _register_attention()

    def modules(self) -> dict[str, nn.Module]:
        """What the model registers in its `vision` ModuleDict (so names read `vision.blocks...`)."""
        out: dict[str, nn.Module] = {}
        if len(self.blocks):
            out["blocks"] = self.blocks
        if self.merger is not None:
            out["hook_merger_in"] = self.merger.hook_merger_in
            out["hook_merger_out"] = self.merger.hook_merger_out
        if len(self.deepstack):
            out["deepstack"] = self.deepstack
        return out

    def hook_names(self) -> list[str]:
        """Every vision hook name of this family."""
        names = []
        for l, b in enumerate(self.blocks):
            for name, m in b.named_modules():
                if isinstance(m, HookPoint):
                    names.append(f"vision.blocks.{l}.{name}")
        if self.merger is not None:
            names += ["vision.hook_merger_in", "vision.hook_merger_out"]
        for i in range(len(self.deepstack)):
            names += [f"vision.deepstack.{i}.hook_merger_in", f"vision.deepstack.{i}.hook_merger_out"]
        return names

    def check_names(self, names: list, hook_dict: dict) -> None:
        """Every `vision.` hook name given exists in this family, or a `VisionHookError` listing
        those it has (layer indices folded into `{l}`), raised before anything is installed."""
        import re

        for name in names:
            if not isinstance(name, str) or not name.startswith("vision.") or name in hook_dict:
                continue
            parts = name.split(".")
            if (
                self.tower is not None
                and len(parts) == 5
                and parts[1] == "blocks"
                and parts[2].isdigit()
                and int(parts[2]) < len(self.blocks)
                and parts[4] in ("hook_pattern", "hook_attn_scores")
            ):
                b = self.tower.blocks[int(parts[2])]
                raise VisionHookError(
                    f"hook name {name!r}: the {self.family} tower's attention ({type(b.attn).__module__}."
                    f"{type(b.attn).__name__}) does not run through transformers' AttentionInterface, so its "
                    "scores and pattern are never materialised; hook_z, hook_resid_pre/post and mlp.hook_post "
                    "are available"
                )
            have = sorted({re.sub(r"blocks\.\d+\.", "blocks.{l}.", n) for n in self.hook_names()})
            depth = len(self.blocks)
            what = f"{depth} tower blocks, l = 0..{depth - 1}" if depth else "no hookable tower"
            raise VisionHookError(
                f"hook name {name!r}: the {self.family} vision path has no such hook point ({what}); "
                f"it has {have or 'none'}"
            )

    def pattern_layers(self) -> list[int]:
        """Tower layers whose attention scores/pattern can be hooked (HF AttentionInterface attention)."""
        return [l for l, b in enumerate(self.tower.blocks) if b.hf_attention] if self.tower else []

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Attach the hook points to the HF modules for one forward — only those with hooks; a
        nullcontext when no vision hook point has a hook (the clean forward is HF's own)."""
        if self.tower is None or not self._any_hooked():
            yield
            return
        handles: list = []
        saved: list[tuple[Any, str | None]] = []
        tower = self.tower
        try:
            need_attention = False
            for l, (b, h) in enumerate(zip(tower.blocks, self.blocks)):
                assert isinstance(h, VisionBlockHooks)  # __init__ fills self.blocks with these only
                if _has_hooks(h.hook_resid_pre):
                    handles.append(
                        b.block.register_forward_pre_hook(_pre_hook(h.hook_resid_pre), with_kwargs=True, prepend=True)
                    )
                if _has_hooks(h.hook_resid_post):
                    handles.append(b.block.register_forward_hook(_post_hook(h.hook_resid_post), prepend=True))
                if _has_hooks(h.attn.hook_z):
                    handles.append(
                        b.attn_out.register_forward_pre_hook(_z_hook(h.attn.hook_z, b.n_heads), prepend=True)
                    )
                if _has_hooks(h.mlp.hook_post):
                    handles.append(
                        b.mlp_out.register_forward_pre_hook(_pre_hook(h.mlp.hook_post), with_kwargs=True, prepend=True)
                    )
                if b.hf_attention and (_has_hooks(h.attn.hook_attn_scores) or _has_hooks(h.attn.hook_pattern)):
                    _ACTIVE[b.attn] = (h.attn, l, self)
                    need_attention = True
            if need_attention:
                for cfg in tower.attn_configs:
                    saved.append((cfg, cfg._attn_implementation))
                    packed = any(b.packed and b.attn.config is cfg for b in tower.blocks)
                    cfg._attn_implementation = PACKED_NAME if packed else EAGER_NAME
                if tower.windows:
                    handles.append(tower.root.register_forward_pre_hook(self._windows_hook, with_kwargs=True))
            for module, hooks in [(tower.merger, self.merger), *zip(tower.deepstack, self.deepstack)]:
                if module is None or hooks is None:
                    continue
                if _has_hooks(hooks.hook_merger_in):
                    handles.append(
                        module.register_forward_pre_hook(
                            _pre_hook(hooks.hook_merger_in), with_kwargs=True, prepend=True
                        )
                    )
                if _has_hooks(hooks.hook_merger_out):
                    handles.append(module.register_forward_hook(_post_hook(hooks.hook_merger_out), prepend=True))
            yield
        finally:
            for h in handles:
                h.remove()
            for cfg, impl in saved:
                cfg._attn_implementation = impl
            for b in tower.blocks:
                _ACTIVE.pop(b.attn, None)
            self.window_ids = None

    def _windows_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        """Qwen2.5-VL: every token's window, in the tower's window order (HF's own window index)."""
        from transformers import PretrainedConfig
        from transformers.vision_utils import get_vision_window_index

        grid = kwargs.get("grid_thw", args[1] if len(args) > 1 else None)
        assert grid is not None, "Qwen2.5-VL's tower forward always takes grid_thw"
        cfg = module.config
        assert isinstance(cfg, PretrainedConfig)  # the tower root is an HF PreTrainedModel
        _, cu = get_vision_window_index(grid, cfg.spatial_merge_size, cfg.window_size, cfg.patch_size)
        cu = torch.unique_consecutive(torch.as_tensor(cu))
        self.window_ids = torch.repeat_interleave(torch.arange(len(cu) - 1), (cu[1:] - cu[:-1]).long())

    def _any_hooked(self) -> bool:
        points = [m for m in self.blocks.modules() if isinstance(m, HookPoint)]
        points += [m for m in self.deepstack.modules() if isinstance(m, HookPoint)]
        if self.merger is not None:
            points += [self.merger.hook_merger_in, self.merger.hook_merger_out]
        return any(_has_hooks(p) for p in points)


def _has_hooks(point: HookPoint) -> bool:
    return bool(point._forward_hooks or point._backward_hooks or point._forward_pre_hooks)


def _pre_hook(point: HookPoint):
    """A forward pre-hook running the module's first input (positional or `hidden_states=`) through `point`."""

    def hook(module, args, kwargs):
        if args:
            return (_through(point, args[0]), *args[1:]), kwargs
        key = next(k for k, v in kwargs.items() if isinstance(v, Tensor))
        return args, {**kwargs, key: _through(point, kwargs[key])}

    return hook


def _post_hook(point: HookPoint):
    """A forward hook running the module's output (a tensor, the first of a tuple, or an HF
    ModelOutput's first field) through `point`."""

    def hook(module, args, output):
        if isinstance(output, Tensor):
            return _through(point, output)
        if isinstance(output, tuple):
            return (_through(point, output[0]), *output[1:])
        first = next(iter(output.keys()))
        output[first] = _through(point, output[first])
        return output

    return hook


def _z_hook(point: HookPoint, n_heads: int):
    """The output projection's input split into heads, [seqs, pos, head, d_head]."""

    def hook(module, args):
        x = args[0]
        z = _as_3d(x)
        z = point(z.reshape(*z.shape[:-1], n_heads, -1)).reshape(z.shape)
        return (z[0] if x.ndim == 2 else z, *args[1:])

    return hook
