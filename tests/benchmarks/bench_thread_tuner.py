"""The thread tuner's choice vs fixed thread counts, idle and beside other CPU work.

    python tests/benchmarks/bench_thread_tuner.py [--short | --full] [--rounds N]

Three `LocalModel`s on the same GGUF (SmolLM2-135M-Instruct), in this process: one with its
`ThreadTuner` (the default; it lives on from scenario to scenario, as in a long-running
kernel), one pinned to 1 thread and one to every CPU (``T``). Each run primes the same
chat-templated prompt (cached after the first) and generates greedily with ``advance``,
the server's own path, until ``TOKENS`` tokens or ``LIMIT`` seconds (a stalled count cannot
hold the run up). Rate = tokens / seconds. Contenders are interleaved round by round.

Scenarios, one after another, with CPU burners (``while True: pass``) this script starts
and kills:

* idle: no burner (the machine's other work only);
* ``nice 19`` x 1 and x T: niced jobs. They yield their CPU to ours, but not at once: the
  load average counts them (and once kept the tuner at 1 thread), `OtherWork` does not, so
  only the measured token times decide;
* ``nice +0`` x 1 and x T: jobs at our own priority. Threads that lose their CPU stall
  llama.cpp's barriers; 1 thread is faster.

In ``--full``, a second table: 1 thread, T threads and T threads with
``OMP_WAIT_POLICY=PASSIVE`` (llama-cpp-python's build uses OpenMP: ``llama_print_system_info``
says ``OPENMP = 1``), idle and beside one ``nice +0`` burner, each run in a fresh process.

Printed per scenario: tokens/s (median), the tuner's rate against each fixed count and the
old default (half the CPUs), the share of its tokens at each count, and what it saw
(`OtherWork`: CPUs busy with others' un-niced work; the 1-minute load average). Prints
figures and ratios; never fails on a number.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _bench import banner, interleaved, median, parse_mode, table  # noqa: E402

PROMPT = "\n\nHuman: Write a long story about a dragon who learns to bake bread.\n\nAssistant:"
LIMIT = 8.0
# Busy in user space only (a niced job's kernel time counts as un-niced in /proc/stat), and
# gone within ~0.1 s of this script, even if it is killed before it can kill them.
BURNER = (
    "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n"
    "    for _ in range(2_000_000):\n        pass"
)


@contextmanager
def burners(count: int, nice: int) -> Iterator[None]:
    """``count`` busy-looping processes at ``nice`` above this one's priority."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", BURNER],
            preexec_fn=(lambda: os.nice(nice)) if nice else None,  # noqa: PLW1509
        )
        for _ in range(count)
    ]
    try:
        time.sleep(1.0 if count else 0.0)  # let them take their CPUs
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def generate(model: Any, prompt: list[int], tokens: int, used: Counter[int]) -> float:
    """Greedy tokens through ``advance``; tokens/s. ``used`` counts the threads per token."""
    import numpy as np

    with model.lock:
        started = time.perf_counter()
        logits = model.prime(prompt)
        made = 0
        while made < tokens and time.perf_counter() - started < LIMIT:
            token = int(np.argmax(logits))
            if model.is_end(token):
                token = prompt[-1]  # keep going: the rate is what is measured
            logits = model.advance(token)
            used[model.n_threads] += 1
            made += 1
        return made / (time.perf_counter() - started)


# One run in a fresh process, so OpenMP reads its environment before llama.cpp starts it.
ONE_RUN = """
import sys
from collections import Counter
sys.path.insert(0, sys.argv[1])
from bench_thread_tuner import PROMPT, generate
from jupyter_complete.local import LocalModel
from jupyter_complete.prompt import parse
model = LocalModel(n_ctx=1024, n_threads=int(sys.argv[2]))
prompt = model.apply_chat_template(parse(PROMPT))
generate(model, prompt, 8, Counter())  # the prompt into the cache
print(generate(model, prompt, int(sys.argv[3]), Counter()))
"""


