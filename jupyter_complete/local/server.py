"""`LocalServer` and `serve`: ``POST /v1/complete`` and ``POST /v1/messages`` over HTTP/1.1.

Both endpoints are backed by one `LocalModel` and share everything but the shapes of their
bodies and events: validation rules, key check, queue, chat-template rendering, sampling,
disconnect handling and error envelopes. They answer as the real API does (protocol.md): the
same validation, statuses and error envelopes, a ``request-id`` header on every response,
``Completion`` (or ``Message``) JSON, or with ``"stream": true`` server-sent events in
chunked transfer encoding, each event written as its own HTTP chunk the moment its token is
sampled. Everything is checked before the first byte of a response is sent, so a streamed
request that is wrong gets a normal JSON error with its status, never an error inside a 200.

A ``/v1/messages`` stream is ``message_start``, ``content_block_start``, ``ping``, one
``content_block_delta`` per piece of text, ``content_block_stop``, ``message_delta`` (stop
reason and output tokens), ``message_stop``; pings also keep a queued request alive.

Only the standard library serves HTTP (``http.server``); one thread per connection.
"""

from __future__ import annotations

import abc
import contextlib
import ipaddress
import json
import logging
import os
import secrets
import select
import socket
import string
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import urlsplit

from .._constants import ENV_SERVER_API_KEY
from .generation import STOP_SEQUENCE, Generation
from .model import LocalModel
from .request import (
    LEGACY_VERSION,
    MESSAGES_VERSIONS,
    VERSIONS,
    CompletionRequest,
    GenerationRequest,
    MessagesRequest,
    RequestRejected,
    check_key,
    check_version,
)

log = logging.getLogger("jupyter_complete.local")

COMPLETE_PATH = "/v1/complete"
MESSAGES_PATH = "/v1/messages"
#: The documented request-size limit of the Messages API (32 MB); past it, 413.
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
#: Seconds between pings while a streamed request waits for the model.
DEFAULT_PING_INTERVAL = 5.0
#: Seconds an idle keep-alive connection (or a client that stopped reading) is kept.
IDLE_TIMEOUT = 120.0
# How much of an oversized body is read and discarded before the 413 goes out. Closing a
# socket with unread bytes makes Linux send a reset, which can destroy the response before
# the client reads it; past this much, the connection is cut anyway.
_DRAIN_LIMIT = 64 * 1024 * 1024

_ID_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    """An id shaped like the API's (``req_01...``, ``compl_01...``): prefix, 01, 22 random."""
    return prefix + "01" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(22))


def is_loopback(host: str) -> bool:
    """True when ``host`` names only this machine (127.0.0.0/8, ::1, localhost)."""
    if not host:
        return False  # "" binds every interface
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(
        ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos
    )


class Stats:
    """Counters of what the server did (thread-safe), for tests and the CLI."""

    FIELDS = ("requests", "completed", "rejected", "overloaded", "disconnected", "failed")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self.FIELDS, 0)

    def add(self, name: str) -> None:
        """Count one more ``name`` event."""
        with self._lock:
            self._counts[name] += 1

    def snapshot(self) -> dict[str, int]:
        """A copy of the counters."""
        with self._lock:
            return dict(self._counts)

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self._counts[name]


