"""The logit lens, and attention mass from the question to each frame — reduced as it runs.

    lens = logit_lens(model, inputs, letter_ids, answer)            # per layer at the final position
    lens.p_letters      # [layer+1, n_options]: option-letter probabilities after each block
    lens.rank           # [layer+1]: rank of the correct option among the letters (0 = top)

    mass = attention_to_frames(model, inputs)                       # [layer, head, frame]

The lens decodes `blocks.{l}.hook_resid_pre` (l = 0..L−1) and the final residual with the final
norm + unembedding (default), or with the unembedding alone (`apply_norm=False`, as some papers
do). At the last layer with the norm it equals the model's logits (tested).

`attention_to_frames` sums each head's attention from the question rows to each frame's video
positions, *inside* a hook on `hook_pattern`, keeping only [heads, frames] per layer: a 7B model at
32 frames would need ~64 GB to cache every pattern.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from vlens.arguments import ArgumentError, as_index, as_token_ids


@dataclass
class LensResult:
    """The logit lens at one position, per layer.

    Attributes:
        p_letters: `[layer + 1, n_options]` softmax over the option letters' logits after each
            block's input residual (`0_pre` … `{L-1}_pre`) and the final residual (`final`).
        p_vocab: `[layer + 1, n_options]` the letters' probabilities under the full vocabulary.
        rank: `[layer + 1]` rank of the correct letter among the letters (0 = predicted; −1 when
            no answer was given).
        labels: `"0_pre", …, "final"`.
    """

    p_letters: Float[Tensor, "layer n_options"]  # softmax over the option letters
    p_vocab: Float[Tensor, "layer n_options"]  # the letters' probabilities under the full vocab
    rank: Tensor  # [layer] rank of the correct letter among the letters (0 = predicted)
    labels: list[str]  # "0_pre", ..., "final"


@torch.no_grad()
def logit_lens(
    model,
    inputs,
    letter_ids: Sequence[int],
    answer: int | None = None,
    *,
    position: int | None = None,
    apply_norm: bool = True,
    row: int = 0,
) -> LensResult:
    """Decode the residual stream at `position` after every layer through the unembedding.

    Args:
        model: a `HookedVideoLLM`.
        inputs: `VideoInputs`.
        letter_ids: token id of each option letter, in option order.
        answer: index of the correct option (None: `rank` is −1).
        position: sequence position to decode, 0 .. seq_len − 1 (None, the default: the last
            position, where the answer is read; negative indices are refused like everywhere).
        apply_norm: apply the final norm before the unembedding (the default; at the last layer
            this equals the model's logits).
        row: batch row.

    Returns:
        `LensResult` with `[n_layers + 1, n_options]` probabilities.
    """
    L = model.cfg.n_layers
    n_rows, seq_len = (int(d) for d in inputs["input_ids"].shape)
    # every argument checked before the forward (vlens/arguments.py: negative indices refused)
    row = as_index(row, "row", n_rows, what="batch row")
    position = seq_len - 1 if position is None else as_index(position, "position", seq_len, what="sequence position")
    letter_ids = as_token_ids(letter_ids, "letter_ids", model.cfg.d_vocab_out, min_len=1)
    if answer is not None:
        answer = as_index(answer, "answer", len(letter_ids), what="option index")
    names = {f"blocks.{l}.hook_resid_pre" for l in range(L)} | {f"blocks.{L - 1}.hook_resid_post"}
    _, cache = model.run_with_cache(inputs, names_filter=lambda n: n in names)
    resid = torch.stack(
        [cache[f"blocks.{l}.hook_resid_pre"][row, position] for l in range(L)]
        + [cache[f"blocks.{L - 1}.hook_resid_post"][row, position]]
    )
    x = model.ln_final(resid[:, None])[:, 0] if apply_norm else resid
    logits = model.unembed(x).float()
    letters = logits[:, list(letter_ids)]
    p_letters = letters.softmax(-1)
    p_vocab = logits.log_softmax(-1)[:, list(letter_ids)].exp()
    rank = torch.full((L + 1,), -1) if answer is None else (letters > letters[:, answer : answer + 1]).sum(-1)
    return LensResult(p_letters, p_vocab, rank, [f"{l}_pre" for l in range(L)] + ["final"])


@torch.no_grad()
def attention_to_frames(
    model, inputs, *, query: str = "question", row: int = 0
) -> Float[Tensor, "layer head frame_plus"]:
    """Attention mass from the query rows (`question`: text after the video; `final`: the last
    position) to each frame's video positions, then to the separator/markers ('other vision'),
    and to the text/system positions, per layer and head, averaged over query rows:
    [layer, head, n_frames + 2] whose last axis sums to 1.

    Args:
        model: a `HookedVideoLLM`.
        inputs: `VideoInputs`.
        query: `question` (every text position after the video) or `final` (the last position).
        row: batch row.

    Returns:
        `[layer, head, n_frames + 2]` attention mass, reduced inside hooks (no pattern is cached).

    Raises:
        ArgumentError: an unknown `query` or a row out of range.
    """
    if query not in ("question", "final"):
        raise ArgumentError(f"query must be 'question' or 'final', got {query!r}")
    layout = inputs.layouts[as_index(row, "row", len(inputs.layouts), what="batch row")]
    n = len(layout)
    q_rows = layout.positions("text") if query == "question" else torch.tensor([n - 1])
    F = layout.n_frames
    key_group = torch.full((n,), F + 1)  # everything else (system, text, markers, pad)
    video = layout.is_video
    key_group[video] = layout.frame[video]
    key_group[layout.mask("separator")] = F
    onehot = torch.nn.functional.one_hot(key_group, F + 2).float()  # [key, group]
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, F + 2)

    def reduce(pattern, hook):
        p = pattern[row][:, q_rows].float()  # [head, q, key]
        out[hook.layer()] = (p @ onehot.to(p.device)).mean(1).cpu()

    hooks = [(f"blocks.{l}.attn.hook_pattern", reduce) for l in range(model.cfg.n_layers)]
    model.run_with_hooks(inputs, fwd_hooks=hooks, logits_to_keep=1)
    return out
