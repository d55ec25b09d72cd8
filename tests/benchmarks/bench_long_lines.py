"""Cost of one long event-stream line: our parser against sseclient-py (when installed).

An event line that never ends was quadratic in sseclient-py (it re-scans its whole buffer for
every chunk): 16/32/64 MiB took 1.3/4.0/16.2 s. `EventStreamParser` scans each byte once.
Both are fed the same line in 64 KiB pieces; the table gives seconds per size and the ratio
of the largest size's time to the smallest's (linear: about the size ratio, quadratic: its
square).

    python tests/benchmarks/bench_long_lines.py [--full]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from _bench import banner, interleaved, median, parse_mode, table

from jupyter_complete.sse import EventStreamParser

PIECE = b"x" * 65536


def ours(size: int) -> float:
    parser = EventStreamParser(max_line=size + 100, max_event=size + 100)
    start = time.perf_counter()
    parser.feed(b"data: ")
    for _ in range(size // len(PIECE)):
        parser.feed(PIECE)
    events = parser.feed(b"\n\n")
    assert len(events) == 1
    return time.perf_counter() - start


def sseclient_py(size: int) -> float:
    from sseclient import SSEClient

    def source() -> Iterator[bytes]:
        yield b"data: "
        for _ in range(size // len(PIECE)):
            yield PIECE
        yield b"\n\n"

    start = time.perf_counter()
    got = list(SSEClient(source()).events())
    assert len(got) == 1
    return time.perf_counter() - start


def main() -> None:
    args = parse_mode(__doc__ or "")
    banner("one long event-stream line, fed in 64 KiB pieces", args)
    sizes = [2 << 20, 4 << 20, 8 << 20] if args.short else [16 << 20, 32 << 20, 64 << 20]
    contenders: dict[str, Callable[[int], float]] = {"EventStreamParser": ours}
    try:
        import sseclient  # noqa: F401

        contenders["sseclient-py"] = sseclient_py
    except ImportError:
        print("(sseclient-py is not installed: only our parser is measured)")
    rows = []
    for name, fn in contenders.items():
        times = []
        for size in sizes:
            runs = interleaved({name: lambda size=size, fn=fn: fn(size)}, args.rounds)
            times.append(median(runs[name]))
        rows.append([name, *(f"{t:.3f}" for t in times), f"{times[-1] / times[0]:.1f}x"])
    headers = [
        "parser",
        *(f"{s >> 20} MiB (s)" for s in sizes),
        f"time ratio {sizes[-1] // sizes[0]}x size",
    ]
    print(table(headers, rows))


if __name__ == "__main__":
    main()
