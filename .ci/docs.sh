#!/usr/bin/env bash
# CI for the docs site, the tutorials and the attention viewer (called from .ci/run, inside its venv):
#   1. a browser for the viewer test: Debian's chromium (playwright drives it; no browser download);
#   2. the docs extras (mkdocs, material, mkdocstrings, jupytext, playwright);
#   3. every tutorial executed on the model organism, its page rendered with the outputs;
#   4. the viewer in headless chromium, refreshing docs/img/viewer.png; the tutorial pages in sync;
#      then every example under examples/ run as a user would;
#   5. mkdocs build --strict (every page and docstring reference resolves).
# About 10-13 minutes on 2 CPU cores: the tutorials, the examples and the apt install.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
            || echo "docs.sh: installing chromium failed: the browser test will skip" >&2
    else
        echo "docs.sh: no chromium and no apt-get as root: the browser test will skip" >&2
    fi
fi
pip install -q -e ".[docs]"
export NO_MKDOCS_2_WARNING=1
python docs/render_tutorials.py
VLENS_DOCS_IMG=1 python -m pytest -q -p no:cacheprovider tests/test_view_browser.py tests/test_tutorials.py -m "not slow"
# every example, as a user runs it (each builds its tiny checkpoint or uses the organism; about 5
# minutes together on 2 cores), in a scratch folder so their outputs stay out of the checkout
examples_dir="$PWD/examples"
scratch="$(mktemp -d)"
for example in "$examples_dir"/*.py; do
    echo "example: $(basename "$example")"
    # quiet unless it fails (progress bars go to stderr): then its stderr is shown
    (cd "$scratch" && python "$example" >/dev/null 2>"$scratch/stderr.log") || { cat "$scratch/stderr.log" >&2; exit 1; }
done
rm -rf "$scratch"
mkdocs build --strict -d "${DOCS_SITE_DIR:-site}"
