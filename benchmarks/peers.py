"""Head to head with the peers: the same model, the same inputs, the same work, in one process,
interleaved (A B C A B C …), median of repeats.

    python benchmarks/peers.py [--shapes tiny 0.5B] [--frames 8 16] [--reps 5] [--tasks cache knockout study patching]
    python benchmarks/peers.py --memory [...]      # peak memory of each contender, each in its own process

Contenders (a peer that cannot run a piece gets a row saying why, never a silently dropped row):

- **vlens**: `run_with_cache`, the fused knockout path, the sweep engine (`run_sweep`), `patch_sweep`.
- **HF**: the checkpoint's own model with SDPA (`output_hidden_states=True` for the cache) and, for
  knockouts, HF eager attention with the knockout mask added through `transformers.AttentionInterface`
  — what map-the-flow runs: eager attention, batch 1, the whole forward recomputed per configuration.
- **nnsight** (`pip install nnsight`, the `bench` extra): `.trace` saving every decoder layer's output;
  knockouts by replacing each attention module's `attention_mask` input; patching as a loop of traces.
- **TransformerLens' TransformerBridge** (TL 4, on the same HF weights): `run_with_cache`, a pattern
  hook for knockouts, a `run_with_hooks` loop for patching. TL's `patching` module calls
  `run_with_hooks(tokens)` with no other inputs, so it cannot patch a video prompt: the loop does
  what it does, with the pixel values passed.

Ratios are to HF SDPA's clean forward of the same inputs; `|Δ|` is each peer's max absolute
difference from vlens (final-position logits; for the cache also every layer's output).
The work per task: **cache** every layer's `resid_post`; **knockout** LV-K in all layers; **study**
the seed study's configurations (LV-K from each layer, LV/VT/VS/all in all layers, each in every
4-layer window: 27 on 8 layers, 91 on 24) on `--study-samples` samples; **patching** `resid_pre`
over layers × position groups (frames, video, question, final) from a frame-reversed clip.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import SHAPES, PeakRSS, checkpoint, clip, sync, timeit_interleaved
from sweep import study_configs

from vlens import HookedVideoLLM
from vlens import knockout as ko
from vlens.inputs.prompts import letter_token_ids, mc_question
from vlens.interventions.patching import corrupt, patch_sweep, position_groups
from vlens.interventions.sweep import run_sweep
from vlens.organism import checkpoint_dir


def model_path(shape: str) -> Path:
    """The random checkpoint of a benchmark shape, or the trained organism (8 layers: 27 study configurations)."""
    return checkpoint_dir() if shape == "organism" else checkpoint(shape)


TASKS = ("cache", "knockout", "study", "patching")
QUESTION = mc_question("Which way does the object move?", ["left", "right", "up", "down"])


# --- HF eager + AttentionInterface: the knockout reference (map-the-flow's way of running) ---------

_BLOCKED: dict[int, torch.Tensor] = {}


def _register_hf_knockout() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

    def eager(module, query, key, value, attention_mask, **kwargs):
        # the benchmark's model is LLaVA-OneVision, whose language model is Qwen2
        from transformers.models.qwen2.modeling_qwen2 import eager_attention_forward

        blocked = _BLOCKED.get(module.layer_idx)
        if blocked is not None:
            attention_mask = attention_mask.masked_fill(
                blocked[:, None, -query.shape[2] :, : key.shape[2]], float("-inf")
            )
        return eager_attention_forward(module, query, key, value, attention_mask, **kwargs)

    AttentionInterface.register("peers_knockout_eager", eager)
    ALL_MASK_ATTENTION_FUNCTIONS.register("peers_knockout_eager", eager_mask)


def _lm_configs(hf) -> list:
    lm = hf.model.language_model
    return list({id(c): c for c in [lm.config, *(layer.self_attn.config for layer in lm.layers)]}.values())


def hf_eager_knockout(hf, inputs, blocked_by_layer: dict[int, torch.Tensor]) -> torch.Tensor:
    """HF's forward in eager attention with `blocked_by_layer` ([batch, q, k] bool) removed."""
    configs = _lm_configs(hf)
    old = [(c, c._attn_implementation) for c in configs]
    _BLOCKED.clear()
    _BLOCKED.update(blocked_by_layer)
    for c in configs:
        c._attn_implementation = "peers_knockout_eager"
    try:
        return hf(**inputs, logits_to_keep=1).logits[:, -1]
    finally:
        for c, impl in old:
            c._attn_implementation = impl
        _BLOCKED.clear()


