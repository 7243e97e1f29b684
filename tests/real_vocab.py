"""The real tokenizers, from llama.cpp's vocab-only GGUF files (fetched by tests/fetch_vocabs.py).

`real_tokenizer(name)` converts a GGUF vocabulary into the HF tokenizer once
(`AutoTokenizer.from_pretrained(dir, gguf_file=...)`), applies the two fixes transformers'
GGUF conversion needs to tokenise like the real checkpoints (checked against llama.cpp's own
`.inp/.out` token tests), and keeps the result in `<vocab dir>/hf-<name>-v1`:

- Llama 2 (SentencePiece): the converted tokenizer's Metaspace pre-tokenizer skips the dummy
  prefix when the text already starts with a space (" Hello" → "▁Hello"; SentencePiece and the
  real tokenizer.json give "▁", "▁Hello"). The real file's normalizer — Prepend("▁") then
  Replace(" ", "▁"), no pre-tokenizer — is put back.
- Llama 3 (BPE): the real tokenizer.json sets `ignore_merges` (a word in the vocabulary is one
  token whatever the merges say; "Cửa Việt" differs otherwise); the conversion leaves it off.

Where the files are missing, tests skip locally with the command that fetches them, and fail in
CI (`VLENS_REQUIRE_REAL_VOCAB=1`, set by .ci/run): real tokenizers are never skipped there.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import pytest
from fetch_vocabs import FILES, vocab_dir

VERSION = "v1"  # bump when the conversion below changes


def _missing_message(where: Path) -> str:
    return f"llama.cpp's vocab files are not in {where}: run `python tests/fetch_vocabs.py` (downloads ~77 MB once)"


def require_vocab() -> Path:
    where = vocab_dir()
    if not all((where / f).exists() for f in FILES):
        if os.environ.get("VLENS_REQUIRE_REAL_VOCAB"):
            pytest.fail(_missing_message(where))
        pytest.skip(_missing_message(where))
    import gguf  # noqa: F401  (transformers reads GGUF files with it: in the test extra)

    return where


@cache
def real_tokenizer(name: str):
    """The HF tokenizer of llama.cpp's `ggml-vocab-<name>.gguf` (qwen2, llama-spm, llama-bpe)."""
    from tokenizers import normalizers
    from transformers import AutoTokenizer

    where = require_vocab()
    saved = where / f"hf-{name}-{VERSION}"
    if (saved / "tokenizer_config.json").exists():
        return AutoTokenizer.from_pretrained(saved)
    tok = AutoTokenizer.from_pretrained(where, gguf_file=f"ggml-vocab-{name}.gguf")
    backend = tok.backend_tokenizer
    if name == "llama-spm":
        backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        backend.pre_tokenizer = None
    if name == "llama-bpe":
        backend.model.ignore_merges = True
    tok.save_pretrained(saved)
    return AutoTokenizer.from_pretrained(saved)


def llama_cpp_cases(name: str) -> list[tuple[str, list[int]]]:
    """llama.cpp's token-id tests of a vocabulary: (text, ids) pairs."""
    where = require_vocab()
    texts = (where / f"ggml-vocab-{name}.gguf.inp").read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")
    outs = (where / f"ggml-vocab-{name}.gguf.out").read_text(encoding="utf-8").split("\n")
    return [(t, [int(x) for x in o.split()]) for t, o in zip(texts, outs)]