class _Disconnected(Exception):
    """The client went away; stop working for it."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default accept backlog is 5: a burst of clients would overflow it and
    # be reset by the kernel instead of queued or answered 529.
    request_queue_size = 1024
    # Handler threads are daemons and `LocalServer.close` shuts their sockets down, so the
    # server never waits for them.
    block_on_close = False

    def __init__(self, address: tuple[str, int], owner: LocalServer) -> None:
        self.owner = owner
        host = address[0]
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:  # noqa: ARG002
        # A client that resets its connection between requests is normal, not worth the
        # traceback socketserver prints to stderr; anything else is logged in full.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            log.debug("connection from %s dropped", client_address)
            return
        log.exception("error while handling a request from %s", client_address)


class LocalServer:
    """A running local ``/v1/complete`` and ``/v1/messages`` server (start it with `serve`).

    Attributes:
        url: the base URL to give a client (``http://127.0.0.1:PORT``).
        model: the `LocalModel` answering.
        stats: `Stats` counters.
        refuse_complete_models: requested model names that ``/v1/complete`` turns away.
    """

    def __init__(
        self,
        model: LocalModel,
        host: str,
        port: int,
        api_key: str | None,
        *,
        max_queue: int,
        max_body_bytes: int,
        ping_interval: float,
        owns_model: bool = False,
        refuse_complete_models: Iterable[str] = (),
    ) -> None:
        from .gate import Gate

        self.model = model
        self._api_key = api_key
        self.gate = Gate(max_queue)
        self.max_body_bytes = max_body_bytes
        self.ping_interval = ping_interval
        self.refuse_complete_models = frozenset(refuse_complete_models)
        self.stats = Stats()
        self._owns_model = owns_model
        self._closing = threading.Event()
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        self._httpd = _HTTPServer((host, port), self)
        bound = self._httpd.server_address
        self.host: str = host
        self.port: int = int(bound[1])
        # A wildcard bind is reachable on loopback; give clients that address.
        shown = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        self.url: str = f"http://[{shown}]:{self.port}" if ":" in shown else (
            f"http://{shown}:{self.port}")
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
            name=f"jupyter-complete-server-{self.port}", daemon=True,
        )
        self._thread.start()

    @property
    def requires_key(self) -> bool:
        """True when requests must carry the server's API key."""
        return self._api_key is not None

    @property
    def closed(self) -> bool:
        """True once `close` has been called."""
        return self._closing.is_set()

    def check_key(self, x_api_key: str | None, authorization: str | None) -> None:
        """Raise `RequestRejected` (401) unless the request carries this server's key."""
        check_key(x_api_key, authorization, self._api_key)

    def check_completions(self, model: str) -> None:
        """400 when ``model`` is one this server says has no Text Completions API.

        Newer Anthropic models answer ``/v1/complete`` this way; a server started with
        ``refuse_complete_models`` plays that part, so clients (and classes) can see the
        switch to ``/v1/messages`` happen against a real server.
        """
        if model in self.refuse_complete_models:
            raise RequestRejected(
                400, "invalid_request_error",
                f"{model} does not support the Text Completions API; use the Messages API",
            )

    def serve_until_interrupted(self) -> None:
        """Block the calling thread until Ctrl-C (or `close` from another thread)."""
        try:
            while not self._closing.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.close()

    def close(self) -> None:
        """Stop listening, cut open connections and stop running generations (idempotent).

        Returns once the generation in progress (if any) has stopped.
        """
        if self._closing.is_set():
            return
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._conn_lock:
            connections = list(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)
        # A running generation notices the shutdown at its next token; wait for that, so
        # that after close() nothing of this server still uses the model.
        self.gate.wait_idle(timeout=10)
        if self._owns_model:
            with self.model.lock:
                self.model.close()

    def _track(self, sock: socket.socket, alive: bool) -> None:
        with self._conn_lock:
            if alive:
                self._connections.add(sock)
            else:
                self._connections.discard(sock)

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        key = "required" if self._api_key is not None else "none"
        return f"<LocalServer {self.url} model={self.model.name!r} api_key={key}>"


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    model: LocalModel | str | os.PathLike[str] | None = None,
    api_key: str | None = None,
    *,
    max_queue: int = 8,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ping_interval: float = DEFAULT_PING_INTERVAL,
    refuse_complete_models: Iterable[str] = (),
    n_threads: int | None = None,
) -> LocalServer:
    """Start a local ``/v1/complete`` and ``/v1/messages`` server on a background thread.

    Args:
        host: address to listen on. Anything but loopback requires ``api_key``.
        port: TCP port; 0 picks a free one (read it from ``.url``).
        model: a `LocalModel`, or the path of a GGUF file to load; default
            ``JUPYTER_COMPLETE_MODEL_PATH``, else the built-in SmolLM2-135M-Instruct.
        api_key: when set, requests must send it as ``x-api-key`` (401 otherwise).
        max_queue: requests that may wait while one generates; past it, 529.
        max_body_bytes: request bodies above this size get 413.
        ping_interval: seconds between pings while a streamed request waits its turn.
        refuse_complete_models: model names for which ``/v1/complete`` answers 400
            invalid_request_error "<model> does not support the Text Completions API; use
            the Messages API", as the real API does for newer models (``/v1/messages`` still
            answers them). For trying out and teaching the switch to the Messages API.
        n_threads: CPU threads for a model this call loads (ignored when ``model`` is a
            `LocalModel`); default ``JUPYTER_COMPLETE_THREADS``, else every available CPU.

    Returns:
        The running `LocalServer`.

    Raises:
        ValueError: ``host`` is not loopback and no ``api_key`` was given.
        jupyter_complete.errors.LocalModelUnavailableError: the model cannot be loaded.
    """
    if not is_loopback(host) and not api_key:
        raise ValueError(
            f"Refusing to listen on {host or 'all interfaces'!s} without an API key: anyone "
            "who can reach it could use it. Pass api_key=... (--api-key, or "
            f"{ENV_SERVER_API_KEY} for the command), or bind 127.0.0.1."
        )
    owns = not isinstance(model, LocalModel)
    local = model if isinstance(model, LocalModel) else LocalModel(model, n_threads=n_threads)
    try:
        return LocalServer(
            local, host, port, api_key or None, max_queue=max_queue,
            max_body_bytes=max_body_bytes, ping_interval=ping_interval, owns_model=owns,
            refuse_complete_models=refuse_complete_models,
        )
    except BaseException:
        if owns:
            local.close()
        raise


