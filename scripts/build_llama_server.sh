#!/usr/bin/env bash
# Build llama.cpp's `llama-server` from the llama.cpp sources that llama-cpp-python vendors in
# its sdist on PyPI (the same llama.cpp our built-in model runs on), and cache the binary
# outside the repository:
#     ~/.cache/jupyter_complete/llama-server/<llama-cpp-python version>/llama-server
# Idempotent: when the cached binary exists this takes well under a second. Prints the path.
#   bash scripts/build_llama_server.sh            # version of llama-cpp-python in ./.venv
#   LLAMA_CPP_PYTHON_VERSION=0.3.36 bash scripts/build_llama_server.sh
# Environment: JUPYTER_COMPLETE_CACHE (default ~/.cache/jupyter_complete),
#   BUILD_JOBS (default 2). Needs cmake, g++ and pip's network access to PyPI (or its mirror).
# Nothing from llama.cpp is written into this repository.
set -euo pipefail
cd "$(dirname "$0")/.."

py=.venv/bin/python
[ -x "$py" ] || py=python3
version="${LLAMA_CPP_PYTHON_VERSION:-}"
if [ -z "$version" ]; then
  version="$("$py" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))')"
fi
cache="${JUPYTER_COMPLETE_CACHE:-$HOME/.cache/jupyter_complete}/llama-server/$version"
binary="$cache/llama-server"
if [ -x "$binary" ]; then
  echo "$binary"
  exit 0
fi

# The sources and build tree live next to the binary while it is built, so an interrupted
# build resumes where it stopped; they are removed once the binary is in place.
work="$cache/build"
mkdir -p "$work"
echo "building llama-server from llama-cpp-python $version's vendored llama.cpp (several minutes)" >&2
if [ ! -d "$work/llama_cpp_python-$version" ]; then
  "$py" -m pip download -q --no-binary :all: --no-deps -d "$work" "llama-cpp-python==$version" >&2
  tar -xzf "$work"/llama_cpp_python-"$version".tar.gz -C "$work"
fi
src="$work/llama_cpp_python-$version/vendor/llama.cpp"
# A static, self-contained binary: no web UI (nothing fetched at build time), no HTTPS, no
# tests or examples. LLAMA_CURL is deprecated in this llama.cpp (downloads are off anyway
# without it), so it is not passed.
cmake -S "$src" -B "$work/build" -G "Unix Makefiles" \
  -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
  -DLLAMA_BUILD_TOOLS=ON >"$work/cmake.log" 2>&1 || { cat "$work/cmake.log" >&2; exit 1; }
nice -n 10 cmake --build "$work/build" --target llama-server -j "${BUILD_JOBS:-2}" \
  >"$work/build.log" 2>&1 || { tail -50 "$work/build.log" >&2; exit 1; }
built="$(find "$work/build" -type f -name llama-server -perm -u+x | head -1)"
[ -n "$built" ] || { echo "llama-server not found after the build" >&2; exit 1; }
cp "$built" "$binary.tmp"
mv "$binary.tmp" "$binary"
rm -rf "$work"
echo "$binary"
