"""Shared pieces of the benchmark scripts: the --short/--full switch, interleaved rounds and
plain-text tables. Benchmarks print figures; they never assert timings."""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def parse_mode(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--short", action="store_true", help="the small CI-sized run (default)")
    mode.add_argument("--full", action="store_true", help="the full-sized run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="how many times each contender runs (default: 3 short, 5 full)",
    )
    args = parser.parse_args()
    args.short = not args.full
    if args.rounds is None:
        args.rounds = 3 if args.short else 5
    return args


def interleaved(contenders: dict[str, Callable[[], T]], rounds: int) -> dict[str, list[T]]:
    """Run every contender once per round, rotating the order each round.

    Load from other processes on a shared machine comes and goes; running the contenders side
    by side, in a changing order, spreads it over all of them instead of one.
    """
    names = list(contenders)
    results: dict[str, list[T]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            gc.collect()  # garbage from the previous contender is not this one's cost
            results[name].append(contenders[name]())
    return results


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def banner(title: str, args: argparse.Namespace) -> None:
    mode = "short" if args.short else "full"
    print(
        f"== {title} ({mode} mode, {args.rounds} rounds, Python {platform.python_version()}, "
        f"{platform.machine()}) =="
    )
    sys.stdout.flush()


def start_server(script: str, key: str, tree: Path) -> tuple[subprocess.Popen[str], int]:
    """Run a server ``script`` with ``tree``'s package; the process and the port it printed.

    The script gets ``key`` as its argument, prints its URL on the first line, and serves
    until its stdin closes.
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", script, key],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tree)},
        cwd=tree,
    )
    try:
        assert proc.stdout is not None
        return proc, int(proc.stdout.readline().strip().rsplit(":", 1)[1])
    except BaseException:
        proc.kill()
        proc.wait(5)
        raise
