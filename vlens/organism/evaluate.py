"""Held-out accuracy of an organism checkpoint, by question kind (the numbers docs/organism.md
reports and the tests check)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

HELD_OUT_SEED = 1  # training draws from seeds >= 10 000
_Hooks = Sequence[tuple[str | Callable, Callable]]  # TransformerLens' fwd_hooks: (hook name or filter, hook fn)


@torch.no_grad()
def evaluate(
    model_dir: str | Path | None = None,
    *,
    n: int = 240,
    seed: int = HELD_OUT_SEED,
    fwd_hooks: _Hooks | Callable[[Any], _Hooks] | None = None,
) -> dict[str, float]:
    """Accuracy per question kind and overall ("all") on `n` held-out synthetic clips; `fwd_hooks`
    is run on every clip (or, when callable, called with the clip's inputs for its hooks)."""
    from vlens.data import synthetic
    from vlens.inputs.prompts import letter_token_ids, mc_question
    from vlens.model.hooked_video_llm import HookedVideoLLM
    from vlens.organism import checkpoint_dir
    from vlens.organism.train import DATA

    model = HookedVideoLLM.from_pretrained(model_dir or checkpoint_dir())
    hits: dict[str, list[bool]] = defaultdict(list)
    for s in synthetic.generate(n, seed, **DATA):
        inputs = model.to_inputs(s.video, mc_question(s.question, s.options), n_frames=DATA["n_frames"], fps=s.fps)
        letters = letter_token_ids(model.tokenizer, len(s.options))
        hooks = fwd_hooks(inputs) if callable(fwd_hooks) else (fwd_hooks or [])
        logits = model.run_with_hooks(inputs, fwd_hooks=list(hooks), logits_to_keep=1)[0, -1, letters]
        ok = int(logits.argmax()) == s.answer
        hits[s.meta["kind"]].append(ok)
        hits["all"].append(ok)
    return {k: sum(v) / len(v) for k, v in hits.items()}