class _Handler(BaseHTTPRequestHandler):
    """One connection; handles its requests in turn (HTTP/1.1 keep-alive)."""

    protocol_version = "HTTP/1.1"
    server_version = "jupyter-complete-local"
    timeout = IDLE_TIMEOUT
    server: _HTTPServer

    # -- connection lifetime -----------------------------------------------------------
    def setup(self) -> None:
        super().setup()
        # Events are small writes; without NODELAY, Nagle's algorithm would hold one back
        # until the previous one is acknowledged (up to 40 ms with delayed ACKs).
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.owner._track(self.connection, True)

    def finish(self) -> None:
        self.server.owner._track(self.connection, False)
        with contextlib.suppress(OSError):
            super().finish()

    def version_string(self) -> str:
        return self.server_version  # without the Python version http.server appends

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
        log.debug("%s " + format, self.address_string(), *args)

    @property
    def owner(self) -> LocalServer:
        return self.server.owner

    # -- routing -----------------------------------------------------------------------
    def do_POST(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:  # noqa: ARG002 (stdlib signature)
        # http.server's own errors (malformed request line, unknown method, oversized
        # headers) get the API's JSON envelope instead of an HTML page.
        if code == 501:  # an unknown method: for the API that is a wrong method
            code, message = 405, "Method Not Allowed"
        etype = "invalid_request_error" if code < 500 else "api_error"
        self.close_connection = True
        # A request line that could not be parsed leaves http.server assuming HTTP/0.9,
        # which would send the body with no status line or headers.
        if self.request_version == "HTTP/0.9":
            self.request_version = self.protocol_version
        self._send_rejection(RequestRejected(code, etype, message or "Bad Request"),
                             new_id("req_"))

    def _dispatch(self) -> None:
        owner = self.owner
        owner.stats.add("requests")
        rid = new_id("req_")
        try:
            body = self._read_body()
            exchange_type = _ROUTES.get(urlsplit(self.path).path.rstrip("/"))
            if exchange_type is None:
                raise RequestRejected(404, "not_found_error", "Not Found")
            if self.command != "POST":
                raise RequestRejected(405, "invalid_request_error", "Method Not Allowed",
                                      {"allow": "POST"})
            owner.check_key(self.headers.get("x-api-key"), self.headers.get("authorization"))
            version = check_version(self.headers.get_all("anthropic-version") or [],
                                    exchange_type.versions)
            request = exchange_type.request_type.from_json(body)
            exchange_type.check(owner, request)
            tokens = self._render(request, exchange_type.conversation_field)
            limit = owner.model.n_ctx - 1
            if len(tokens) > limit:
                raise RequestRejected(
                    400, "invalid_request_error",
                    f"prompt is too long: {len(tokens)} tokens > {limit} maximum",
                )
            ticket = owner.gate.admit()
            if ticket is None:
                owner.stats.add("overloaded")
                raise RequestRejected(529, "overloaded_error", "Overloaded",
                                      {"x-should-retry": "true"})
        except RequestRejected as rejection:
            if rejection.status != 529:
                owner.stats.add("rejected")
            self._send_rejection(rejection, rid)
            return
        exchange = exchange_type(self, request, tokens, rid, version=version)
        try:
            exchange.run(ticket)
        except _Disconnected:
            owner.stats.add("disconnected")
            self.close_connection = True
        else:
            owner.stats.add("failed" if exchange.failed else "completed")

    def _render(self, request: GenerationRequest, field: str) -> list[int]:
        try:
            return self.owner.model.render(request.conversation)
        except Exception as err:
            # Some chat templates refuse conversations (e.g. roles that do not alternate)
            # by raising; that is the request's fault, so it is a 400 with their reason.
            raise RequestRejected(
                400, "invalid_request_error",
                f"{field} cannot be rendered with the model's chat template: {err}",
            ) from err

    # -- request body ------------------------------------------------------------------
    def _read_body(self) -> bytes:
        """The request body, at most ``max_body_bytes``; 413 (and a drained socket) past it."""
        limit = self.owner.max_body_bytes
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return self._read_chunked(limit)
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True  # the body's end is unknown: the stream is lost
            raise RequestRejected(400, "invalid_request_error", "Invalid Content-Length header")
        if length > limit:
            self._drain(length)
            raise _too_large()
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self, limit: int) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise RequestRejected(400, "invalid_request_error",
                                      "Malformed chunked request body") from None
            if size == 0:
                while self.rfile.readline(1024).strip():
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > limit:
                self._drain(_DRAIN_LIMIT)
                raise _too_large()
            parts.append(self.rfile.read(size))
            self.rfile.readline(3)

    def _drain(self, length: int) -> None:
        # Read and discard (bounded in bytes and time) so the 413 reaches the client.
        self.close_connection = True
        left = min(length, _DRAIN_LIMIT)
        deadline = time.monotonic() + 5.0
        with contextlib.suppress(OSError):
            self.connection.settimeout(1.0)
            while left > 0 and time.monotonic() < deadline:
                got = self.rfile.read1(min(left, 1 << 16))
                if not got:
                    break
                left -= len(got)

    # -- responses ---------------------------------------------------------------------
    def _send_rejection(self, rejection: RequestRejected, rid: str) -> None:
        body = json.dumps({
            "type": "error",
            "error": {"type": rejection.error_type, "message": rejection.message},
            "request_id": rid,
        }).encode()
        headers = {"content-type": "application/json", **rejection.headers}
        with contextlib.suppress(OSError):
            self._send_head(rejection.status, headers, rid, length=len(body))
            if self.command != "HEAD":
                self.wfile.write(body)

    def _send_head(self, status: int, headers: dict[str, str], rid: str,
                   length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("request-id", rid)
        for name, value in headers.items():
            self.send_header(name, value)
        if length is not None:
            self.send_header("content-length", str(length))
        if self.close_connection:
            self.send_header("connection", "close")
        self.end_headers()

    def write_chunk(self, data: bytes, *, last: bool = False) -> None:
        """Send ``data`` as one HTTP chunk, in one write; `_Disconnected` if the client left.

        ``last`` appends the zero-length chunk that ends the body to the same write: a
        client that stops reading after the final event then has the whole body, so its
        connection can be reused (and closing it does not reset unread bytes).
        """
        frame = b"%x\r\n%s\r\n" % (len(data), data)
        if last:
            frame += b"0\r\n\r\n"
        try:
            self.wfile.write(frame)
            self.wfile.flush()
        except (OSError, ValueError) as err:  # ValueError: the socket file was closed
            raise _Disconnected from err

    def end_chunks(self) -> None:
        """The zero-length chunk that ends a chunked body (when `write_chunk` did not)."""
        try:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (OSError, ValueError) as err:
            raise _Disconnected from err

    def peer_gone(self) -> bool:
        """True when the client has closed its side of the connection.

        A readable socket whose peek returns no bytes is at end of stream: the client hung
        up. Checked between tokens, so a client that leaves stops its generation even when
        nothing is being written (non-streaming requests, held-back text).
        """
        sock = self.connection
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
            return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"")
        except (BlockingIOError, InterruptedError):
            return False
        except (OSError, ValueError):
            return True