def wait_policies(cpus: int, tokens: int, rounds: int) -> None:
    """Whether OpenMP's passive wait policy removes the stall of every CPU under load."""

    def run(threads: int, env: dict[str, str]) -> Callable[[], float]:
        here = str(Path(__file__).resolve().parent)
        argv = [sys.executable, "-c", ONE_RUN, here, str(threads), str(tokens)]
        merged = {**os.environ, **env}
        return lambda: float(
            subprocess.run(
                argv, env=merged, capture_output=True, text=True, check=True
            ).stdout.split()[-1]
        )

    contenders = {
        "1 thread": run(1, {}),
        f"{cpus} threads (spin: OpenMP's default)": run(cpus, {}),
        f"{cpus} threads, OMP_WAIT_POLICY=PASSIVE": run(cpus, {"OMP_WAIT_POLICY": "PASSIVE"}),
    }
    rows = []
    for name, count in (("idle", 0), ("nice +0 x 1", 1)):
        with burners(count, 0):
            rates = {key: median(runs) for key, runs in interleaved(contenders, rounds).items()}
        spin = list(rates.values())[1]
        rows.append(
            [
                name,
                *(f"{rate:.1f}" for rate in rates.values()),
                f"{list(rates.values())[2] / spin:.2f}",
            ]
        )
    print(f"OpenMP wait policy, {tokens} tokens a run, tokens/s (median), fresh process each run:")
    print(table(["scenario", *contenders, "passive / spin"], rows))


def main() -> int:
    args = parse_mode("the thread tuner's choice vs fixed counts, beside niced and other work")
    try:
        from jupyter_complete.local import LocalModel
        from jupyter_complete.local.threads import OtherWork, available_cpus
        from jupyter_complete.prompt import parse

        tuned = LocalModel(n_ctx=1024)
    except Exception as err:  # noqa: BLE001 - any missing piece means: not installed
        print(f"skipped: the [local] extra is not installed ({err})")
        return 0
    cpus = available_cpus()
    half = max(1, cpus // 2)
    fixed = {n: LocalModel(n_ctx=1024, n_threads=n) for n in sorted({1, half, cpus})}
    tokens = 64 if args.short else 160
    banner(f"thread tuner vs fixed counts, {tokens} tokens a run, {cpus} CPUs", args)
    prompt = tuned.apply_chat_template(parse(PROMPT))
    scenarios = [("idle", 0, 0), ("nice 19 x 1", 1, 19), (f"nice 19 x {cpus}", cpus, 19)]
    scenarios.append(("nice +0 x 1", 1, 0))
    if not args.short:
        scenarios.append((f"nice +0 x {cpus}", cpus, 0))
    others = OtherWork()
    rows = []
    for name, count, nice in scenarios:
        used: Counter[int] = Counter()
        contenders: dict[str, Callable[[], float]] = {
            "tuned": lambda used=used: generate(tuned, prompt, tokens, used),  # type: ignore[misc]
            **{
                f"{n} thread{'s' * (n > 1)}": (
                    lambda m=m: generate(m, prompt, tokens, Counter())  # type: ignore[misc]
                )
                for n, m in fixed.items()
            },
        }
        with burners(count, nice):
            others()
            results = interleaved(contenders, args.rounds)
            seen, load = others(), os.getloadavg()[0]
        rates = {key: median(runs) for key, runs in results.items()}
        share = ", ".join(f"{n}: {used[n] / sum(used.values()):.0%}" for n in sorted(used))
        rows.append(
            [
                name,
                *(f"{rate:.1f}" for rate in rates.values()),
                *(f"{rates['tuned'] / rates[key]:.2f}" for key in list(rates)[1:]),
                share,
                "?" if seen is None else f"{seen:.1f}",
                f"{load:.1f}",
            ]
        )
        header_rates = [f"{key} tok/s" for key in rates]
        header_ratios = [f"tuned / {key}" for key in list(rates)[1:]]
    print(
        table(
            ["scenario", *header_rates, *header_ratios, "tuned used", "others' CPUs", "load avg"],
            rows,
        )
    )
    print(f"old default = {half} thread{'s' * (half > 1)} (half the CPUs); goal: tuned > 1.3x it")
    for model in (tuned, *fixed.values()):
        model.close()
    if not args.short and cpus > 1:
        wait_policies(cpus, tokens, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