def blocked_by_layer(spec, inputs, layers, n_layers: int) -> dict[int, torch.Tensor]:
    hook = spec.hooks(inputs, layers=layers)[0][1]
    full = hook.blocked_full(inputs.seq_len, "cpu")
    assert full is not None, f"{spec} removes no edge"
    return {int(layer): torch.as_tensor(full) for layer in hook.resolve_layers(n_layers)}


# --- nnsight ---------------------------------------------------------------------------------------


def nnsight_model(hf):
    try:
        from nnsight import NNsight

        return NNsight(hf), None
    except Exception as e:  # a peer, not a dependency: report why it is missing
        return None, f"{type(e).__name__}: {str(e).splitlines()[0][:90]}"


def nnsight_cache(nn, inputs, n_layers: int):
    import nnsight

    with nn.trace(**inputs):
        outs = nnsight.save([])
        for i in range(n_layers):
            outs.append(nn.model.language_model.layers[i].output)
        logits = nn.output.logits.save()
    return outs, logits


def nnsight_knockout(nn, inputs, additive: torch.Tensor, n_layers: int):
    """Every attention module's `attention_mask` input replaced by the knockout mask (SDPA runs it)."""
    with nn.trace(**inputs):
        for i in range(n_layers):
            args, kwargs = nn.model.language_model.layers[i].self_attn.inputs
            kwargs["attention_mask"] = additive
            nn.model.language_model.layers[i].self_attn.inputs = (args, kwargs)
        logits = nn.output.logits.save()
    return logits


def nnsight_patching(nn, clean, corrupted, groups, n_layers: int) -> torch.Tensor:
    """What nnsight's tutorials do: one trace caches the clean layer inputs, then one trace per
    (layer, group) runs the corrupted inputs with that group's positions set to the clean ones."""
    import nnsight

    with nn.trace(**clean):
        resid = nnsight.save([])
        for i in range(n_layers):
            resid.append(nn.model.language_model.layers[i].inputs[0][0])
    out = []
    for i in range(n_layers):
        for pos in groups.values():
            with nn.trace(**corrupted):
                h = nn.model.language_model.layers[i].inputs[0][0]
                h[:, pos] = resid[i][:, pos]
                logits = nn.output.logits[:, -1].save()
            out.append(logits)
    return torch.cat(out)


def additive_mask(blocked: torch.Tensor) -> torch.Tensor:
    n = blocked.shape[-1]
    allowed = torch.ones(n, n, dtype=torch.bool).tril()[None] & ~blocked
    return torch.zeros(allowed.shape).masked_fill(~allowed, float("-inf"))[:, None]


# --- TransformerLens' TransformerBridge ------------------------------------------------------------


def bridge_model(path, device):
    """A TransformerBridge on its own copy of the weights (it rewires the HF modules it wraps)."""
    try:
        from transformer_lens.model_bridge import TransformerBridge

        return TransformerBridge.boot_transformers(str(path), device=device), None
    except Exception as e:
        return None, f"{type(e).__name__}: {str(e).splitlines()[0][:90]}"


def _extra(inputs) -> dict:
    return {k: v for k, v in inputs.items() if k != "input_ids"}


def bridge_logits(out) -> torch.Tensor:
    return getattr(out, "logits", out)


# --- one table row per task ------------------------------------------------------------------------


def ratio(t: float, t_hf: float) -> str:
    return f"{t / t_hf:6.2f}x"


def row(name: str, t: float | None, t_hf: float, delta: float | None = None, why: str | None = None) -> str:
    if t is None:
        return f"    {name:<44} {'n/a':>9}  {why}"
    d = "" if delta is None else f"  |Δ| {delta:.1e}"
    return f"    {name:<44} {t:>8.3f}s {ratio(t, t_hf)}{d}"


