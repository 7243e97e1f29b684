"""Long videos on the CPU: positions vs seconds and peak memory beyond the weights, for a clean
forward, LV-K in every layer on the dense fast path (one [pos, pos] mask) and LV-K on the
query-chunked path (no [pos, pos] tensor), at growing frame counts.

    python benchmarks/long_video.py [--frames 8 16 32 48] [--chunk 128] [--reps 2] [--width 128]
    python benchmarks/long_video.py --plan-7b      # arithmetic only: 7B at 64/128/256 frames

196 video tokens per frame (SigLIP-384 / patch 14, pooled 2×2, as LLaVA-OneVision); a small
decoder (`--width`, 2 layers) so the attention, not the MLP, is what grows. The decoder alone is
measured (`start_at_layer=0` from the embedded inputs: the vision tower runs once, before). Each measurement runs
in a fresh process (glibc's mmap threshold fixed, freed heap trimmed, so the resident set follows
the live tensors): the peak is VmHWM after resetting it (/proc/self/clear_refs) once the model
and inputs are loaded, minus the RSS then, so it is what the forward adds beyond the weights and
inputs. Seconds: median of `--reps` forwards after one warm-up, in another fresh process with glibc's
default allocator (a fixed mmap threshold makes every tensor an mmap: fine for memory, slow). Logits of the last position only
(`logits_to_keep=1`) so the unembedding does not dominate. The chunked path's logits are checked
against the dense path's (max |Δ|).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import clip

RUNS = ("clean", "lv-dense", "lv-chunked")
# glibc's mmap threshold fixed at 128 kB: tensors are mmapped and unmapped when freed, so the
# resident set follows what is alive instead of the heap's high-water mark from before
FIXED_MMAP = {"MALLOC_MMAP_THRESHOLD_": "131072"}
# LLaVA-OneVision-7B's language model (Qwen2-7B), bf16
QWEN2_7B = dict(n_layers=28, d_model=3584, n_heads=28, n_kv_heads=4, d_head=128, params=7.6e9)


def plan_7b(chunk: int) -> None:
    """The 7B plan at 64/128/256 frames on one 80 GB GPU: bytes by arithmetic, from the same
    estimate that refuses a forward (vlens.model.mask_memory), not measured."""
    from types import SimpleNamespace

    from transformer_lens.hook_points import HookPoint

    from vlens import knockout as ko
    from vlens.components.per_call import Interventions
    from vlens.inputs.layout import VideoLayout, VisionToken
    from vlens.model import mask_memory

    c = QWEN2_7B
    L, H = c["n_layers"], c["n_heads"]
    attn = SimpleNamespace(hook_attn_scores=HookPoint(), hook_pattern=HookPoint())
    model = SimpleNamespace(
        cfg=SimpleNamespace(n_layers=L, n_heads=H, dtype=torch.bfloat16), blocks=[SimpleNamespace(attn=attn)] * L
    )
    print(
        "7B plan (LLaVA-OneVision-7B's Qwen2-7B: 28 layers, 28 heads, 4 kv heads × 128, bf16), batch 1, "
        f"196 tokens/frame, chunk {chunk}; arithmetic, not measured"
    )
    print(
        f"weights {c['params'] * 2 / 1e9:.1f} GB; KV = 2·layers·kv_heads·d_head·2 B = {2 * L * 4 * 128 * 2} B a position"
    )
    print(
        f"{'frames':>6} {'positions':>9} {'one N² mask':>11} {'KV':>8} {'LV-K dense':>10} {'LV-K 1 head':>11} "
        f"{'pattern/layer':>13} {'LV-K chunked':>12} {'1 head chunked':>14}"
    )
    gb = lambda b: f"{b / 1e9:.2f} GB"  # noqa: E731
    for frames in (64, 128, 256):
        n_video, text = 196 * frames, 60
        n = n_video + 2 * text
        is_vision = torch.zeros(n, dtype=torch.bool)
        is_vision[text : text + n_video] = True
        layout = VideoLayout.build(is_vision, [VisionToken("video", frame=i // 196) for i in range(n_video)])
        dense = {}
        for name, heads in (("all", None), ("one", [0])):
            iv = Interventions.resolve([ko.LV().hooks(layout, heads=heads)[0][1]], L, n_heads=H)
            dense[name] = mask_memory.estimate(model, 1, n, n, iv, padded=False, path="fast").total
        explicit = mask_memory.estimate(model, 1, n, n, Interventions(), padded=False, path="explicit").patterns
        # a chunk's causal rows, allowed and removed edges (bool) and the kernel's float copy
        chunked = {name: chunk * n * (1 + 2 * k + 4 * k) for name, k in (("all", 1), ("one", H))}
        print(
            f"{frames:>6} {n:>9} {gb(n * n):>11} {gb(2 * L * 4 * 128 * 2 * n):>8} {gb(dense['all']):>10} "
            f"{gb(dense['one']):>11} {gb(explicit):>13} {gb(chunked['all']):>12} {gb(chunked['one']):>14}"
        )


def _status(field: str) -> int:
    """A /proc/self/status memory field (VmRSS, VmHWM) in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def one(path: str, run: str, n_frames: int, chunk: int, reps: int) -> dict:
    """One measurement in this process: seconds, peak bytes beyond the loaded state, last logits."""
    from vlens import HookedVideoLLM
    from vlens import knockout as ko

    torch.set_grad_enabled(False)
    model = HookedVideoLLM.from_pretrained(path)
    inputs = model.to_inputs(clip(n_frames), "what happens in the video?", n_frames=n_frames)
    hooks = [] if run == "clean" else ko.LV().hooks(inputs)

    resid = model.embed_inputs(inputs)  # the vision tower runs once, outside what is measured

    def forward():
        kw = dict(fwd_hooks=hooks, start_at_layer=0, resid=resid, logits_to_keep=1)
        if run != "lv-chunked":
            return model.run_with_hooks(inputs, **kw)
        with model.attention_path_as("chunked", chunk=chunk):
            return model.run_with_hooks(inputs, **kw)

    ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap pages back: RSS is what is live now
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the RSS now
    before = _status("VmRSS")
    logits = forward()  # the warm-up is the measured peak: the first forward allocates everything
    peak = _status("VmHWM") - before
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        forward()
        times.append(time.perf_counter() - t)
    return {
        "positions": inputs.seq_len,
        "seconds": statistics.median(times) if times else None,
        "peak": peak,
        "path": model.last_attention_path,
        "logits": logits[0, -1].tolist(),
    }


