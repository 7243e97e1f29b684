"""Fetch the real tokenizer vocabularies the tests use (llama.cpp's vocab-only GGUF files).

    python tests/fetch_vocabs.py [DIR]        # default $VLENS_VOCAB_DIR or ~/.cache/vlens/vocab

llama.cpp ships vocab-only GGUF files of real tokenizers with its source, each beside its
token-id tests (`.inp` texts, `.out` ids); the `llama-cpp-python` source distribution on PyPI
vendors them. This downloads that sdist (pinned, checked against its sha256), extracts

    ggml-vocab-qwen2.gguf      Qwen2's byte-level BPE (151,936 ids): LLaVA-OneVision, Qwen2-VL/2.5-VL, InternVL3
    ggml-vocab-llama-spm.gguf  Llama 2's SentencePiece (32,000 ids): Vicuna — Video-LLaVA, LLaVA-NeXT-Video
    ggml-vocab-llama-bpe.gguf  Llama 3's BPE (128,256 ids): PerceptionLM

with their `.inp/.out` files, and stops. Only the standard library and pip are needed; the tests
turn each file into the HF tokenizer (`AutoTokenizer.from_pretrained(dir, gguf_file=...)`, needs
`gguf`) once and keep it in DIR/hf-<name>. CI runs this before the tests (.ci/run), cached.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SDIST = "llama-cpp-python==0.3.36"
SDIST_FILE = "llama_cpp_python-0.3.36.tar.gz"
SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
NAMES = ("qwen2", "llama-spm", "llama-bpe")
FILES = [f"ggml-vocab-{n}.gguf{ext}" for n in NAMES for ext in ("", ".inp", ".out")]


def vocab_dir() -> Path:
    return Path(os.environ.get("VLENS_VOCAB_DIR") or Path.home() / ".cache" / "vlens" / "vocab")


def fetch(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    if all((dest / f).exists() for f in FILES):
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", SDIST, "-d", tmp]
        subprocess.run(cmd, check=True)
        sdist = Path(tmp) / SDIST_FILE
        digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
        if digest != SHA256:
            raise SystemExit(f"{SDIST_FILE}: sha256 {digest}, expected {SHA256}; not using it")
        with tarfile.open(sdist) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if name in FILES and "/vendor/llama.cpp/models/" in member.name:
                    data = tar.extractfile(member)
                    assert data is not None
                    (dest / name).write_bytes(data.read())
    missing = [f for f in FILES if not (dest / f).exists()]
    if missing:
        raise SystemExit(f"{SDIST_FILE} did not hold {missing}")
    return dest


if __name__ == "__main__":
    print(fetch(Path(sys.argv[1]) if len(sys.argv) > 1 else vocab_dir()))