def max_delta(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


def task_cache(model, hf, nn, bridge, inputs, reps, device, t_hf, why) -> list[str]:
    L = model.cfg.n_layers
    names = [f"blocks.{i}.hook_resid_post" for i in range(L)]
    keep = set(names)
    logits, cache = model.run_with_cache(inputs, names_filter=lambda n: n in keep)
    fns = {
        "vlens run_with_cache": lambda: model.run_with_cache(inputs, names_filter=lambda n: n in keep),
        "HF output_hidden_states": lambda: hf(**inputs, output_hidden_states=True),
    }
    lines = []
    deltas: dict[str, float | None] = {"vlens run_with_cache": None}
    hs = hf(**inputs, output_hidden_states=True).hidden_states
    # HF's last hidden state is after the final norm; compare the ones before it
    deltas["HF output_hidden_states"] = max(max_delta(hs[i + 1], cache[names[i]]) for i in range(L - 1))
    if nn is not None:
        fns["nnsight .trace (layer outputs saved)"] = lambda: nnsight_cache(nn, inputs, L)
        outs, nn_logits = nnsight_cache(nn, inputs, L)
        outs = [o[0] if isinstance(o, tuple) else o for o in outs]
        deltas["nnsight .trace (layer outputs saved)"] = max(
            max(max_delta(outs[i], cache[names[i]]) for i in range(L)), max_delta(nn_logits[:, -1], logits[:, -1])
        )
    if bridge is not None:
        try:
            _, bcache = bridge.run_with_cache(inputs["input_ids"], names_filter=lambda n: n in keep, **_extra(inputs))
            deltas["TL bridge run_with_cache"] = max(max_delta(bcache[n], cache[n]) for n in names)
            fns["TL bridge run_with_cache"] = lambda: bridge.run_with_cache(
                inputs["input_ids"], names_filter=lambda n: n in keep, **_extra(inputs)
            )
        except Exception as e:
            why["bridge"] = f"{type(e).__name__}: {str(e).splitlines()[0][:90]}"
    t = timeit_interleaved(fns, reps, device=device)
    for name, secs in t.items():
        lines.append(row(name, secs, t_hf, deltas.get(name)))
    if nn is None:
        lines.append(row("nnsight .trace", None, t_hf, why=why["nnsight"]))
    if "TL bridge run_with_cache" not in t:
        lines.append(row("TL bridge run_with_cache", None, t_hf, why=why["bridge"]))
    return lines


def task_knockout(model, hf, nn, bridge, inputs, reps, device, t_hf, why) -> list[str]:
    L = model.cfg.n_layers
    spec = ko.LV()
    hooks = spec.hooks(inputs)
    ours = model.run_with_hooks(inputs, fwd_hooks=hooks)[:, -1]
    blocked = blocked_by_layer(spec, inputs, ko.all_layers(), L)
    fns = {
        "vlens fused knockout (SDPA mask)": lambda: model.run_with_hooks(inputs, fwd_hooks=hooks),
        "HF eager + AttentionInterface mask": lambda: hf_eager_knockout(hf, inputs, blocked),
    }
    deltas = {
        "vlens fused knockout (SDPA mask)": None,
        "HF eager + AttentionInterface mask": max_delta(hf_eager_knockout(hf, inputs, blocked), ours),
    }
    if nn is not None:
        add = additive_mask(blocked[0])
        fns["nnsight attention_mask input (SDPA)"] = lambda: nnsight_knockout(nn, inputs, add, L)
        deltas["nnsight attention_mask input (SDPA)"] = max_delta(nnsight_knockout(nn, inputs, add, L)[:, -1], ours)
    if bridge is not None:
        bhooks = [(f"blocks.{i}.attn.hook_pattern", hooks[0][1]) for i in range(L)]
        try:
            out = bridge.run_with_hooks(inputs["input_ids"], fwd_hooks=bhooks, **_extra(inputs))
            deltas["TL bridge pattern hook (eager)"] = max_delta(bridge_logits(out)[:, -1], ours)
            fns["TL bridge pattern hook (eager)"] = lambda: bridge.run_with_hooks(
                inputs["input_ids"], fwd_hooks=bhooks, **_extra(inputs)
            )
        except Exception as e:
            why["bridge"] = f"{type(e).__name__}: {str(e).splitlines()[0][:90]}"
    t = timeit_interleaved(fns, reps, device=device)
    lines = [row(name, secs, t_hf, deltas.get(name)) for name, secs in t.items()]
    if nn is None:
        lines.append(row("nnsight", None, t_hf, why=why["nnsight"]))
    if "TL bridge pattern hook (eager)" not in t:
        lines.append(row("TL bridge pattern hook (eager)", None, t_hf, why=why["bridge"]))
    return lines


def task_study(model, hf, samples, device, t_hf) -> list[str]:
    """The seed study on `samples`: the engine vs one eager HF forward per configuration and sample."""
    L = model.cfg.n_layers
    configs = study_configs(L)

    def engine():
        return [run_sweep(model, x, configs) for x in samples]

    def map_the_flow():
        out = []
        for x in samples:
            res = {"clean": hf(**x, logits_to_keep=1).logits[0, -1]}
            for cfg in configs:
                res[cfg.name] = hf_eager_knockout(hf, x, blocked_by_layer(cfg.spec, x, cfg.layers, L))[0]
            out.append(res)
        return out

    timings = {}
    results = {}
    for name, fn in (("vlens sweep engine", engine), ("map-the-flow loop (HF eager, batch 1)", map_the_flow)):
        sync(device)
        t0 = time.perf_counter()
        results[name] = fn()
        sync(device)
        timings[name] = time.perf_counter() - t0
    a, b = results.values()
    delta = max(max_delta(a[i][k], b[i][k]) for i in range(len(samples)) for k in a[i])
    n_runs = len(samples) * (len(configs) + 1)
    lines = [f"    ({len(configs)} configurations + clean × {len(samples)} samples = {n_runs} forwards for the loop)"]
    for name, secs in timings.items():
        lines.append(row(name, secs, t_hf * len(samples), delta if name.startswith("map") else None))
    e, m = timings.values()
    lines.append(
        f"    vlens / map-the-flow wall time: {e / m:.1%}  (ratios in this task: to {len(samples)} HF clean forwards)"
    )
    return lines


def task_patching(model, hf, nn, bridge, clean, device, t_hf, why) -> list[str]:
    L = model.cfg.n_layers
    corrupted = corrupt(model, clean, "reverse")
    letters = letter_token_ids(model.tokenizer, 4)
    groups = position_groups(clean.layout)
    runs = L * len(groups)

    def ours():
        return patch_sweep(model, clean, corrupted, letters, 1, site="resid_pre")

    def bridge_loop():
        _, ccache = bridge.run_with_cache(
            clean["input_ids"], names_filter=lambda n: n.endswith("hook_resid_pre"), **_extra(clean)
        )
        out = []
        for i in range(L):
            name = f"blocks.{i}.hook_resid_pre"
            for pos in groups.values():

                def patch(t, hook, pos=pos, name=name):
                    t[:, pos] = ccache[name][:, pos]
                    return t

                logits = bridge.run_with_hooks(corrupted["input_ids"], fwd_hooks=[(name, patch)], **_extra(corrupted))
                out.append(bridge_logits(logits)[:, -1])
        return torch.cat(out)

    timings, outs = {}, {}
    contenders: dict[str, Callable[[], object]] = {"vlens patch_sweep (batched)": ours}
    if nn is not None:
        contenders["nnsight loop of traces"] = lambda: nnsight_patching(nn, clean, corrupted, groups, L)
    if bridge is not None:
        contenders["TL bridge run_with_hooks loop"] = bridge_loop
    for name, fn in contenders.items():
        sync(device)
        t0 = time.perf_counter()
        try:
            outs[name] = fn()
        except Exception as e:
            why[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:90]}"
            continue
        sync(device)
        timings[name] = time.perf_counter() - t0
    lines = [f"    ({L} layers × {len(groups)} groups = {runs} patched runs)"]
    ref = outs["vlens patch_sweep (batched)"].raw.flatten()
    for name, secs in timings.items():
        delta = None
        if name != "vlens patch_sweep (batched)":
            logits = outs[name]
            diffs = logits[:, letters[1]] - logits[:, [x for j, x in enumerate(letters) if j != 1]].max(-1).values
            delta = max_delta(diffs, ref)
        lines.append(row(name, secs, t_hf, delta))
    for name in ("nnsight loop of traces", "TL bridge run_with_hooks loop"):
        if name not in timings:
            lines.append(row(name, None, t_hf, why=why.get(name) or why["nnsight" if "nnsight" in name else "bridge"]))
    return lines


