"""HookedVideoLLM: a video LLM's language model as a TransformerLens `HookedRootModule`.

The vision tower and projector are the checkpoint's own HF modules; the language model runs in our
hooked decoder (vlens.components) whose weights *are* the HF tensors (shared, not copied). So:

    model = HookedVideoLLM.from_pretrained("path/to/checkpoint")
    inputs = model.to_inputs("clip.mp4", "What colour is the ball?", n_frames=32)
    logits, cache = model.run_with_cache(inputs)        # TransformerLens ActivationCache
    hf_model(**inputs)                                  # the same tensors through HF

Knockout hooks (vlens.interventions.knockout) given to `run_with_hooks` / `hooks()` are folded into the SDPA mask
of the layers they cover (the fast path) unless something else hooks the attention scores or
pattern of that layer; `model.last_attention_path` says which path ran.

Its parts: loading (vlens.model.loading), inputs (vlens.model.input_builder), the forward and the
TransformerLens surface (here), generation (vlens.model.generation).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, cast

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from vlens.components.attention_chunked import check_chunked
from vlens.components.attention_mask import ATTENTION_PATHS, DEFAULT_CHUNK, AttentionContext, AttentionPath
from vlens.components.block import TransformerBlock
from vlens.components.embed import Embed, Unembed
from vlens.components.kv_cache import KVCache
from vlens.components.norm import RMSNorm
from vlens.components.per_call import BatchRows, EdgeRemoval, Interventions, RowPlan
from vlens.config import HookedVideoLLMConfig
from vlens.families import Family
from vlens.inputs.video_inputs import VideoInputs
from vlens.model import mask_memory
from vlens.model.generation import Generation
from vlens.model.hook_names import check_hook_names
from vlens.model.input_builder import InputBuilder
from vlens.model.loading import Loading
from vlens.model.vision_hooks import VisionHooks, find_tower


class HookedVideoLLM(Loading, InputBuilder, Generation, HookedRootModule):
    """A video LLM's language model as a TransformerLens `HookedRootModule`.

    Build it with `from_pretrained(local_dir)` or `from_hf(hf_model, processor)`. The decoder is
    ours (vlens.components, vlens.components.attention) with TransformerLens hook names; its weights are the
    HF model's tensors. Interventions (knockout hooks, efficient-inference plans) are passed per
    call — `run_with_hooks(inputs, fwd_hooks=ko.LV().hooks(inputs))`, `forward(inputs, plan=...)`
    — checked against the batch before anything runs and gone when the call ends.

    Attributes:
        cfg: the decoder's shape, TransformerLens field names (`HookedVideoLLMConfig`, frozen).
        family: the checkpoint's family adapter (weights, vision path, layouts, positions).
        hf_model: the HF model the weights are shared with (its vision tower and projector run as is).
        processor: the checkpoint's own HF processor.
    """

    def __init__(self, cfg: HookedVideoLLMConfig, family: Family, hf_model: nn.Module, processor: Any = None):
        super().__init__()
        self.cfg = cfg
        self.family = family.bind(processor)  # a family may need the tokenizer for its layout
        self.processor = processor
        # The HF model is kept (not registered: its LM weights are ours already) to run its
        # vision path; its vision modules are registered so .to() moves them.
        object.__setattr__(self, "hf_model", hf_model)
        self.vision = nn.ModuleDict(family.vision_modules(hf_model))
        # TransformerLens hook points inside the tower and projector (vlens.model.vision_hooks),
        # registered under `vision.` and attached to the HF modules only while one has a hook
        self.vision_hooks = VisionHooks(find_tower(self.vision), family.name)
        self.vision.update(self.vision_hooks.modules())
        self.vision_params = nn.ParameterDict(getattr(family, "vision_parameters", lambda m: {})(hf_model))
        self.embed = Embed(cfg)
        self.hook_video_features = HookPoint()  # [batch, n_vision, d_model]
        self.hook_embed = HookPoint()  # [batch, pos, d_model]
        self.rotary = family.rotary(cfg)  # the family's RoPE (M-RoPE sections etc. are its business)
        self.blocks = nn.ModuleList([TransformerBlock(cfg, l) for l in range(cfg.n_layers)])
        self.ln_final = RMSNorm(cfg)
        self.unembed = Unembed(cfg)
        self._share_weights(hf_model)
        self.attention_path: AttentionPath = "auto"
        self.attention_chunk = DEFAULT_CHUNK  # query rows per chunk on the "chunked" path
        self.mask_memory_budget: int | str | None = "auto"  # vlens.model.mask_memory
        self.last_attention_path: str | None = None
        # The interventions of the `hooks()` context being run; empty outside one (see hooks()).
        self._interventions = Interventions()
        self.setup()
        self.eval()  # inference library: dropout off, as TransformerLens tools require

    def _check_device(self, tensors: dict[str, Any]) -> None:
        """A forward never moves tensors silently: inputs must be on the model's device."""
        device = torch.device(self.cfg.device)
        for name, t in tensors.items():
            if isinstance(t, Tensor) and t.device.type != device.type:
                raise ValueError(
                    f"inputs[{name!r}] is on {t.device} but the model is on {device}; move the inputs with "
                    f"inputs.to(model.cfg.device) (VideoInputs from model.to_inputs are already there)"
                )

    def embed_inputs(self, inputs: dict) -> Float[Tensor, "batch pos d_model"]:
        """Token embeddings with the vision features placed at the vision placeholder positions."""
        return self.embed_with_deepstack(inputs)[0]

    def embed_with_deepstack(
        self, inputs: dict, *, generated: bool = False
    ) -> tuple[Float[Tensor, "batch pos d_model"], list[Float[Tensor, "batch pos d_model"]]]:
        """`embed_inputs` plus the family's DeepStack additions (Qwen3-VL): one [batch, pos,
        d_model] tensor per block 0, 1, … that gets it, zero outside the vision positions (an
        empty list for every other family, or without pixel values).

        HF-format families marked `hf_merge` place features with the HF model's own code
        (vlens.model.hf_merge), so images, several media per row and mixed resolutions land exactly
        where HF puts them; the others use their family's vision path. `hook_video_features` sees
        the features at the video and separator positions, [batch, n_vision, d_model] (rows with
        fewer are zero-padded at the end; only real positions are written back). `generated`: the
        ids are tokens a decoding step produced, text even where one is a placeholder id (a
        sampled `<video>` token is embedded as the token, as HF's generate does)."""
        ids = inputs["input_ids"]  # on the model's device (forward checks; never moved silently)
        has_pixels = any(k.startswith("pixel_values") for k in inputs)
        if has_pixels and getattr(self.family, "hf_merge", False):
            from vlens.model.hf_merge import language_model_inputs

            hf_kwargs = {
                k: v
                for k, v in inputs.items()
                if k in getattr(self.family, "hf_inputs", ()) or k in ("input_ids", "attention_mask")
            }
            try:
                with self.vision_hooks.installed():
                    lm_kwargs = language_model_inputs(self.hf_model, hf_kwargs)
            except (ValueError, RuntimeError, IndexError) as e:
                raise ValueError(
                    f"the inputs' vision placeholder tokens and pixel values do not match ({e}); build inputs with "
                    "model.to_inputs or model.inputs_from_hf from tensors the HF model accepts"
                ) from e
            x = lm_kwargs["inputs_embeds"]
            layouts = getattr(inputs, "layouts", None)
            if layouts:
                where = torch.stack([l.is_vision for l in layouts]).to(x.device)
            else:
                where = ids == self.family.video_token_id(self.hf_model.config)
            if bool(where.any()):
                x = self._hook_features(x, where)
            return x, self._hf_deepstack(x, lm_kwargs)
        x = self.embed(ids)
        vision_mask = ids == self.family.video_token_id(self.hf_model.config)
        adds: list[Tensor] = []
        if has_pixels:
            with self.vision_hooks.installed():
                feats, deep = self.family.vision_outputs(self.hf_model, inputs)
            feats = self.hook_video_features(feats.to(x.dtype))
            n_slots, n_feats = int(vision_mask.sum()), feats.shape[0] * feats.shape[1]
            if n_slots != n_feats:
                raise ValueError(
                    f"the inputs have {n_slots} vision placeholder tokens but the vision path produced "
                    f"{n_feats} features; build inputs with model.to_inputs (same processor, same frames)"
                )
            x = x.masked_scatter(vision_mask[..., None], feats)
            adds = [
                torch.zeros_like(x).masked_scatter(vision_mask[..., None], d.to(x.dtype))
                for d in deep[: self.cfg.deepstack_layers]
            ]
        elif vision_mask.any() and not generated:
            raise ValueError("input_ids contain vision placeholders but no pixel values were given")
        return x, adds

    def _hf_deepstack(self, x: Tensor, lm_kwargs: dict) -> list[Tensor]:
        """The DeepStack additions HF's multimodal forward hands its language model (Qwen3-VL:
        `deepstack_visual_embeds`, one [n_visual, d_model] per block, added at `visual_pos_masks`)
        as [batch, pos, d_model] tensors, zero elsewhere; [] for families without them."""
        deep = lm_kwargs.get("deepstack_visual_embeds")
        where = lm_kwargs.get("visual_pos_masks")
        if not deep or where is None:
            return []
        where = where.to(x.device)[..., None]
        return [torch.zeros_like(x).masked_scatter(where, d.to(x)) for d in deep[: self.cfg.deepstack_layers]]

    def _hook_features(self, x: Tensor, where: Tensor) -> Tensor:
        """Run `hook_video_features` on the features at `where` [batch, pos] and put them back."""
        counts = where.sum(1)
        n = int(counts.max())
        slot = torch.arange(n, device=x.device)[None] < counts[:, None]  # [batch, n]: real entries
        feats = x.new_zeros(x.shape[0], n, x.shape[-1])
        feats[slot] = x[where]
        feats = self.hook_video_features(feats)
        return x.masked_scatter(where[..., None], feats[slot])

    def forward(
        self,
        inputs: VideoInputs | dict | Tensor,
        return_type: str | None = "logits",
        *,
        stop_at_layer: int | None = None,
        start_at_layer: int | None = None,
        resid: Float[Tensor, "batch pos d_model"] | None = None,
        logits_to_keep: int = 0,
        kv_cache: KVCache | None = None,
        q_start: int = 0,
        plan: RowPlan | None = None,
        interventions: Interventions | None = None,
        deepstack: bool = True,
        deepstack_adds: dict[int, Tensor] | None = None,
        generated: bool = False,
    ) -> Tensor | None:
        """Logits [batch, pos, d_vocab] (return_type="logits"), the residual stream before block
        `stop_at_layer` (TransformerLens semantics), or None (return_type=None).

        Args:
            inputs: `VideoInputs` from `to_inputs`, a dict of HF kwargs, or token ids [batch, pos].
            start_at_layer: with `resid` (the residual stream entering that block), skip the
                embedding and the earlier blocks.
            logits_to_keep: unembed only the last k positions (as HF's argument of that name).
            kv_cache: a `KVCache`; with `q_start`, run the last positions of a longer sequence
                against the cached keys/values of the first `q_start` (decoding, sweeps).
            plan: an efficient-inference plan (vlens.interventions.efficient): rows that leave the sequence
                and layers that attend per frame. After rows leave, hooks see only the rows
                still computed and the logits cover the kept rows.
            interventions: explicit per-call interventions (the sweep engine); by default those
                of the enclosing `hooks()` / `run_with_hooks` call.
            deepstack: False leaves out the DeepStack additions (Qwen3-VL: vision features added
                after the first blocks), so a study can separate that route from the embedded tokens.
            deepstack_adds: for a forward resumed with `start_at_layer` over rows with vision
                positions, {layer: [batch, pos, d_model]} for every DeepStack layer ≥ start (what
                `blocks.{layer}.hook_deepstack` cached on the full run, these rows).
            generated: the input ids are generated tokens (`generate`'s steps): text, whatever their ids.

        Raises:
            InterventionError: an intervention was not built for this batch (or, on the chunked path,
                a hook on attn_scores/pattern or a renormalise=False scaling).
            MaskMemoryError: the dense attention masks would not fit (vlens.model.mask_memory).
            ValueError: inputs on another device, inconsistent masks or positions.
        """
        inputs = self._as_inputs(inputs)
        active = self._interventions if interventions is None else interventions
        if plan is not None:
            active = active.merged(Interventions.resolve(list(plan.edge_removals()), self.cfg.n_layers, plan))
        self._check_device(inputs)
        if start_at_layer is not None and resid is None:
            raise ValueError("start_at_layer needs resid=, the residual stream entering that block")
        if kv_cache is not None and not isinstance(kv_cache, KVCache):
            raise TypeError(f"kv_cache must be a vlens.components.kv_cache.KVCache, got {type(kv_cache).__name__}")
        if start_at_layer is not None:
            assert resid is not None  # refused above otherwise
            B, N = resid.shape[:2]
        else:
            B, N = inputs["input_ids"].shape
        layouts = getattr(inputs, "layouts", None) if q_start == 0 else None
        # every intervention must belong to this batch: checked before anything runs
        active.check(BatchRows(B, q_start + N, q_start, layouts))
        if self.attention_path == "chunked":  # what that path cannot compute is refused before it runs
            check_chunked(self.blocks, active, self.attention_chunk)
        mask = inputs.get("attention_mask")
        if mask is not None:
            mask = mask.bool()
            if mask.shape[1] != q_start + N:
                raise ValueError(f"attention_mask has {mask.shape[1]} positions, expected {q_start + N}")
            if mask.shape[0] != B:
                raise ValueError(f"attention_mask has {mask.shape[0]} rows but the batch has {B}")
        key_padding = None if mask is None or bool(mask.all()) else mask
        # dense masks that would not fit are refused here, not by an out-of-memory error halfway
        mask_memory.check(self, B, N, q_start + N, active, key_padding is not None)
        if start_at_layer is None:
            x, computed = self.embed_with_deepstack(inputs, generated=generated)
            adds = dict(enumerate(computed))
            x = self.hook_embed(x)
        else:
            assert resid is not None  # start_at_layer needs resid (refused above otherwise)
            x = resid
            adds = dict(deepstack_adds or {})
            self._check_deepstack_resume(inputs, start_at_layer, deepstack, adds)
        if not deepstack:
            adds = {}
        cos, sin = self.rotary(self.position_ids(inputs, q_start=q_start, n=N, batch=B), x.dtype)
        ctx = AttentionContext(
            n_pos=q_start + N,
            q_start=q_start,
            q_index=torch.arange(q_start, q_start + N, device=x.device),
            key_padding=key_padding,
            interventions=active,
            path=self.attention_path,
            kv_cache=kv_cache,
            chunk=self.attention_chunk,
        )
        plan = active.plan if q_start == 0 else None  # a plan shapes the prompt's rows, not decoding
        start = start_at_layer or 0
        stop = self.cfg.n_layers if stop_at_layer is None else stop_at_layer
        for layer in range(start, stop):
            if plan is not None and layer == plan.exit_layer:
                x, cos, sin, adds = self._leave(plan, ctx, x, cos, sin, adds)
            block = cast(TransformerBlock, self.blocks[layer])  # __init__ fills self.blocks with these
            device = block.ln1.w.device
            if x.device != device:  # a model split across devices (device_map): blocks run where their weights are
                x, cos, sin = x.to(device), cos.to(device), sin.to(device)
            add = adds.get(layer)
            x = block(x, (cos, sin), ctx, None if add is None else add.to(device))
        if plan is not None and plan.exit_layer == self.cfg.n_layers and stop == self.cfg.n_layers:
            x, cos, sin, adds = self._leave(plan, ctx, x, cos, sin, adds)
        self.last_attention_path = "+".join(sorted(ctx.paths_taken)) or None
        if stop_at_layer is not None:
            return x
        if logits_to_keep:
            x = x[:, -logits_to_keep:]
        x = self.ln_final(x.to(self.ln_final.w.device))
        if return_type is None:
            return None
        if return_type != "logits":
            raise ValueError(f"return_type must be 'logits' or None, got {return_type!r}")
        return self.unembed(x.to(self.unembed.lm_head.weight.device))

    @staticmethod
    def _leave(plan: RowPlan, ctx: AttentionContext, x: Tensor, cos: Tensor, sin: Tensor, adds: dict[int, Tensor]):
        """Rows the plan drops leave the sequence: the residual rows, their rotary tables and
        any DeepStack additions still to come."""
        index = plan.kept_rows(x.device)[0].nonzero().flatten()  # every row keeps the same (checked)
        ctx.drop_rows(index)
        return x[:, index], cos[:, index], sin[:, index], {l: a[:, index.to(a.device)] for l, a in adds.items()}

    def _check_deepstack_resume(self, inputs: dict, start_at_layer: int, deepstack: bool, adds: dict) -> None:
        """A forward resumed at `start_at_layer` has no vision features: it needs `deepstack_adds`
        for every DeepStack block from the start on where its rows hold vision positions."""
        start = start_at_layer % max(self.cfg.n_layers, 1)
        missing = [l for l in range(start, self.cfg.deepstack_layers) if l not in adds]
        if not deepstack or not missing:
            return
        if bool((inputs["input_ids"] == self.family.video_token_id(self.hf_model.config)).any()):
            raise ValueError(
                f"start_at_layer={start_at_layer} on rows with vision positions: {self.family.name} adds DeepStack "
                f"features after blocks {missing}, which a resumed forward cannot recompute; pass "
                "deepstack_adds={layer: cache[f'blocks.{layer}.hook_deepstack'] of the full run (these rows)}, "
                "or deepstack=False to leave them out"
            )

    def position_ids(
        self, inputs: VideoInputs | dict, *, q_start: int = 0, n: int | None = None, batch: int | None = None
    ) -> Int[Tensor, "*axes batch pos"]:
        """Rotary positions of the inputs' positions q_start..q_start+n: [batch, pos], or
        [3, batch, pos] for M-RoPE families (Qwen2.5-VL: from the video grid and frame times).
        An explicit `inputs["position_ids"]` (for those n positions, or for all q_start+n) wins."""
        inputs = self._as_inputs(inputs)
        ids = inputs["input_ids"]
        batch = ids.shape[0] if batch is None else batch
        n = ids.shape[1] if n is None else n
        given = inputs.get("position_ids")
        if given is not None:
            given = given.to(self.cfg.device)
            given = given[None] if given.ndim == 1 else given
            if given.shape[-1] == q_start + n and q_start:
                given = given[..., q_start:]
            if given.shape[-1] != n:
                raise ValueError(f"position_ids cover {given.shape[-1]} positions, expected {n} (or {q_start + n})")
            return given.expand(*given.shape[:-2], batch, n) if given.shape[-2] != batch else given
        return self.family.position_ids(
            self.hf_model, inputs, batch=batch, n=n, q_start=q_start, device=self.cfg.device
        )

    def run_with_cache(
        self,
        *model_args,
        return_cache_object: bool = True,
        remove_batch_dim: bool = False,
        memory_budget: int | str | None = "auto",
        vision: bool = False,
        **kwargs,
    ):
        """TransformerLens' run_with_cache, returning an `ActivationCache` (its methods —
        decompose_resid, accumulated_resid, stack_head_results, ... — work on this model).
        Caching `hook_attn_scores`/`hook_pattern` takes the explicit attention path; a
        `names_filter` without them keeps the fast one.

        `memory_budget` (bytes, a size such as "40GB", "auto" = half the memory now available on
        the cache's device, or None for no limit): the call first estimates what the cache would
        keep (`vlens.model.cache_memory.estimate`) and raises `CacheMemoryError` above the budget,
        naming the `names_filter` that leaves out the N×N attention tensors.

        `vision`: the vision tower's hook points (`vision.…`, vlens.model.vision_hooks) pass a
        filter function (or no filter) only with `vision=True`; a list of names caches the
        vision names it lists. So existing filters (`lambda n: "resid" in n`) keep their meaning."""
        from vlens.model import cache_memory
        from vlens.model.activation_cache import (
            VideoActivationCache,  # TL's cache; decompose_resid also lists DeepStack
        )

        names = kwargs.get("names_filter")
        if isinstance(names, (str, list, tuple)):  # explicit names are cached as named, vision ones too
            listed = [names] if isinstance(names, str) else list(names)
            check_hook_names(listed, self.hook_dict, "names_filter")
            self.vision_hooks.check_names(listed, self.hook_dict)
        elif not vision:
            # the tower's hook points are opt-in (caching their pattern switches the tower to the
            # hooked eager attention): a filter function or None sees only the other hooks
            keep = names
            kwargs["names_filter"] = lambda name: not name.startswith("vision.") and (keep is None or keep(name))
        cache_memory.check(self, model_args, kwargs, memory_budget)

        out, cache = super().run_with_cache(*model_args, remove_batch_dim=remove_batch_dim, **kwargs)
        if return_cache_object:
            cache = VideoActivationCache(cache, self, has_batch_dim=not remove_batch_dim)
        return out, cache

    # hooks: interventions are resolved per call ------------------------------------------------------
    @contextlib.contextmanager
    def hooks(
        self,
        fwd_hooks=(),
        bwd_hooks=(),
        reset_hooks_end: bool = True,
        clear_contexts: bool = False,
        *,
        vision: bool = False,
    ):
        """TransformerLens' `hooks()` context, with interventions separated out.

        A hook named by a filter function reaches the vision tower's hook points (`vision.…`)
        only with `vision=True`, as in `run_with_cache`: `lambda n: n.endswith("hook_pattern")`
        keeps meaning the language model's patterns (and the tower keeps its fast attention).
        Hooks named explicitly (`"vision.blocks.0.attn.hook_pattern"`) always apply.

        Entries of `fwd_hooks` that are attention interventions (knockout hooks: objects with
        `resolve_layers`/`blocked`, see vlens.components.per_call) are resolved against the model's
        depth *before* anything is installed and are active only inside this context, whatever
        ends it (an exception, KeyboardInterrupt, a closed generator); the others are plain
        TransformerLens hooks. Interventions always end with the context (`reset_hooks_end`
        concerns the plain hooks only).

        Raises:
            KnockoutError / InterventionError: a layer out of range (nothing is installed).
        """
        fwd_hooks, bwd_hooks = list(fwd_hooks), list(bwd_hooks)
        check_hook_names([n for n, _ in fwd_hooks], self.hook_dict, "fwd_hooks")
        check_hook_names([n for n, _ in bwd_hooks], self.hook_dict, "bwd_hooks")
        self.vision_hooks.check_names([n for n, _ in fwd_hooks + bwd_hooks], self.hook_dict)
        if not vision:
            fwd_hooks = [(_language_only(n), h) for n, h in fwd_hooks]
            bwd_hooks = [(_language_only(n), h) for n, h in bwd_hooks]
        plain = [(n, h) for n, h in fwd_hooks if not isinstance(h, EdgeRemoval)]
        edits = [h for _, h in fwd_hooks if isinstance(h, EdgeRemoval)]
        resolved = Interventions.resolve(
            edits, self.cfg.n_layers, n_heads=self.cfg.n_heads, n_kv_heads=self.cfg.n_kv_heads
        )
        outer = self._interventions
        self._interventions = outer.merged(resolved)
        try:
            with super().hooks(plain, bwd_hooks, reset_hooks_end, clear_contexts) as model:
                yield model
        finally:
            self._interventions = outer

    @contextlib.contextmanager
    def attention_path_as(self, path: AttentionPath, *, chunk: int | None = None) -> Iterator[None]:
        """Force the attention path: "explicit" (N×N scores and pattern, every hook point live),
        "fast" (SDPA; hooks on attn_scores/pattern are then not called), "flex" (FlexAttention
        with a block mask: compiled on CUDA, torch's unfused reference elsewhere), "chunked"
        (SDPA per block of `chunk` query rows, default 1024, each block's mask built on the fly:
        no [pos, pos] tensor, for long videos; hooks on attn_scores/pattern are refused,
        vlens.components.attention_chunked) or "auto" (explicit when something hooks the
        pattern; else flex for knockouts on CUDA; else SDPA).

        Raises:
            ArgumentError: an unknown path, or `chunk` not an int ≥ 1 (or given without "chunked")."""
        from vlens.arguments import ArgumentError, as_positive_int

        if path not in ATTENTION_PATHS:
            raise ArgumentError(
                f"path={path!r}: the attention path must be one of {', '.join(map(repr, ATTENTION_PATHS))}"
            )
        if chunk is not None and path != "chunked":
            raise ArgumentError(f"chunk={chunk!r} is the query rows per chunk of the 'chunked' path; got path={path!r}")
        size = self.attention_chunk if chunk is None else as_positive_int(chunk, "chunk")
        old = self.attention_path, self.attention_chunk
        self.attention_path, self.attention_chunk = path, size
        try:
            yield
        finally:
            self.attention_path, self.attention_chunk = old

    def __repr__(self) -> str:
        c = self.cfg
        return (
            f"HookedVideoLLM({c.family}: {c.n_layers} layers, d_model={c.d_model}, "
            f"heads={c.n_heads}/{c.n_key_value_heads} kv, d_vocab={c.d_vocab}, {c.dtype}, {c.device})"
        )


def _language_only(name):
    """A hook's name filter function restricted to the language model's hook points (explicit
    names pass unchanged): the vision tower's are opt-in (`vision=True`)."""
    if not callable(name):
        return name
    return lambda n: not n.startswith("vision.") and name(n)
