#!/usr/bin/env bash
# The main job: set up .venv (bash scripts/setup.sh), then open the quickstart notebook.
#   bash scripts/run.sh              # JupyterLab on notebooks/01-quickstart.ipynb
#   bash scripts/run.sh --headless   # run the quickstart in a kernel and print its answers
# Extra arguments go to `jupyter lab` (e.g. --port 8899 --no-browser).
# No key is needed: with no ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL the built-in model answers
# (--headless removes both from the kernel's environment, so it always uses the built-in one).
set -euo pipefail
cd "$(dirname "$0")/.."

headless=0
args=()
for arg in "$@"; do
  if [ "$arg" = --headless ]; then headless=1; else args+=("$arg"); fi
done

bash scripts/setup.sh

if [ "$headless" = 1 ]; then
  exec .venv/bin/python scripts/run_notebook.py notebooks/01-quickstart.ipynb
fi

# JupyterLab refuses to run as root unless told to.
if [ "$(id -u)" = 0 ]; then args+=(--allow-root); fi
exec .venv/bin/jupyter lab notebooks/01-quickstart.ipynb "${args[@]}"
