"""Real checkpoints without downloading them: `vlens check` on LLaVA-OneVision-7B's and -0.5B's
and Qwen2.5-VL-7B's published configurations (weights on the meta device: shapes, no storage), then a checkpoint
loaded by hub id from an offline hub cache (docs/real-checkpoints.md).

    python examples/15_real_checkpoints.py   # ~10 s on CPU, no network
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import huggingface_hub.constants

from vlens import HookedVideoLLM
from vlens.check import check, check_config
from vlens.testing import make_tiny_onevision, real_configs, write_hub_cache

# 1. the memory/FLOP plan of the real checkpoints from their configs (published tokens per frame)
for name, (build, _) in real_configs.REAL.items():
    report = check_config(
        build(),
        name=name,
        frames=(8, 32, 64),
        tokens_per_frame=real_configs.TOKENS_PER_FRAME[name],
        text_positions=30,
    )
    print(report, end="\n\n")

# 2. a hub id, offline: a tiny checkpoint put into a hub cache, checked and loaded by id
with tempfile.TemporaryDirectory() as tmp:
    ckpt = make_tiny_onevision(Path(tmp) / "ckpt", n_layers=2)
    cache = Path(tmp) / "hub"
    write_hub_cache(ckpt, cache, "my-lab/tiny-onevision")
    os.environ["HF_HUB_OFFLINE"] = "1"  # what a compute node without internet exports
    huggingface_hub.constants.HF_HUB_OFFLINE = True  # (read once at import: set here for this script)
    huggingface_hub.constants.HF_HUB_CACHE = str(cache)
    print(check("my-lab/tiny-onevision", frames=(4,), dtypes=("float32",), frame_size=(32, 32)), end="\n\n")
    model = HookedVideoLLM.from_pretrained("my-lab/tiny-onevision")
    print("loaded by hub id:", model)
