"""Shared set-up for the benchmarks: random checkpoints of realistic shapes, timing."""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from vlens import testing
from vlens.testing import make_tiny_onevision

# Qwen2-0.5B's LM shape (what LLaVA-OneVision-0.5B uses) with a tiny vision tower: the LM is what
# we compare. image_size 384 / patch 14 → 27×27 patches → 14×14 = 196 pooled tokens per frame,
# like the real SigLIP-384 checkpoints.
SHAPES = {
    "tiny": dict(n_layers=4, d_model=64, n_heads=4, n_kv_heads=2, d_mlp=128, image_size=32, patch_size=8),
    "0.5B": dict(
        n_layers=24,
        d_model=896,
        n_heads=14,
        n_kv_heads=2,
        d_mlp=4864,
        image_size=384,
        patch_size=14,
        vision_layers=1,
        vision_d=32,
        vocab_size=151_936,
    ),
    "7B": dict(
        n_layers=28,
        d_model=3584,
        n_heads=28,
        n_kv_heads=4,
        d_mlp=18944,
        image_size=384,
        patch_size=14,
        vision_layers=1,
        vision_d=32,
        vocab_size=152_064,
    ),
}


def checkpoint(shape: str, root: Path | None = None) -> Path:
    root = Path(root or tempfile.gettempdir()) / f"vlens-bench-{shape}"
    if not (root / "config.json").exists():
        make_tiny_onevision(root, **SHAPES[shape])
    return root


def clip(n_frames: int, size: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n_frames, size, size, 3), dtype=np.uint8)


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def timeit(fn, reps: int = 3, warmup: int = 1, device="cpu") -> float:
    """Median seconds of `reps` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@torch.no_grad()
def timeit_interleaved(fns: dict, reps: int = 3, warmup: int = 1, device="cpu") -> dict[str, float]:
    """Median seconds of each function, the calls interleaved (A B C A B C …) so that a noisy
    machine slows every contender alike and the ratios stay meaningful."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


# Every family at one small LM shape (8 layers × 512, GQA 8/2) with ~64 video tokens a frame.
_LM = dict(n_layers=8, d_model=512, n_heads=8, n_kv_heads=2, d_mlp=1408)
FAMILY_SHAPES = {
    "llava-onevision": (testing.make_tiny_onevision, dict(_LM, image_size=64, patch_size=4), {}),
    "llava-next-video": (testing.make_tiny_llava_next_video, dict(_LM, image_size=64, patch_size=4), {}),
    "video-llava": (testing.make_tiny_video_llava, dict(_LM, image_size=32, patch_size=4), {}),
    "qwen2.5-vl": (testing.make_tiny_qwen2_5_vl, dict(_LM, patch_size=4, mrope_section=(8, 12, 12)), {"fps": 2.0}),
}
if hasattr(testing, "make_tiny_internvl"):
    FAMILY_SHAPES["internvl"] = (testing.make_tiny_internvl, dict(_LM), {})
_QWEN3 = dict(_LM, d_head=64, patch_size=4, mrope_section=(8, 12, 12), max_pixels=16 * 64 * 64)  # bounds T·H·W
FAMILY_SHAPES.update(
    {
        "qwen2-vl": (testing.make_tiny_qwen2_vl, dict(_LM, patch_size=4, mrope_section=(8, 12, 12)), {}),
        "qwen3-vl": (testing.make_tiny_qwen3_vl, dict(_QWEN3), {"fps": 2.0}),
        "qwen3-vl-moe": (
            testing.make_tiny_qwen3_vl_moe,
            dict(_QWEN3, n_experts=8, top_k=2, d_expert=352, mlp_only_layers=()),
            {"fps": 2.0},
        ),
        "smolvlm2": (testing.make_tiny_smolvlm, dict(_LM, image_size=64, patch_size=4), {"fps": 2.0}),
        "videollama3": (testing.make_tiny_video_llama3, dict(_LM, patch_size=4), {"fps": 2.0}),
        # GLM-4.1V: half of every 64-dim head rotates (partial_rotary_factor 0.5), GLM's 8:12:12 split
        "glm4v": (
            testing.make_tiny_glm4v,
            dict(_LM, patch_size=4, mrope_section=(4, 6, 6), max_pixels=16 * 64 * 64),
            {"fps": 2.0},
        ),
        "perception-lm": (testing.make_tiny_perception_lm, dict(_LM, tile_size=64, patch_size=4), {}),  # (64/4/2)² = 64
    }
)


def family_checkpoint(family: str, root: Path | None = None) -> tuple[Path, dict]:
    """(checkpoint dir, extra to_inputs kwargs) of `family` at the benchmark shape."""
    build, kwargs, to_inputs = FAMILY_SHAPES[family]
    root = Path(root or tempfile.gettempdir()) / f"vlens-bench-family-{family}"
    if not (root / "config.json").exists():
        build(root, **kwargs)
    return root, to_inputs


class PeakRSS:
    """Peak resident memory above the level at entry, sampled every millisecond (CPU), or
    torch's peak allocation (CUDA)."""

    def __init__(self, device):
        self.device = torch.device(device)

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return self
        self.base = self.peak = self.rss()
        self.running = True
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()
        return self

    def _poll(self):
        while self.running:
            self.peak = max(self.peak, self.rss())
            time.sleep(0.001)

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.extra = torch.cuda.max_memory_allocated() - self.base
            return
        self.running = False
        self.thread.join()
        self.extra = max(self.peak, self.rss()) - self.base