# --- memory: each contender in its own process, RSS sampled every millisecond ---------------------


MEMORY_CONTENDERS = {
    "cache": ["vlens", "hf", "nnsight", "bridge"],
    "knockout": ["vlens", "hf-eager", "nnsight", "bridge"],
}


def one_memory(args) -> None:
    """Child process: load, warm up, then measure one call of one contender; print JSON."""
    task, who = args.one
    torch.set_grad_enabled(False)
    path = model_path(args.shapes[0])
    model = HookedVideoLLM.from_pretrained(path, dtype=getattr(torch, args.dtype), device=args.device)
    hf = model.hf_model
    inputs = model.to_inputs(clip(args.frames[0]), QUESTION, n_frames=args.frames[0])
    L = model.cfg.n_layers
    if who == "bridge":
        bridge, why = bridge_model(path, args.device)
        if bridge is None:
            print(json.dumps({"error": why}))
            return
    if who == "nnsight":
        nn, why = nnsight_model(hf)
        if nn is None:
            print(json.dumps({"error": why}))
            return
    keep = {f"blocks.{i}.hook_resid_post" for i in range(L)}
    if task == "cache":
        fn = {
            "vlens": lambda: model.run_with_cache(inputs, names_filter=lambda n: n in keep),
            "hf": lambda: hf(**inputs, output_hidden_states=True),
            "nnsight": lambda: nnsight_cache(nn, inputs, L),
            "bridge": lambda: bridge.run_with_cache(
                inputs["input_ids"], names_filter=lambda n: n in keep, **_extra(inputs)
            ),
        }[who]
    else:
        hooks = ko.LV().hooks(inputs)
        blocked = blocked_by_layer(ko.LV(), inputs, ko.all_layers(), L)
        add = additive_mask(blocked[0])
        bhooks = [(f"blocks.{i}.attn.hook_pattern", hooks[0][1]) for i in range(L)]
        fn = {
            "vlens": lambda: model.run_with_hooks(inputs, fwd_hooks=hooks),
            "hf-eager": lambda: hf_eager_knockout(hf, inputs, blocked),
            "nnsight": lambda: nnsight_knockout(nn, inputs, add, L),
            "bridge": lambda: bridge.run_with_hooks(inputs["input_ids"], fwd_hooks=bhooks, **_extra(inputs)),
        }[who]
    try:
        fn()  # warm-up: allocator pools and lazy buffers exist before the measurement
        with PeakRSS(args.device) as m:
            out = fn()
        del out
        print(json.dumps({"bytes": m.extra}))
    except Exception as e:
        print(json.dumps({"error": f"{type(e).__name__}: {str(e).splitlines()[0][:90]}"}))


