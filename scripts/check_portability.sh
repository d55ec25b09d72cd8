#!/usr/bin/env bash
# Prove the test suite does not depend on one build of llama.cpp or on test order.
#
#   bash scripts/check_portability.sh            # variants A, B and C, one after another
#   bash scripts/check_portability.sh B          # one variant (A, B or C; several may be named)
#   bash scripts/check_portability.sh --build A B  # only build (or reuse) the variant wheels
#
# Each variant clones the current commit (HEAD; uncommitted changes are NOT tested) into a
# temporary directory, gives it its own .venv (the repository's own venv is never touched) and
# runs `bash scripts/test.sh` there: setup, ruff, mypy, the whole pytest suite, short benchmarks.
#
#   A  llama-cpp-python built with CMAKE_ARGS="-DGGML_NATIVE=OFF": generic x86-64 kernels
#      instead of -march=native.
#   B  as A, with AVX2, FMA, F16C and BMI2 turned off too, so ggml's AVX2/FMA kernels (the ones
#      most machines run) are not compiled at all: float sums are accumulated differently and
#      near-ties in the model's logits may flip.
#   C  the normal build, with the test order shuffled by pytest-random-order (`--random-order`:
#      modules in a random order, and the tests within each; the seed is printed so a failure
#      can be replayed with JC_RANDOM_ORDER_SEED=N or `pytest --random-order-seed=N`). Without
#      the option the suite's order is unchanged.
#
# pip's wheel cache would silently hand back the normally built llama-cpp-python, so A and B
# are built with --no-cache-dir --no-binary llama-cpp-python into a wheelhouse of their own,
# $JC_WHEEL_CACHE/<variant>/ (default ~/.cache/jupyter_complete/wheels), reused on later runs
# while the CMAKE_ARGS recorded beside the wheel are unchanged. Every run prints what the
# installed llama.cpp was compiled with (llama_print_system_info) and fails if a variant's
# build does not show the features it must lack. Builds run under `nice -n 10`.
# Logs and timings go to $JC_PORTABILITY_LOGS (default ~/.cache/jupyter_complete/portability).
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
wheel_cache="${JC_WHEEL_CACHE:-$HOME/.cache/jupyter_complete/wheels}"
log_dir="${JC_PORTABILITY_LOGS:-$HOME/.cache/jupyter_complete/portability}"
python="${PYTHON:-python3}"
mkdir -p "$wheel_cache" "$log_dir"

build_only=0
variants=()
for arg in "$@"; do
  case "$arg" in
    --build) build_only=1 ;;
    A|B|C) variants+=("$arg") ;;
    *) echo "check_portability.sh: unknown argument '$arg'; use A, B, C or --build" >&2; exit 2 ;;
  esac
done
[ ${#variants[@]} -gt 0 ] || variants=(A B C)

cmake_args_for() {
  case "$1" in
    A) echo "-DGGML_NATIVE=OFF" ;;
    B) echo "-DGGML_NATIVE=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF -DGGML_BMI2=OFF" ;;
    C) echo "" ;;  # the normal build, as scripts/setup.sh makes it
  esac
}

# The llama-cpp-python requirement exactly as the package's `local` extra states it.
llama_requirement() {
  "$python" - "$here/pyproject.toml" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    extra = tomllib.load(f)["project"]["optional-dependencies"]["local"]
print(next(r for r in extra if r.replace("_", "-").lower().startswith("llama-cpp-python")))
PY
}

# Build (or reuse) the variant's wheel; prints the wheel's path on stdout.
variant_wheel() {
  local variant="$1" args house wheel
  args="$(cmake_args_for "$variant")"
  house="$wheel_cache/$variant"
  # One build per variant at a time: a second invocation waits for the first's wheel.
  exec 9>"$wheel_cache/$variant.lock"
  flock 9
  if [ -f "$house/cmake_args.txt" ] && [ "$(cat "$house/cmake_args.txt")" = "$args" ]; then
    wheel="$(ls "$house"/llama_cpp_python-*.whl 2>/dev/null | head -n 1 || true)"
    if [ -n "$wheel" ]; then
      echo "variant $variant: reusing $wheel (CMAKE_ARGS=\"$args\")" >&2
      echo "$wheel"
      exec 9>&-
      return
    fi
  fi
  rm -rf "$house"
  mkdir -p "$house"
  local req start
  req="$(llama_requirement)"
  echo "variant $variant: building '$req' with CMAKE_ARGS=\"$args\" (several minutes)..." >&2
  start=$(date +%s)
  CMAKE_ARGS="$args" nice -n 10 "$python" -m pip wheel --no-cache-dir --no-deps \
    --no-binary llama-cpp-python -w "$house" "$req" >"$log_dir/build-$variant.log" 2>&1 || {
      echo "variant $variant: build failed, see $log_dir/build-$variant.log" >&2; exit 1; }
  echo "$args" >"$house/cmake_args.txt"
  wheel="$(ls "$house"/llama_cpp_python-*.whl | head -n 1)"
  echo "variant $variant: built $wheel in $(( $(date +%s) - start ))s" >&2
  echo "$wheel"
  exec 9>&-
}

