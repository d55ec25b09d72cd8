"""A replay server for tests: a real TCP server on 127.0.0.1 that sends scripted raw bytes.

Each accepted request takes the next `Script` from the queue and plays its steps: bytes to
write (each one its own ``sendall``, so tests choose the chunk boundaries), sleeps, waits on a
`threading.Event` (to hold an event until the client reports the previous one), a clean close
or a TCP reset. Every request received is recorded with its headers and JSON body.

Usage::

    replay.enqueue(sse_script([completion_event(" Hi"), final_event()]))
    client = Client(base_url=replay.url, api_key="test-key")
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass
class Sleep:
    seconds: float


@dataclass
class Wait:
    event: threading.Event
    timeout: float = 10.0
    #: Set by the server: True if the event was set before the timeout ran out.
    satisfied: bool | None = None


@dataclass
class Reset:
    """Abort the connection with a TCP RST."""


@dataclass
class Close:
    """Close the connection cleanly (FIN)."""


Step = bytes | Sleep | Wait | Reset | Close


@dataclass
class Script:
    steps: list[Step]


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def head(
    status: int = 200,
    headers: dict[str, str] | None = None,
    *,
    chunked: bool = False,
    content_type: str = "text/event-stream",
    length: int | None = None,
) -> bytes:
    """The status line and headers. Neither chunked nor length: a close-delimited body."""
    reason = {
        200: "OK",
        400: "Bad Request",
        401: "Unauthorized",
        429: "Too Many Requests",
        500: "Internal Server Error",
        529: "Overloaded",
    }.get(status, "Status")
    lines = [
        f"HTTP/1.1 {status} {reason}",
        f"content-type: {content_type}",
        "request-id: req_replay_1",
    ]
    if chunked:
        lines.append("transfer-encoding: chunked")
    elif length is not None:
        lines.append(f"content-length: {length}")
    else:
        lines.append("connection: close")
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


LAST_CHUNK = b"0\r\n\r\n"


def sse(event: str, data: Any, eol: str = "\n") -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"event: {event}{eol}data: {payload}{eol}{eol}".encode()


def completion_event(
    text: str, stop_reason: str | None = None, eol: str = "\n", **extra: Any
) -> bytes:
    return sse(
        "completion",
        {
            "type": "completion",
            "completion": text,
            "stop_reason": stop_reason,
            "model": "replay-1",
            **extra,
        },
        eol,
    )


def final_event(stop_reason: str = "stop_sequence", eol: str = "\n") -> bytes:
    return completion_event("", stop_reason, eol)


def sse_script(
    events: list[bytes],
    *,
    chunked: bool = True,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Script:
    """A stream that sends each event as its own write (and HTTP chunk when chunked)."""
    steps: list[Step] = [head(status, headers, chunked=chunked)]
    steps += [chunk(e) if chunked else e for e in events]
    steps.append(LAST_CHUNK if chunked else Close())
    return Script(steps)


def json_script(
    status: int,
    body: Any,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> Script:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Script([head(status, headers, content_type=content_type, length=len(raw)) + raw])


def error_script(
    status: int, etype: str, message: str, headers: dict[str, str] | None = None
) -> Script:
    return json_script(
        status, {"type": "error", "error": {"type": etype, "message": message}}, headers
    )


def read_request(conn: socket.socket) -> Received | None:
    """Read one HTTP/1.1 request (headers, then a Content-Length body); None at EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        part = conn.recv(65536)
        if not part:
            return None
        data += part
    header_blob, _, body = data.partition(b"\r\n\r\n")
    lines = header_blob.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        part = conn.recv(65536)
        if not part:
            break
        body += part
    return Received(method, path, headers, body)


@dataclass
class ReplayServer:
    """Serves queued scripts, one per request, on 127.0.0.1."""

    scripts: deque[Script] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    open_connections: int = 0

    def __post_init__(self) -> None:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._closing = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def enqueue(self, *scripts: Script) -> None:
        self.scripts.extend(scripts)

    def close(self) -> None:
        self._closing = True
        try:
            # close() alone does not wake a thread blocked in accept() on Linux.
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._thread.join(timeout=5)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until every connection the server accepted has been closed by the peer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.open_connections == 0:
                return True
            time.sleep(0.01)
        return False

    def _accept(self) -> None:
        while not self._closing:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.open_connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while True:
                req = read_request(conn)
                if req is None:
                    return
                self.received.append(req)
                script = (
                    self.scripts.popleft()
                    if self.scripts
                    else Script([head(500, content_type="text/plain", length=9) + b"no script"])
                )
                keep = self._play(conn, script)
                if not keep:
                    return
        except OSError:
            return
        finally:
            try:
                # Wait for the peer's FIN so open_connections counts what the client holds.
                conn.settimeout(5)
                while conn.recv(65536):
                    pass
            except OSError:
                pass
            conn.close()
            with self._lock:
                self.open_connections -= 1

    def _play(self, conn: socket.socket, script: Script) -> bool:
        """Play the steps; True if the connection may serve another request."""
        keep = True
        for step in script.steps:
            if isinstance(step, bytes):
                conn.sendall(step)
            elif isinstance(step, Sleep):
                time.sleep(step.seconds)
            elif isinstance(step, Wait):
                step.satisfied = step.event.wait(step.timeout)
            elif isinstance(step, Reset):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                raise OSError("reset")
            elif isinstance(step, Close):
                conn.shutdown(socket.SHUT_WR)
                keep = False
        if (
            script.steps
            and isinstance(script.steps[0], bytes)
            and (b"connection: close" in script.steps[0])
        ):
            conn.shutdown(socket.SHUT_WR)
            keep = False
        return keep


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    server = ReplayServer()
    yield server
    server.close()
