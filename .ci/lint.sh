#!/usr/bin/env bash
# Lint and format on the library, tests, examples, benchmarks and docs; types on the library (called from .ci/run,
# inside its venv): zero findings, with the rule sets written down in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
pip install -q -e ".[lint]"
ruff check vlens tests examples benchmarks docs
ruff format --check vlens tests examples benchmarks docs
# Types: the library is pyright-clean (basic mode, pyproject.toml); tests/, examples/ and
# benchmarks/ are not yet (204 findings) and join when they are.
pyright --pythonpath "$(command -v python)" vlens
