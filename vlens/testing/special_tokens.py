"""A real tokenizer with a checkpoint's added tokens at their real ids.

Published checkpoints add their multimodal tokens to the LM's tokenizer at fixed ids: Qwen2-VL's
`<|vision_start|>` is 151652 because Qwen2's vocabulary keeps padding slots there; LLaVA-NeXT-Video's
`<video>` is 32000 because it was appended to Llama 2's 32,000 ids. `place_special_tokens` puts
them there in a copy of the base tokenizer, so ids, layouts and letters are the real ones.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path


class RealisticError(ValueError):
    """A realistic build that cannot be made as asked (unknown checkpoint, wrong vocabulary, an id
    that cannot be placed)."""


def place_special_tokens(
    tokenizer, tokens: Mapping[int, str], *, named: Mapping[str, str] = {}, pad: str | None = None
):
    """A copy of `tokenizer` with each token of `tokens` at its id: a padding placeholder of the
    base vocabulary at that id is renamed (Qwen2's "[PAD151646]" … slots), the next free id is
    appended; any other id is refused. `named` sets the model-specific attributes HF processors
    read (`tokenizer.video_token` …); `pad` the pad token.

    Raises:
        RealisticError: an id that is neither a placeholder nor the next free one, or a token
            already in the vocabulary at another id.
    """
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        path = Path(tmp) / "tokenizer.json"
        data = json.loads(path.read_text(encoding="utf-8"))
        added = {t["id"]: t for t in data["added_tokens"]}
        vocab = data["model"]["vocab"]
        size = len(tokenizer)
        existing = tokenizer.get_vocab()
        for i, content in sorted(tokens.items()):
            if content in existing and existing[content] != i:
                raise RealisticError(f"{content!r} is already id {existing[content]}, cannot place it at {i}")
            if i in added:
                old = added[i]["content"]
                # a slot the base vocabulary keeps free: Qwen2's "[PAD151646]"…, Llama 3's reserved tokens
                if not (old.startswith("[PAD") or old.startswith("<|reserved_special_token_") or old == content):
                    raise RealisticError(f"id {i} holds {old!r}, not a padding placeholder; cannot place {content!r}")
                added[i].update(content=content, special=True, normalized=False)
                if isinstance(vocab, dict) and old in vocab:
                    del vocab[old]
                    vocab[content] = i
            elif i == size:
                data["added_tokens"].append(
                    dict(
                        id=i,
                        content=content,
                        single_word=False,
                        lstrip=False,
                        rstrip=False,
                        normalized=False,
                        special=True,
                    )
                )
                size += 1
            else:
                raise RealisticError(f"id {i} for {content!r}: the vocabulary has {size} ids and no placeholder there")
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        placed = AutoTokenizer.from_pretrained(tmp)
    specials = [t for t in tokens.values() if t not in placed.all_special_tokens]
    if specials:
        placed.add_special_tokens({"additional_special_tokens": specials}, replace_extra_special_tokens=False)
    if named:
        placed._set_model_specific_special_tokens(dict(named))
    if pad is not None:
        placed.pad_token = pad
    placed.padding_side = "left"
    wrong = {t: placed.convert_tokens_to_ids(t) for t in tokens.values()}
    wrong = {t: got for (i, t), got in zip(tokens.items(), wrong.values()) if got != i}
    if wrong:
        raise RealisticError(f"tokens not at their ids after placing: {wrong}")
    return placed
