#!/usr/bin/env bash
# Set up everything jupyter_complete needs on a fresh Debian machine, idempotently:
#   bash scripts/setup.sh          # the package with the built-in model and JupyterLab
#   bash scripts/setup.sh test     # ... plus the test and dev tools and Debian's chromium
# Everything goes into ./.venv (created with the python3 on PATH, 3.10+).
# llama-cpp-python compiles from source the first time (about 7 minutes on 2 cores);
# pip caches the built wheel, so later runs take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-run}"

need_apt=()
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
if [ "$mode" = test ] && [ ! -x /usr/bin/chromium ]; then need_apt+=(chromium); fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
if [ "$mode" = test ]; then
  .venv/bin/python -m pip install -q -e ".[local,plot,notebook,test,dev]"
  # The current official SDK (Messages only) as a second peer of the local server. It
  # cannot share .venv with anthropic<1, which the Text Completions peer tests need, so it
  # goes into its own directory; tests/test_local_messages.py runs it with PYTHONPATH there.
  # Bounded to the major line the tests were written and run against (2.12 to 2.14): raise
  # the bound after running the suite with the next major.
  .venv/bin/python -m pip install -q --upgrade --target .peer/anthropic-current \
    "anthropic>=2.12,<3"
  # The second real engine for the --upstream tests and benchmark (llama-cpp-python's
  # OpenAI server comes with the test extra): llama.cpp's llama-server, built once from the
  # llama.cpp that llama-cpp-python vendors and cached outside the repository (5-10 minutes
  # the first time, seconds after).
  bash scripts/build_llama_server.sh
else
  .venv/bin/python -m pip install -q -e ".[local,plot,notebook]"
fi
