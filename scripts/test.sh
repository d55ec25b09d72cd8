#!/usr/bin/env bash
# One command to set up and run every check: ruff, mypy, the pytest suite (real servers,
# a real kernel, the real local model, Debian's chromium) and the benchmarks in short mode.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
bash scripts/versions.sh
.venv/bin/ruff format --check .
.venv/bin/ruff check jupyter_complete tests scripts
.venv/bin/mypy
.venv/bin/python -m pytest -q -rs -p no:cacheprovider "$@"
.venv/bin/python tests/benchmarks/run_all.py --short
