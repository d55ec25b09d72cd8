"""Loopback servers for the benchmarks.

Two servers, both speaking just enough HTTP/1.1 for one request per connection:

* `serve_prerendered` (run in a child process by `start_prerendered`): answers every request
  with a response rendered once at start-up, sent with large ``sendall`` calls. The server
  does no per-event work, so the client's speed is what gets measured; being another process,
  it never competes with the client for the GIL.
* `StampingServer` (a thread, in the benchmark's own process so ``perf_counter_ns`` readings
  agree): sends one event at a time, each carrying the time it was written.

Both frame the body either as HTTP chunks (one chunk per event, as a streaming server does)
or close-delimited (no length, the end of the body is the end of the connection).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: the fixtures
from fixtures_replay import read_request  # noqa: E402

FRAMINGS = ("chunked", "close")
MODEL = "bench-1"
#: Placeholder the stamping server overwrites with a 19-digit perf_counter_ns() reading.
STAMP_SLOT = b"@" * 19


def head(framing: str) -> bytes:
    lines = [
        "HTTP/1.1 200 OK",
        "content-type: text/event-stream",
        "cache-control: no-cache",
        "request-id: req_bench",
        "connection: close",
    ]
    if framing == "chunked":
        lines.append("transfer-encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def frame(event: bytes, framing: str) -> bytes:
    if framing == "chunked":
        return f"{len(event):x}\r\n".encode() + event + b"\r\n"
    return event


def end(framing: str) -> bytes:
    return b"0\r\n\r\n" if framing == "chunked" else b""


def completion_event(text: str, stop_reason: str | None = None) -> bytes:
    # The fields a real 2023-06-01 stream carries on every event (protocol.md 3.1).
    data = {
        "type": "completion",
        "id": "compl_bench",
        "completion": text,
        "stop_reason": stop_reason,
        "model": MODEL,
        "stop": None,
        "log_id": "compl_bench",
    }
    return b"event: completion\ndata: " + json.dumps(data).encode() + b"\n\n"


def token(i: int) -> str:
    return f" t{i}"


def render_stream(n_events: int, framing: str) -> bytes:
    """The whole response: ``n_events`` text deltas, a ping every 1000, then the final event."""
    parts = [head(framing)]
    for i in range(n_events):
        parts.append(frame(completion_event(token(i)), framing))
        if i % 1000 == 999:
            parts.append(frame(b'event: ping\ndata: {"type": "ping"}\n\n', framing))
    parts.append(frame(completion_event("", "max_tokens"), framing))
    parts.append(end(framing))
    return b"".join(parts)


def expected_text(n_events: int) -> str:
    return "".join(token(i) for i in range(n_events))


class LoopbackServer:
    """Accepts connections on 127.0.0.1 and hands each request to ``respond`` on a thread."""

    def __init__(self, respond: Callable[[socket.socket, str], None]) -> None:
        self._respond = respond
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port: int = self._sock.getsockname()[1]
        self._closing = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def url(self, prefix: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{prefix}"

    def close(self) -> None:
        self._closing = True
        self._sock.close()

    def _accept(self) -> None:
        while not self._closing:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            request = read_request(conn)
            if request is not None:
                self._respond(conn, request.path)
                conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the client went away; nothing to report in a benchmark server
        finally:
            conn.close()


# -- the pre-rendered throughput server (child process) ------------------------------------
def serve_prerendered(counts: list[int]) -> None:
    """Serve ``/{framing}/{count}/v1/complete`` from responses rendered before listening."""
    rendered = {(f, n): render_stream(n, f) for f in FRAMINGS for n in counts}

    def respond(conn: socket.socket, path: str) -> None:
        _, framing, count, *_ = path.split("/")
        payload = memoryview(rendered[(framing, int(count))])
        # Large writes: the kernel, not this loop, sets the pace.
        for start in range(0, len(payload), 1 << 20):
            conn.sendall(payload[start : start + (1 << 20)])

    server = LoopbackServer(respond)
    print(server.port, flush=True)
    # Serve until the parent closes our stdin (or is gone).
    sys.stdin.read()
    server.close()


class PrerenderedServer:
    """`serve_prerendered` in a child process; ``url(framing, n)`` is a base URL for it."""

    def __init__(self, counts: list[int]) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__)), "prerendered", *[str(n) for n in counts]],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.strip():
            raise RuntimeError("the benchmark server did not start")
        self.port = int(line)

    def url(self, framing: str, n_events: int) -> str:
        return f"http://127.0.0.1:{self.port}/{framing}/{n_events}"

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> PrerenderedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the stamping latency server (thread, same process) ------------------------------------
class StampingServer:
    """Sends ``n_events`` events ``gap`` seconds apart; each text is `` <ns>``, the
    ``time.perf_counter_ns()`` reading taken just before that event's ``sendall``.

    Requests go to ``/{framing}/v1/complete``.
    """

    def __init__(self, n_events: int, gap: float) -> None:
        self.n_events = n_events
        self.gap = gap
        self._server = LoopbackServer(self._respond)

    def url(self, framing: str) -> str:
        return self._server.url(f"/{framing}")

    def close(self) -> None:
        self._server.close()

    def __enter__(self) -> StampingServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _respond(self, conn: socket.socket, path: str) -> None:
        framing = path.split("/")[1]
        template = frame(completion_event(" " + STAMP_SLOT.decode()), framing)
        conn.sendall(head(framing))
        for _ in range(self.n_events):
            # The stamp goes in last, so it is as close to the write as Python allows.
            conn.sendall(template.replace(STAMP_SLOT, b"%019d" % time.perf_counter_ns()))
            time.sleep(self.gap)
        conn.sendall(frame(completion_event("", "max_tokens"), framing) + end(framing))


def stamp_of(text: str) -> int:
    """The server's perf_counter_ns() reading carried in an event's text."""
    return int(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="benchmark server (started by the benchmarks)")
    parser.add_argument("kind", choices=["prerendered"])
    parser.add_argument("counts", nargs="+", type=int)
    serve_prerendered(parser.parse_args().counts)
