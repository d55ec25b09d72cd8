"""What attacks cost the local server: resident memory and threads, before, at peak, after.

Each case starts a fresh server process (``serve`` of the source tree given, the built-in
model, a key) and samples its /proc status every 20 ms while the attack runs:

- ``negative chunk``: a stranger (no key) sends a chunked body of size ``-1`` and pushes
  data until the server stops reading.
- ``big bodies``: 30 strangers each send a body of the announced size.
- ``huge heads``: 30 connections send header lines until the server refuses.
- ``slowloris``: 1000 connections each send part of a head and wait.
- ``idle``: 1000 idle connections; how long a real client then waits for an answer.
- ``huge prompts`` (with the key): four prompts of 8 MB (full: 16 MB) at once.
- ``many stops`` (with the key): 512,000 stop sequences (full: 1,024,000); how long a
  small request queued behind them waits.

Run it on this tree, or side by side with another (``--compare /path/to/old/tree``, e.g. an
export of the main branch) to print both and the ratios. Figures, never assertions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _bench import start_server, table  # noqa: E402

KEY = "bench-key"
SERVER = textwrap.dedent("""
    import sys
    from jupyter_complete.local import serve
    server = serve("127.0.0.1", 0, None, sys.argv[1], max_queue=8)
    print(server.url, flush=True)
    sys.stdin.read()
    server.close()
""")
BODY = json.dumps(
    {"model": "m", "prompt": "\n\nHuman: Hi\n\nAssistant:", "max_tokens_to_sample": 1}
).encode()


def request(
    key: str | None = KEY,
    headers: str = "",
    body: bytes = BODY,
    length: int | None = None,
    framed: bool = True,
) -> bytes:
    """A request's bytes; ``length`` overrides Content-Length; ``framed=False`` omits it."""
    fields = "host: 127.0.0.1\r\n" + (f"x-api-key: {key}\r\n" if key else "")
    fields += "anthropic-version: 2023-06-01\r\ncontent-type: application/json\r\n" + headers
    if framed:
        fields += f"content-length: {len(body) if length is None else length}\r\n"
    return f"POST /v1/complete HTTP/1.1\r\n{fields}\r\n".encode() + body


def status(pid: int) -> tuple[int, int]:
    """(resident kB, threads) of a process."""
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, threads


def answer_time(port: int, timeout: float = 60.0) -> float:
    """Seconds until a real client's request is answered (nan if it never is)."""
    started = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(request(headers="connection: close\r\n"))
            data = sock.recv(65536)
            if not data.startswith(b"HTTP/1.1"):
                return float("nan")
    except OSError:
        return float("nan")
    return time.monotonic() - started


def push(sock: socket.socket, data: bytes, total: int) -> int:
    sent = 0
    try:
        while sent < total:
            sock.sendall(data)
            sent += len(data)
    except OSError:
        pass
    return sent


def attack_negative_chunk(port: int, scale: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            request(key=None, headers="transfer-encoding: chunked\r\n", body=b"", framed=False)
            + b"-1\r\n"
        )
        push(sock, b"x" * (1 << 20), scale << 20)


def attack_big_bodies(port: int, scale: int) -> None:
    size = max(1, scale // 8) << 20

    def one() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.sendall(request(key=None, body=b"", length=size))
            push(sock, b" " * (1 << 20), size)

    threads = [threading.Thread(target=one) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)


def attack_huge_heads(port: int, scale: int) -> None:
    def one() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.sendall(b"POST /v1/complete HTTP/1.1\r\n")
            line = b"x-pad-%d: " + b"v" * 60_000 + b"\r\n"
            try:
                for i in range(scale):
                    sock.sendall(line % i)
            except OSError:
                pass
            time.sleep(1)

    threads = [threading.Thread(target=one) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)


def attack_slowloris(port: int, scale: int) -> None:  # noqa: ARG001
    socks = []
    for i in range(1000):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"POST /v1/complete HTTP/1.1\r\nhost: 127.0.0.1\r\nx-%d: " % i)
            socks.append(sock)
        except OSError:
            break
    time.sleep(3)
    for sock in socks:
        sock.close()


def attack_idle(port: int, scale: int) -> None:  # noqa: ARG001
    socks = []
    for _ in range(1000):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        except OSError:
            break
    time.sleep(1)
    took = answer_time(port, timeout=30)
    print(f"    a real client behind 1000 idle connections waited {took:.3f} s", flush=True)
    for sock in socks:
        sock.close()


