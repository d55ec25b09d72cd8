"""What ``%%complete`` costs on IOPub, and what ``%load_ext jupyter_complete`` costs.

    python tests/benchmarks/bench_iopub.py            # short (CI)
    python tests/benchmarks/bench_iopub.py --full

A real kernel runs ``%%complete`` against the replay server (scripted SSE on loopback). A
separate ZeroMQ SUB socket on the kernel's IOPub port counts every message sent for the cell
and sums its frames, so the figures are what crossed the wire, headers and signatures
included. Jupyter's default limits are 1000 messages/s and 1 MB/s.

``%load_ext`` is timed inside fresh kernels (the import is cold in each), with the kernel's own
clock around ``run_line_magic("load_ext", ...)``.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: the fixtures

from _bench import banner, parse_mode, table  # noqa: E402
from fixtures_kernel import FAKE_KEY, KernelHandle, kernel_env, running_kernel  # noqa: E402
from fixtures_replay import (  # noqa: E402
    LAST_CHUNK,
    ReplayServer,
    Script,
    Sleep,
    chunk,
    completion_event,
    final_event,
    head,
)


def long_stream(n: int, pause_every: int = 0, pause: float = 0.0) -> tuple[Script, str]:
    """``n`` completion events of one short word each, optionally paced in bursts."""
    words = [f" tok{i % 97}" for i in range(n)]
    steps: list = [head(chunked=True)]
    for i, word in enumerate(words):
        steps.append(chunk(completion_event(word)))
        if pause_every and i % pause_every == pause_every - 1:
            steps.append(Sleep(pause))
    steps += [chunk(final_event("max_tokens")), LAST_CHUNK]
    return Script(steps), "".join(words)


def measure(
    kernel: KernelHandle, replay: ReplayServer, script: Script, text: str, options: str = ""
) -> dict[str, float]:
    replay.enqueue(script)
    run = kernel.execute(f"%%complete --base-url {replay.url} {options}\nCount.", timeout=300)
    if run.status != "ok":
        raise RuntimeError(run.error_text)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        records = kernel.sniffer.for_parent(run.msg_id)
        if any(r.msg_type == "status" and b'"idle"' in r.raw for r in records):
            break
        time.sleep(0.02)
    kinds = Counter(r.msg_type for r in records)
    streams = [r for r in records if r.msg_type == "stream"]
    start = min(r.received for r in records)
    duration = max(r.received for r in streams) - start
    text_bytes = len(text.encode())
    wire = sum(r.nbytes for r in records)
    return {
        "text_bytes": text_bytes,
        "messages": len(records),
        "stream_messages": kinds["stream"],
        "wire_bytes": wire,
        "ratio": wire / text_bytes,
        "duration": duration,
        "stream_rate": kinds["stream"] / max(duration, 1e-9),
        "bytes_rate": wire / max(duration, 1e-9),
    }


def load_ext_time(env: dict[str, str]) -> float:
    with running_kernel(env) as fresh:
        run = fresh.execute(
            "import time as _t, json as _j\n"
            "_s = _t.perf_counter()\n"
            "get_ipython().run_line_magic('load_ext', 'jupyter_complete')\n"
            "print(_j.dumps(_t.perf_counter() - _s))"
        )
        return float(json.loads(run.stream_text()))


def main() -> None:
    args = parse_mode(__doc__.splitlines()[0])
    banner("IOPub traffic of %%complete and the %load_ext time", args)
    n = 5000 if args.short else 50_000
    scenarios = {
        f"{n} events, burst": (long_stream(n), ""),
        f"{n} events, paced ~1 s": (long_stream(n, pause_every=n // 50, pause=0.02), ""),
        f"{n} events, burst, --format markdown": (long_stream(n), "--format markdown"),
    }
    replay = ReplayServer()
    rows = []
    with running_kernel(kernel_env({"ANTHROPIC_API_KEY": FAKE_KEY})) as kernel:
        kernel.execute("%load_ext jupyter_complete")
        for name, ((script, text), options) in scenarios.items():
            results = []
            for _ in range(args.rounds):
                results.append(measure(kernel, replay, Script(list(script.steps)), text, options))
            mid = sorted(results, key=lambda r: r["wire_bytes"])[len(results) // 2]
            rows.append(
                [
                    name,
                    int(mid["text_bytes"]),
                    int(mid["messages"]),
                    int(mid["stream_messages"]),
                    int(mid["wire_bytes"]),
                    f"{mid['ratio']:.2f}x",
                    f"{mid['duration']:.2f}",
                    f"{mid['stream_rate']:.1f}",
                    f"{mid['bytes_rate'] / 1e3:.0f}",
                ]
            )
    replay.close()
    print(
        table(
            [
                "stream",
                "text B",
                "IOPub msgs",
                "stream msgs",
                "wire B",
                "wire/text",
                "stream s",
                "stream msg/s",
                "kB/s",
            ],
            rows,
        )
    )
    print(
        "(median round by wire bytes; msgs and bytes count every IOPub message of the cell:"
        " status, execute_input, stream, clear_output, display_data)"
    )

    # This machine sets PYTHONDONTWRITEBYTECODE, so every import compiles from source; an
    # installed package has its bytecode cached. Time both.
    with tempfile.TemporaryDirectory() as cache:
        compiled = kernel_env({"PYTHONPYCACHEPREFIX": cache}, unset=("PYTHONDONTWRITEBYTECODE",))
        load_ext_time(compiled)  # fills the bytecode cache
        variants = {
            "bytecode cached (as installed)": compiled,
            "compiled from source (PYTHONDONTWRITEBYTECODE=1)": kernel_env(
                {"PYTHONDONTWRITEBYTECODE": "1"}
            ),
        }
        print()
        for label, env in variants.items():
            times = [load_ext_time(env) for _ in range(args.rounds)]
            print(
                f"%load_ext jupyter_complete in a fresh kernel, {label}: median "
                f"{statistics.median(times) * 1e3:.1f} ms, min {min(times) * 1e3:.1f} ms, "
                f"max {max(times) * 1e3:.1f} ms over {len(times)} kernels (target < 100 ms)"
            )


if __name__ == "__main__":
    main()