def _too_large() -> RequestRejected:
    return RequestRejected(413, "request_too_large",
                           "Request exceeds the maximum allowed number of bytes.")


class _Exchange(abc.ABC):
    """One admitted request: wait for the model, generate, answer.

    The waiting, generating, disconnect and failure handling are here, shared by both
    endpoints; a subclass gives its endpoint's request class and the shapes of its JSON body
    and stream events.
    """

    #: The endpoint's request class (its ``from_json`` validates a body).
    request_type: ClassVar[type[GenerationRequest]]
    #: The ``anthropic-version`` values the endpoint accepts.
    versions: ClassVar[tuple[str, ...]]
    #: The request field a chat template's refusal is blamed on.
    conversation_field: ClassVar[str]
    #: The prefix of the answer's id (``compl_``, ``msg_``).
    id_prefix: ClassVar[str]

    def __init__(self, handler: _Handler, request: GenerationRequest, tokens: list[int],
                 rid: str, *, version: str) -> None:
        self.handler = handler
        self.owner = handler.owner
        self.request = request
        self.tokens = tokens
        self.rid = rid
        self.version = version
        self.id = new_id(self.id_prefix)
        #: True when the model failed and the client got an error instead of an answer.
        self.failed = False
        self._ended = False  # the chunked body's terminator has been sent
        self._last_ping = time.monotonic()

    # -- what an endpoint defines ------------------------------------------------------
    @staticmethod  # noqa: B027 - optional hook: most endpoints serve every valid request
    def check(owner: LocalServer, request: GenerationRequest) -> None:  # noqa: ARG004
        """Refuse (`RequestRejected`) a valid request this endpoint will not serve."""

    @abc.abstractmethod
    def _body(self, text: str, generation: Generation) -> dict[str, Any]:
        """The non-streaming answer."""

    @abc.abstractmethod
    def _open_stream(self) -> None:
        """The first event, sent with the response head (before the model is free)."""

    def _open_text(self) -> None:  # noqa: B027 - optional hook; Text Completions needs nothing
        """Events sent once the model is ours, before the first text."""

    @abc.abstractmethod
    def _text_event(self, delta: str, sent: list[str]) -> None:
        """Send one piece of text; ``sent`` is every piece so far, this one included."""

    @abc.abstractmethod
    def _close_stream(self, generation: Generation, sent: list[str]) -> None:
        """The closing events; the last one must end the body (``last=True``)."""

    # -- generating --------------------------------------------------------------------
    def _gone(self) -> bool:
        return self.owner.closed or self.handler.peer_gone()

    def _generation(self) -> Generation:
        r = self.request
        return self.owner.model.generate(
            self.tokens, max_tokens=r.max_tokens, temperature=r.temperature,
            top_k=r.top_k, top_p=r.top_p, stop_sequences=r.stop_sequences,
        )

    def _deltas(self, generation: Generation) -> Iterator[str]:
        """The generation's text, stopping the moment the client is gone."""
        try:
            for delta in generation:
                if self._gone():
                    raise _Disconnected
                yield delta
        finally:
            generation.close()

    def run(self, ticket: object) -> None:
        if self.request.stream:
            self._stream(ticket)
        else:
            self._single(ticket)

    # -- non-streaming -----------------------------------------------------------------
    def _single(self, ticket: object) -> None:
        gate = self.owner.gate
        if not gate.wait(ticket, cancelled=self._gone):
            raise _Disconnected
        try:
            generation = self._generation()
            text = "".join(self._deltas(generation))
        except _Disconnected:
            raise
        except Exception as err:  # a model failure: 500 api_error, as the real API would
            log.exception("generation failed")
            self.failed = True
            self.handler._send_rejection(RequestRejected(
                500, "api_error", f"Internal server error ({type(err).__name__})"), self.rid)
            return
        finally:
            gate.release()
        body = json.dumps(self._body(text, generation)).encode()
        try:
            self.handler._send_head(200, {"content-type": "application/json"}, self.rid,
                                    length=len(body))
            self.handler.wfile.write(body)
        except OSError as err:
            raise _Disconnected from err

    # -- streaming ---------------------------------------------------------------------
    def _event(self, name: str | None, data: dict[str, Any] | str, *, last: bool = False
               ) -> None:
        payload = data if isinstance(data, str) else json.dumps(data)
        head = f"event: {name}\n" if name else ""
        self.handler.write_chunk(f"{head}data: {payload}\n\n".encode(), last=last)
        if last:
            self._ended = True

    def _ping(self) -> None:
        self._last_ping = time.monotonic()
        self._event("ping", {"type": "ping"})

    def _waiting_cancelled(self) -> bool:
        # Called by the gate while we wait: a ping now and then keeps proxies from timing out
        # and is how a client that left is noticed (its write fails).
        if self._gone():
            return True
        if time.monotonic() - self._last_ping >= self.owner.ping_interval:
            try:
                self._ping()
            except _Disconnected:
                return True
        return False

    def _stream(self, ticket: object) -> None:
        gate = self.owner.gate
        try:
            self.handler._send_head(200, {
                "content-type": "text/event-stream; charset=utf-8",
                "cache-control": "no-cache",
                "transfer-encoding": "chunked",
            }, self.rid)
            self._open_stream()
        except (OSError, _Disconnected) as err:
            gate.leave(ticket)
            raise _Disconnected from err
        if not gate.wait(ticket, cancelled=self._waiting_cancelled):
            raise _Disconnected
        try:
            self._generate_events()
        finally:
            gate.release()
        if not self._ended:
            self.handler.end_chunks()

    def _generate_events(self) -> None:
        self._open_text()
        generation = self._generation()
        sent: list[str] = []
        try:
            for delta in self._deltas(generation):
                if not delta:
                    continue
                sent.append(delta)
                self._text_event(delta, sent)
        except _Disconnected:
            raise
        except Exception as err:  # a model failure mid-stream: the protocol's error event
            log.exception("generation failed")
            self.failed = True
            self._event("error", {"type": "error", "error": {
                "type": "api_error", "message": f"Internal server error ({type(err).__name__})",
            }}, last=True)
            return
        self._close_stream(generation, sent)