def memory_table(args) -> None:
    print(f"peak memory beyond the loaded weights, one call after a warm-up, each in its own process ({args.device})")
    for shape in args.shapes:
        for n in args.frames:
            for task, whos in MEMORY_CONTENDERS.items():
                if task not in args.tasks:
                    continue
                print(f"  {shape} {n} frames, {task}:")
                for who in whos:
                    cmd = [sys.executable, __file__, "--one", task, who, "--shapes", shape, "--frames", str(n)]
                    cmd += ["--device", args.device, "--dtype", args.dtype]
                    res = subprocess.run(cmd, capture_output=True, text=True)
                    last = (res.stdout.strip().splitlines() or ["{}"])[-1]
                    try:
                        got: dict = json.loads(last)
                    except json.JSONDecodeError:
                        got = {"error": (res.stderr.strip().splitlines() or ["no output"])[-1][:90]}
                    txt = (
                        f"{int(got['bytes']) / 2**20:9.1f} MiB" if "bytes" in got else f"      n/a  {got.get('error')}"
                    )
                    print(f"    {who:<10} {txt}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="+", default=["tiny", "0.5B"], choices=[*SHAPES, "organism"])
    ap.add_argument("--frames", nargs="+", type=int, default=[8, 16])
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--study-samples", type=int, default=4)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--memory", action="store_true", help="peak memory per contender (own process each)")
    ap.add_argument("--one", nargs=2, metavar=("TASK", "WHO"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        return one_memory(args)
    if args.memory:
        return memory_table(args)
    torch.set_grad_enabled(False)
    print(f"device={args.device} dtype={args.dtype} threads={torch.get_num_threads()} reps={args.reps} (medians)")
    print("command: python benchmarks/peers.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    _register_hf_knockout()
    for shape in args.shapes:
        path = model_path(shape)
        model = HookedVideoLLM.from_pretrained(path, dtype=getattr(torch, args.dtype), device=args.device)
        hf: Any = model.hf_model
        nn, why_nn = nnsight_model(hf)
        bridge, why_bridge = (None, "not needed") if set(args.tasks) <= {"study"} else bridge_model(path, args.device)
        why = {"nnsight": why_nn, "bridge": why_bridge}
        for n in args.frames:
            inputs = model.to_inputs(clip(n), QUESTION, n_frames=n)
            t_hf = statistics.median(
                timeit_interleaved({"hf": lambda: hf(**inputs)}, args.reps, device=args.device).values()
            )
            print(
                f"\n{shape}: {model.cfg.n_layers} layers, {n} frames, {inputs.seq_len} positions; HF SDPA clean forward {t_hf:.4f}s"
            )
            for task in args.tasks:
                print(f"  {task}:")
                if task == "cache":
                    lines = task_cache(model, hf, nn, bridge, inputs, args.reps, args.device, t_hf, why)
                elif task == "knockout":
                    lines = task_knockout(model, hf, nn, bridge, inputs, args.reps, args.device, t_hf, why)
                elif task == "study":
                    samples = [
                        model.to_inputs(clip(n, seed=s), QUESTION, n_frames=n) for s in range(args.study_samples)
                    ]
                    lines = task_study(model, hf, samples, args.device, t_hf)
                else:
                    lines = task_patching(model, hf, nn, bridge, inputs, args.device, t_hf, why)
                print("\n".join(lines), flush=True)
        model = hf = nn = bridge = None


if __name__ == "__main__":
    main()
