"""Run every benchmark in this folder, one after another, and print all their output.

    python tests/benchmarks/run_all.py            # short mode (what CI runs)
    python tests/benchmarks/run_all.py --full     # the full-sized runs

``--short`` needs neither a browser nor llama.cpp's ``llama-server``; ``--full`` adds the DOM
latency in JupyterLab (Debian's chromium) and, when it is built
(``scripts/build_llama_server.sh``), ``llama-server`` to the tokens/s comparison.

Each ``bench_*.py`` runs in its own process (so one benchmark's imports and threads do not
colour the next). A benchmark that fails is reported and the rest still run; the exit status
is non-zero if any failed. Benchmarks print figures; nothing here judges them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description="run all benchmarks")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--short", action="store_true", help="small CI-sized runs (default)")
    mode.add_argument("--full", action="store_true", help="full-sized runs")
    parser.add_argument("names", nargs="*", help="only these (e.g. stream_throughput)")
    args = parser.parse_args()
    flag = "--full" if args.full else "--short"
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.names]
    failed: list[str] = []
    started_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(
        f"benchmarks {flag} at {started_at}, load average "
        f"{os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan'):.1f} on "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    for script in scripts:
        print(f"\n### {script.name} {flag}", flush=True)
        started = time.monotonic()
        result = subprocess.run([sys.executable, str(script), flag], cwd=HERE.parent.parent)
        took = time.monotonic() - started
        if result.returncode:
            failed.append(script.name)
            print(
                f"### {script.name} FAILED (exit {result.returncode}) after {took:.0f} s",
                flush=True,
            )
        else:
            print(f"### {script.name} done in {took:.0f} s", flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average at the end: {load:.1f} on {os.cpu_count()} CPUs")
    print(
        f"{len(scripts) - len(failed)} of {len(scripts)} benchmarks ran"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