class _CompleteExchange(_Exchange):
    """``POST /v1/complete``: ``Completion`` bodies and ``completion`` events."""

    request_type = CompletionRequest
    versions = VERSIONS
    conversation_field = "prompt"
    id_prefix = "compl_"

    @staticmethod
    def check(owner: LocalServer, request: GenerationRequest) -> None:
        owner.check_completions(request.model)

    @property
    def legacy(self) -> bool:
        """2023-01-01: bodies without ``type``/``id``, cumulative unnamed events, ``[DONE]``."""
        return self.version == LEGACY_VERSION

    def _completion(self, text: str, stop_reason: str | None, stop: str | None
                    ) -> dict[str, Any]:
        """A ``Completion`` object: the whole body, or one event's data."""
        if self.legacy:
            return {
                "completion": text, "stop_reason": stop_reason, "stop": stop,
                "truncated": False, "exception": None, "log_id": self.id,
                "model": self.owner.model.name,
            }
        return {
            "type": "completion", "id": self.id, "completion": text,
            "stop_reason": stop_reason, "model": self.owner.model.name, "stop": stop,
            "log_id": self.id,
        }

    def _body(self, text: str, generation: Generation) -> dict[str, Any]:
        return self._completion(text, generation.stop_reason, generation.stop)

    def _open_stream(self) -> None:
        # A ping at once: the client has its 200 and a first event while the request waits.
        self._ping()

    def _text_event(self, delta: str, sent: list[str]) -> None:
        self._event(*self._completion_event(delta, sent, None, None))

    def _close_stream(self, generation: Generation, sent: list[str]) -> None:
        self._event(*self._completion_event("", sent, generation.stop_reason, generation.stop),
                    last=not self.legacy)
        if self.legacy:
            self._event(None, "[DONE]", last=True)

    def _completion_event(
        self, delta: str, sent: list[str], stop_reason: str | None, stop: str | None,
    ) -> tuple[str | None, dict[str, Any]]:
        if self.legacy:
            # 2023-01-01: unnamed events whose completion is the whole text so far.
            return None, self._completion("".join(sent), stop_reason, stop)
        return "completion", self._completion(delta, stop_reason, stop)


