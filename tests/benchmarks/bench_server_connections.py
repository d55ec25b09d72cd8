"""How fast a new client is answered while the server carries 200 streams and 1000 idle
connections, next to the same on an unloaded server.

The server (built-in model, its own process) gets 1000 idle connections and 200 streaming
requests (one generating, the rest queued and pinged); then a newcomer times its
``GET /v1/models`` answer and a streamed request's first byte (head and ping, while it
queues). The same newcomer is timed on the server before the load. The target is under a
second; figures and ratios are printed, never asserted.
"""

from __future__ import annotations

import json
import selectors
import socket
import sys
import textwrap
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _bench import banner, median, parse_mode, start_server, table  # noqa: E402

REPO = HERE.parent.parent
KEY = "bench-key"
SERVER = textwrap.dedent("""
    import sys
    from jupyter_complete.local import serve
    from jupyter_complete.local.http.limits import HttpLimits
    server = serve("127.0.0.1", 0, None, sys.argv[1], max_queue=256, ping_interval=1.0,
                   limits=HttpLimits(head_timeout=600))
    print(server.url, flush=True)
    sys.stdin.read()
    server.close()
""")
PROMPT = "\n\nHuman: Count to five.\n\nAssistant:"


def request(method: str, path: str, body: dict[str, object] | None = None) -> bytes:
    data = json.dumps(body).encode() if body is not None else b""
    return (
        f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nx-api-key: {KEY}\r\n"
        f"anthropic-version: 2023-06-01\r\ncontent-type: application/json\r\n"
        f"content-length: {len(data)}\r\nconnection: close\r\n\r\n"
    ).encode() + data


def first_byte(port: int, data: bytes) -> float:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(data)
        got = sock.recv(65536)
        assert got.startswith(b"HTTP/1.1 200"), got[:100]
    return time.monotonic() - started


def newcomer(port: int) -> tuple[float, float]:
    models = first_byte(port, request("GET", "/v1/models"))
    stream = first_byte(
        port,
        request(
            "POST",
            "/v1/complete",
            {"model": "m", "prompt": PROMPT, "max_tokens_to_sample": 1, "stream": True},
        ),
    )
    return models, stream


def load(port: int, streams: int, idle: int) -> tuple[list[socket.socket], threading.Thread]:
    socks = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(idle)]
    sel = selectors.DefaultSelector()
    body = {"model": "m", "prompt": PROMPT, "max_tokens_to_sample": 4, "stream": True}
    for _ in range(streams):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(request("POST", "/v1/complete", body))
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)

    def drain() -> None:
        while sel.get_map():
            for key, _ in sel.select(timeout=1):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    part = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    part = b""
                if not part:
                    sel.unregister(sock)
                    sock.close()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    return socks, reader


def main() -> None:
    args = parse_mode(__doc__.splitlines()[0])
    banner("a newcomer under 200 streams + 1000 idle connections", args)
    proc, port = start_server(SERVER, KEY, REPO)
    try:
        newcomer(port)  # warm-up
        quiet = [newcomer(port) for _ in range(args.rounds)]
        socks, reader = load(port, 200, 1000)
        time.sleep(2)  # every stream admitted and queued
        loaded = [newcomer(port) for _ in range(args.rounds)]
        for sock in socks:
            sock.close()
        reader.join(600)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(60)
    rows = []
    for i, what in enumerate(("GET /v1/models", "stream head + ping")):
        q, lo = median([r[i] for r in quiet]), median([r[i] for r in loaded])
        rows.append(
            [
                what,
                f"{q * 1000:.1f}",
                f"{lo * 1000:.1f}",
                f"x{lo / q:.1f}",
                "yes" if max(r[i] for r in loaded) < 1.0 else "NO",
            ]
        )
    print(
        table(
            ["newcomer's request", "quiet ms", "loaded ms", "loaded/quiet", "all under 1 s"], rows
        )
    )


if __name__ == "__main__":
    main()