# What the llama.cpp in a venv was compiled with; fails when a variant shows a feature it
# must not have, or when the installed libraries are not the variant wheel's (the proof that
# the rebuild really happened and is the one being tested).
check_build() {
  local variant="$1" venv_python="$2" wheel="$3" info
  info="$("$venv_python" -c 'import llama_cpp; print(llama_cpp.__version__, llama_cpp.__file__); print(llama_cpp.llama_print_system_info().decode())')"
  echo "variant $variant: llama.cpp system info:"
  echo "$info" | sed 's/^/    /'
  if [ -n "$wheel" ]; then
    "$venv_python" - "$wheel" <<'PY'
import hashlib, sys, zipfile
from pathlib import Path

import llama_cpp

site = Path(llama_cpp.__file__).resolve().parent.parent
with zipfile.ZipFile(sys.argv[1]) as wheel:
    libs = [n for n in wheel.namelist() if ".so" in Path(n).name]
    for name in libs:
        ours = hashlib.sha256(wheel.read(name)).hexdigest()
        path = site / name
        theirs = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "missing"
        if ours != theirs:
            sys.exit(f"    {name}: installed {theirs[:12]} is not the variant wheel's {ours[:12]}")
print(f"    {len(libs)} shared libraries installed are byte for byte the variant wheel's "
      f"({Path(sys.argv[1]).name})")
PY
  fi
  case "$variant" in
    A|B) if echo "$info" | grep -q "AVX512 = 1"; then
           echo "variant $variant: AVX512 compiled in, so this is not a GGML_NATIVE=OFF build" >&2; exit 1
         fi ;;
  esac
  if [ "$variant" = B ]; then
    for feature in AVX2 FMA F16C; do
      if echo "$info" | grep -q "$feature = 1"; then
        echo "variant B: $feature is compiled in; the rebuild did not take effect" >&2; exit 1
      fi
    done
  fi
}

commit="$(git -C "$here" rev-parse HEAD)"
if [ -n "$(git -C "$here" status --porcelain --untracked-files=no)" ]; then
  echo "check_portability.sh: uncommitted changes are not tested; checking $commit" >&2
fi

if [ "$build_only" = 1 ]; then
  for variant in "${variants[@]}"; do
    [ "$variant" = C ] || variant_wheel "$variant" >/dev/null
  done
  exit 0
fi

summary=()
failed=0
for variant in "${variants[@]}"; do
  wheel=""
  [ "$variant" = C ] || wheel="$(variant_wheel "$variant")"
  work="$(mktemp -d "${TMPDIR:-/tmp}/jc-portability-$variant.XXXXXX")"
  git clone --quiet --no-checkout "$(git -C "$here" rev-parse --path-format=absolute --git-common-dir)" "$work/repo"
  git -C "$work/repo" checkout --quiet --detach "$commit"
  "$python" -m venv "$work/repo/.venv"
  vpy="$work/repo/.venv/bin/python"
  "$vpy" -m pip install -q --upgrade pip
  if [ -n "$wheel" ]; then
    # Installed first with --no-deps; setup.sh's `pip install -e .[local,test]` then keeps it,
    # since it satisfies the requirement, and adds its dependencies.
    "$vpy" -m pip install -q --no-deps "$wheel"
  fi
  pytest_args=()
  if [ "$variant" = C ]; then
    # pytest -q hides the plugin's header, so the seed is chosen and printed here.
    seed="${JC_RANDOM_ORDER_SEED:-$(( RANDOM * 32768 + RANDOM ))}"
    echo "variant C: test order seed $seed (replay: JC_RANDOM_ORDER_SEED=$seed, or pytest" \
      "--random-order-seed=$seed)"
    pytest_args=(--random-order --random-order-seed="$seed")
  fi
  log="$log_dir/run-$variant.log"
  echo "variant $variant: running scripts/test.sh ${pytest_args[*]:-} in $work/repo (log: $log)"
  start=$(date +%s)
  rc=0
  # (set -e does not reach into a subshell whose status is tested: hence the && chain.)
  (
    cd "$work/repo" && bash scripts/setup.sh test && check_build "$variant" "$vpy" "$wheel" \
      && bash scripts/test.sh "${pytest_args[@]}"
  ) >"$log" 2>&1 || rc=$?
  took=$(( $(date +%s) - start ))
  # What was built and the pytest summary line, from the log.
  grep -E "system info|^    (CPU|[0-9])|^[0-9]+ (passed|failed)|^=+ .*(passed|failed)" "$log" \
    | head -n 20 || true
  summary+=("variant $variant: rc=$rc in ${took}s ($(( took / 60 )) min) commit $commit")
  if [ "$rc" = 0 ]; then
    rm -rf "$work"
  else
    failed=1
    echo "variant $variant: FAILED (rc=$rc); its clone is kept at $work, log at $log"
  fi
done
printf '%s\n' "${summary[@]}"
exit "$failed"