def _measure(root: Path, run: str, n: int, chunk: int, reps: int, env: dict) -> dict:
    """`one` in a fresh process."""
    cmd = [sys.executable, __file__, "--one", str(root), run, str(n), "--chunk", str(chunk), "--reps", str(reps)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", nargs="+", type=int, default=[8, 16, 32, 48])
    ap.add_argument(
        "--chunk", type=int, default=128, help="query rows per chunk (about d_mlp / 2: see docs/performance.md)"
    )
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--width", type=int, default=128, help="d_model of the 2-layer decoder")
    ap.add_argument("--plan-7b", action="store_true", help="print the 7B arithmetic and exit")
    ap.add_argument("--one", nargs=3, metavar=("CKPT", "RUN", "FRAMES"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.plan_7b:
        plan_7b(1024)
        return
    if args.one:
        ckpt, run, n = args.one
        print(json.dumps(one(ckpt, run, int(n), args.chunk, args.reps)))
        return
    from vlens.testing import make_tiny_onevision

    w = args.width
    root = Path(tempfile.gettempdir()) / f"vlens-bench-long-{w}"
    if not (root / "config.json").exists():
        make_tiny_onevision(
            root, n_layers=2, d_model=w, n_heads=4, n_kv_heads=2, d_mlp=2 * w, image_size=384, patch_size=14,
            vision_layers=1, vision_d=32,
        )  # fmt: skip
    cmd = "python benchmarks/long_video.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"$ {cmd.strip()}")
    print(
        f"CPU, fp32, threads={torch.get_num_threads()}, decoder 2 layers × d_model {w} (4 heads, 2 kv), 196 tokens/frame, "
        f"LV-K in every layer, chunk {args.chunk}; peak = memory the forward adds beyond weights and inputs"
    )
    head = f"{'frames':>6} {'positions':>9} " + " ".join(f"{r + ' s':>14} {r + ' MB':>15}" for r in RUNS)
    print(head + f" {'dense/chunked mem':>17} {'chunked/clean mem':>17} {'chunked/dense s':>15} {'max|Δ| logits':>13}")
    for n in args.frames:
        res = {}
        for run in RUNS:
            # memory with glibc's mmap threshold fixed (no timing: mmap per tensor is slow), time without
            res[run] = _measure(root, run, n, args.chunk, 0, {**os.environ, **FIXED_MMAP})
            res[run]["seconds"] = _measure(root, run, n, args.chunk, args.reps, dict(os.environ))["seconds"]
        assert res["lv-chunked"]["path"] == "chunked" and res["lv-dense"]["path"] == "fast", res
        diff = max(abs(a - b) for a, b in zip(res["lv-dense"]["logits"], res["lv-chunked"]["logits"]))
        mb = {r: res[r]["peak"] / 1e6 for r in RUNS}
        cells = " ".join(f"{res[r]['seconds']:>14.2f} {mb[r]:>15.1f}" for r in RUNS)
        print(
            f"{n:>6} {res['clean']['positions']:>9} {cells} {mb['lv-dense'] / mb['lv-chunked']:>17.2f} "
            f"{mb['lv-chunked'] / mb['clean']:>17.2f} {res['lv-chunked']['seconds'] / res['lv-dense']['seconds']:>15.2f} "
            f"{diff:>13.1e}",
            flush=True,
        )


if __name__ == "__main__":
    main()
