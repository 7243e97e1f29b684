"""Shared set-up for the benchmarks: random checkpoints of realistic shapes, timing."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vlens.testing import make_tiny_onevision

# Qwen2-0.5B's LM shape (what LLaVA-OneVision-0.5B uses) with a tiny vision tower: the LM is what
# we compare. image_size 384 / patch 14 → 27×27 patches → 14×14 = 196 pooled tokens per frame,
# like the real SigLIP-384 checkpoints.
SHAPES = {
    "tiny": dict(n_layers=4, d_model=64, n_heads=4, n_kv_heads=2, d_mlp=128, image_size=32, patch_size=8),
    "0.5B": dict(n_layers=24, d_model=896, n_heads=14, n_kv_heads=2, d_mlp=4864, image_size=384, patch_size=14,
                 vision_layers=1, vision_d=32, vocab_size=151_936),
    "7B": dict(n_layers=28, d_model=3584, n_heads=28, n_kv_heads=4, d_mlp=18944, image_size=384, patch_size=14,
               vision_layers=1, vision_d=32, vocab_size=152_064),
}


def checkpoint(shape: str, root: Path | None = None) -> Path:
    root = Path(root or tempfile.gettempdir()) / f"vlens-bench-{shape}"
    if not (root / "config.json").exists():
        make_tiny_onevision(root, **SHAPES[shape])
    return root


def clip(n_frames: int, size: int = 64) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(n_frames, size, size, 3), dtype=np.uint8)


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
