"""`vlens demo`: an end-to-end run on a small local checkpoint, no network.

Until the trained model organism ships, the demo builds a tiny random LLaVA-OneVision checkpoint,
loads it back like a user would, and shows the clean answer next to LV-K knockouts.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch


def _clip(n: int = 16, size: int = 48) -> np.ndarray:
    """A red square moving right across a dark background."""
    frames = np.full((n, size, size, 3), 20, dtype=np.uint8)
    for t in range(n):
        x = 4 + t * (size - 16) // max(1, n - 1)
        frames[t, 16:28, x : x + 12] = (220, 40, 40)
    return frames


def main(out: str | Path | None = None) -> None:
    from vlens import HookedVideoLLM
    from vlens import knockout as ko
    from vlens.testing import make_tiny_onevision

    out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="vlens-demo-"))
    ckpt = out / "tiny-onevision"
    if not (ckpt / "config.json").exists():
        print(f"building a tiny random LLaVA-OneVision checkpoint in {ckpt}")
        make_tiny_onevision(ckpt, n_layers=4)
    model = HookedVideoLLM.from_pretrained(ckpt)
    print(model)
    inputs = model.to_inputs(_clip(), "Which direction is the object moving?", n_frames=8)
    print(inputs.layout)
    with torch.no_grad():
        logits = model(inputs)[0, -1]
    top = logits.topk(5)
    print("top-5 next tokens (clean):")
    for value, idx in zip(top.values.tolist(), top.indices.tolist()):
        print(f"  {model.tokenizer.convert_ids_to_tokens(idx):>12}  {value:+.3f}")
    answer = model.generate(inputs, max_new_tokens=6)
    print("clean answer:", model.tokenizer.decode(answer[0], skip_special_tokens=True))
    L = model.cfg.n_layers
    for sel in (ko.all_layers(), ko.from_layer(L // 2)):
        hooks = ko.LV().hooks(inputs, layers=sel)
        with torch.no_grad():
            knocked = model.run_with_hooks(inputs, fwd_hooks=hooks)[0, -1]
        p_clean, logp_knocked = logits.softmax(-1), knocked.log_softmax(-1)
        kl = (p_clean * (p_clean.log() - logp_knocked)).sum()
        print(f"{hooks[0][1]!s:>24}: top token {model.tokenizer.convert_ids_to_tokens(int(knocked.argmax()))!r}, "
              f"KL(clean‖knocked) = {kl.item():.4f}  [{model.last_attention_path} path]")