def attack_huge_prompts(port: int, scale: int) -> None:
    """A key holder: 4 requests at once, each a prompt of ``scale / 16`` MB."""
    text = "word " * ((scale << 20) // 16 // 5)
    body = json.dumps(
        {"model": "m", "prompt": f"\n\nHuman: {text}\n\nAssistant:", "max_tokens_to_sample": 1}
    ).encode()

    def one() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
            sock.sendall(request(body=body, headers="connection: close\r\n"))
            with contextlib.suppress(OSError):
                while sock.recv(65536):
                    pass

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)


def attack_many_stops(port: int, scale: int) -> None:
    """A key holder: ``scale * 4000`` stop sequences; how long a 3-token request waits."""
    stops = [f"zz{i}" for i in range(scale * 4000)]
    body = json.dumps(
        {
            "model": "m",
            "prompt": "\n\nHuman: Tell a story.\n\nAssistant:",
            "max_tokens_to_sample": 20,
            "stop_sequences": stops,
        }
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=300) as hog:
        hog.sendall(request(body=body, headers="connection: close\r\n"))
        time.sleep(0.5)
        took = answer_time(port, timeout=300)
        print(
            f"    a 1-token request behind {len(stops):,} stop sequences waited {took:.2f} s",
            flush=True,
        )


CASES: dict[str, Callable[[int, int], None]] = {
    "huge prompts": attack_huge_prompts,
    "many stops": attack_many_stops,
    "negative chunk": attack_negative_chunk,
    "big bodies": attack_big_bodies,
    "huge heads": attack_huge_heads,
    "slowloris": attack_slowloris,
    "idle": attack_idle,
}


def run_case(tree: Path, name: str, scale: int) -> dict[str, float]:
    proc, port = start_server(SERVER, KEY, tree)
    try:
        answer_time(port)  # warm: first generation, lazy imports
        time.sleep(0.5)
        rss0, threads0 = status(proc.pid)
        peak = [rss0, threads0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                try:
                    rss, threads = status(proc.pid)
                except OSError:
                    return
                peak[0], peak[1] = max(peak[0], rss), max(peak[1], threads)
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.monotonic()
        CASES[name](port, scale)
        took = time.monotonic() - started
        time.sleep(2)
        done.set()
        sampler.join()
        rss1, threads1 = status(proc.pid)
        after = answer_time(port, timeout=30)
        return {
            "rss0": rss0 / 1024,
            "peak": peak[0] / 1024,
            "rss1": rss1 / 1024,
            "threads0": threads0,
            "threads peak": peak[1],
            "threads1": threads1,
            "attack s": took,
            "answer s": after,
        }
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true")
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--tree", type=Path, default=HERE.parent.parent)
    parser.add_argument(
        "--compare",
        type=Path,
        default=None,
        help="another source tree (the old server) to run side by side",
    )
    parser.add_argument("cases", nargs="*", default=list(CASES))
    args = parser.parse_args()
    scale = 256 if args.full else 128
    trees = {"this": args.tree} | ({"other": args.compare} if args.compare else {})
    print(f"== server attacks (scale {scale}; MB of resident memory, threads) ==", flush=True)
    rows = []
    for name in args.cases:
        results = {}
        for label, tree in trees.items():
            print(f"  {name} on {label} ({tree})", flush=True)
            results[label] = run_case(tree, name, scale)
        for label, r in results.items():
            rows.append(
                [
                    name,
                    label,
                    f"{r['rss0']:.0f}",
                    f"{r['peak']:.0f}",
                    f"+{r['peak'] - r['rss0']:.0f}",
                    f"{r['rss1']:.0f}",
                    int(r["threads0"]),
                    int(r["threads peak"]),
                    int(r["threads1"]),
                    f"{r['attack s']:.1f}",
                    f"{r['answer s']:.3f}",
                ]
            )
        if "other" in results:
            this, other = results["this"], results["other"]
            grow_this = max(1.0, this["peak"] - this["rss0"])
            grow_other = max(1.0, other["peak"] - other["rss0"])
            rows.append(
                [
                    name,
                    "other/this",
                    "",
                    "",
                    f"x{grow_other / grow_this:.1f}",
                    "",
                    "",
                    f"x{other['threads peak'] / max(1, this['threads peak']):.1f}",
                    "",
                    "",
                    "",
                ]
            )
    print(
        table(
            [
                "case",
                "server",
                "RSS MB",
                "peak",
                "growth",
                "after",
                "thr",
                "thr peak",
                "thr after",
                "attack s",
                "answer s",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