class _MessagesExchange(_Exchange):
    """``POST /v1/messages``: ``Message`` bodies and the Messages stream events."""

    request_type = MessagesRequest
    versions = MESSAGES_VERSIONS
    conversation_field = "messages"
    id_prefix = "msg_"

    def _message(self, content: list[dict[str, str]], generation: Generation | None
                 ) -> dict[str, Any]:
        """A ``Message`` object; ``generation`` None: the start of a stream, nothing yet."""
        reason, sequence = messages_stop(generation) if generation else (None, None)
        return {
            "id": self.id, "type": "message", "role": "assistant",
            "model": self.owner.model.name, "content": content, "stop_reason": reason,
            "stop_sequence": sequence,
            "usage": {"input_tokens": len(self.tokens),
                      "output_tokens": len(generation.tokens) if generation else 0},
        }

    def _body(self, text: str, generation: Generation) -> dict[str, Any]:
        return self._message([{"type": "text", "text": text}], generation)

    def _open_stream(self) -> None:
        self._event("message_start", {"type": "message_start",
                                      "message": self._message([], None)})

    def _open_text(self) -> None:
        self._event("content_block_start", {
            "type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}})
        self._ping()

    def _text_event(self, delta: str, sent: list[str]) -> None:  # noqa: ARG002
        self._event("content_block_delta", {
            "type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": delta}})

    def _close_stream(self, generation: Generation, sent: list[str]) -> None:  # noqa: ARG002
        reason, sequence = messages_stop(generation)
        self._event("content_block_stop", {"type": "content_block_stop", "index": 0})
        self._event("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": sequence},
            "usage": {"output_tokens": len(generation.tokens)}})
        self._event("message_stop", {"type": "message_stop"}, last=True)


def messages_stop(generation: Generation) -> tuple[str, str | None]:
    """A finished generation's ``(stop_reason, stop_sequence)`` in Messages API terms.

    The model ending its own turn is ``end_turn``; one of the caller's stop sequences is
    ``stop_sequence`` (and names it); running out of tokens is ``max_tokens``.
    """
    if generation.end_of_turn:
        return "end_turn", None
    if generation.stop_reason == STOP_SEQUENCE:
        return "stop_sequence", generation.stop
    return "max_tokens", None


#: The endpoints, by path (a trailing slash is ignored).
_ROUTES: dict[str, type[_Exchange]] = {
    COMPLETE_PATH: _CompleteExchange,
    MESSAGES_PATH: _MessagesExchange,
}


__all__ = [
    "COMPLETE_PATH",
    "DEFAULT_MAX_BODY_BYTES",
    "MESSAGES_PATH",
    "LocalServer",
    "Stats",
    "is_loopback",
    "messages_stop",
    "new_id",
    "serve",
]

