"""Raw-socket helpers for trying the local server as an attacker would (tests/test_server_*).

Nothing between the test and the server tidies the bytes up: requests are written by hand
and responses read off the socket, including whether the server closed the connection.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

ATTACK_KEY = "attack-test-key"


@dataclass
class Raw:
    """A response read off a socket (status None: none came); ``closed``: the server closed
    the connection after it."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    rest: bytes = b""
    closed: bool = False

    @property
    def envelope(self) -> dict[str, Any]:
        data = json.loads(self.body)
        assert isinstance(data, dict)
        return data


def head(
    method: str = "POST",
    path: str = "/v1/complete",
    *,
    key: str | None = ATTACK_KEY,
    host: str | None = "127.0.0.1",
    length: int | None = None,
    extra: dict[str, str] | None = None,
    raw: bytes = b"",
    version: str = "2023-06-01",
) -> bytes:
    """A request head, ending in the blank line."""
    fields: dict[str, str] = {}
    if host is not None:
        fields["host"] = host
    if key is not None:
        fields["x-api-key"] = key
    fields["anthropic-version"] = version
    fields["content-type"] = "application/json"
    if length is not None:
        fields["content-length"] = str(length)
    fields.update(extra or {})
    lines = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return lines.encode() + raw + b"\r\n"


def post(body: dict[str, Any], **kw: Any) -> bytes:
    """A whole POST with a JSON body and its Content-Length."""
    data = json.dumps(body).encode()
    return head(length=len(data), **kw) + data


def connect(port: int, timeout: float = 30.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def _read_chunked(buf: bytes, sock: socket.socket) -> tuple[bytes, bytes, bool]:
    body = b""
    while True:
        while b"\r\n" not in buf:
            part = sock.recv(65536)
            if not part:
                return body, buf, True
            buf += part
        line, _, buf = buf.partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        while len(buf) < size + 2:
            part = sock.recv(65536)
            if not part:
                return body + buf, b"", True
            buf += part
        body += buf[:size]
        buf = buf[size + 2 :]
        if size == 0:
            return body, buf, False


def read(sock: socket.socket, *, timeout: float = 30.0, check_close: float = 2.0) -> Raw:
    """Read one response; then wait up to ``check_close`` s to see whether the server closes."""
    sock.settimeout(timeout)
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            part = sock.recv(65536)
            if not part:
                return Raw(None, rest=buf, closed=True)
            buf += part
    except (ConnectionResetError, TimeoutError):
        return Raw(None, rest=buf, closed=True)
    blob, _, buf = buf.partition(b"\r\n\r\n")
    lines = blob.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    closed = False
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body, buf, closed = _read_chunked(buf, sock)
    else:
        length = int(headers.get("content-length", "0"))
        while len(buf) < length:
            part = sock.recv(65536)
            if not part:
                closed = True
                break
            buf += part
        body, buf = buf[:length], buf[length:]
    if not closed and check_close:
        sock.settimeout(check_close)
        try:
            while part := sock.recv(65536):
                buf += part
            closed = True
        except TimeoutError:
            pass
        except (ConnectionResetError, BrokenPipeError):
            closed = True
    return Raw(status, headers, body, buf, closed)


def exchange(port: int, data: bytes, **kw: Any) -> Raw:
    with connect(port) as sock:
        sock.sendall(data)
        return read(sock, **kw)


def assert_envelope(raw: Raw, status: int, error_type: str, words: str | None = None) -> None:
    """``status`` with the API's error envelope and a request id."""
    assert raw.status == status, (raw.status, raw.body[:300], raw.rest[:100])
    assert raw.headers.get("request-id", "").startswith("req_"), raw.headers
    env = raw.envelope
    assert env["type"] == "error" and env["error"]["type"] == error_type, env
    if words is not None:
        assert words in env["error"]["message"], env


def proc_status(pid: int) -> dict[str, int]:
    """Threads and resident memory (kB) of a process, from /proc."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("Threads", "VmRSS", "VmHWM"):
                out[name] = int(value.split()[0])
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


@pytest.fixture(scope="module")
def attack_server(local_model: Any) -> Any:
    """A keyed server of the module's own, with short head and body timeouts (2 s, 3 s)."""
    from jupyter_complete.local import serve
    from jupyter_complete.local.http.limits import HttpLimits

    limits = HttpLimits(head_timeout=2.0, body_timeout=3.0, drain_timeout=2.0, drain_bytes=4 << 20)
    with serve(
        model=local_model, api_key=ATTACK_KEY, max_queue=4, limits=limits, ping_interval=0.5
    ) as server:
        yield server


@pytest.fixture(scope="module")
def open_server(local_model: Any) -> Any:
    """A server without a key on loopback (the case DNS rebinding is about)."""
    from jupyter_complete.local import serve
    from jupyter_complete.local.http.limits import HttpLimits

    with serve(
        "127.0.0.1", 0, local_model, limits=HttpLimits(allowed_hosts=("notebook.example",))
    ) as server:
        yield server
