#!/usr/bin/env bash
# Lint, format and types on the library, tests, examples and benchmarks (called from .ci/run,
# inside its venv): zero findings, with the rule sets written down in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
pip install -q -e ".[lint]"
ruff check vlens tests examples benchmarks docs
ruff format --check vlens tests examples benchmarks docs
