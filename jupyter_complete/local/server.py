"""`LocalServer` and `serve`: ``/v1/complete``, ``/v1/messages`` and friends over HTTP/1.1.

The server answers as the real API does (https://docs.anthropic.com/en/api/complete,
https://docs.anthropic.com/en/api/messages): the same validation, statuses and error
envelopes, a ``request-id`` header on every response, JSON bodies or, with ``"stream":
true``, server-sent events in chunked transfer encoding, each event its own HTTP chunk,
sent the moment its text exists. Everything is checked before the first byte
of a response is sent, so a request that is wrong gets a normal JSON error with its status,
never an error inside a 200.

Layers: `jupyter_complete.local.http` (uvicorn with h11, and a Starlette ASGI app: limits,
key, ``Host``), `jupyter_complete.local.api` (request rules, encoders, the exchange; no HTTP
objects) and a `Backend` (the built-in model: `jupyter_complete.local.builtin`). The server
runs its own asyncio loop on one background thread (no signal handlers: it may live inside
a Jupyter kernel), plus one worker thread per admitted generation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .._constants import ENV_SERVER_API_KEY
from .api.encoders import new_id
from .api.rules import RequestLimits
from .http.limits import DEFAULT_MAX_BODY_BYTES, HttpLimits
from .sockets import bind, descriptor_budget, is_loopback

if TYPE_CHECKING:
    from .api.backend import Backend
    from .gate import Gate
    from .model import LocalModel
    from .upstream import UpstreamConfig

log = logging.getLogger(__name__)

#: Seconds between pings while a streamed request waits for the model.
DEFAULT_PING_INTERVAL = 5.0


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


class LocalServer:
    """A running server in front of a `Backend` (start the built-in one with `serve`).

    Args:
        backend: where generations come from (`ModelBackend`, or an upstream backend).
        host, port: where to listen (port 0: a free one).
        api_key: the key requests must carry, or None.
        limits: the HTTP layer's limits (`HttpLimits`); ``max_connections`` is lowered to
            what the process's descriptors allow.
        request_limits: the request rules' limits (`RequestLimits`).
        ping_interval: seconds between pings while a streamed request waits.
        refuse_complete_models: requested model names that ``/v1/complete`` turns away.
        owns_model: close the backend's model when the server closes.

    Attributes:
        url: the base URL to give a client (``http://127.0.0.1:PORT``).
        stats: `Stats` counters.
        limits, request_limits: in force; changing a field applies to what comes next.

    Raises:
        OSError: the address cannot be bound.
    """

    def __init__(
        self,
        backend: Backend,
        host: str,
        port: int,
        api_key: str | None,
        *,
        limits: HttpLimits | None = None,
        request_limits: RequestLimits | None = None,
        ping_interval: float = DEFAULT_PING_INTERVAL,
        refuse_complete_models: Iterable[str] = (),
        owns_model: bool = False,
    ) -> None:
        from .http import ApiApp, HostCheck

        self.backend = backend
        self._api_key = api_key
        self.limits = limits if limits is not None else HttpLimits()
        self.limits.max_connections = min(self.limits.max_connections, descriptor_budget())
        self.request_limits = request_limits if request_limits is not None else RequestLimits()
        self.ping_interval = ping_interval
        self.refuse_complete_models = frozenset(refuse_complete_models)
        self.stats = Stats()
        self._owns_model = owns_model
        self._closing = threading.Event()
        self._sock = bind(host, port)
        self.host: str = host
        self.port: int = int(self._sock.getsockname()[1])
        # A wildcard bind is reachable on loopback; give clients that address.
        shown = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        self.url: str = (
            f"http://[{shown}]:{self.port}" if ":" in shown else (f"http://{shown}:{self.port}")
        )
        self.app = ApiApp(
            backend,
            limits=self.limits,
            request_limits=self.request_limits,
            api_key=api_key,
            hosts=HostCheck(host, self.limits.allowed_hosts),
            stats=self.stats,
            ping_interval=ping_interval,
            refuse_complete_models=self.refuse_complete_models,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._uvicorn: Any = None
        self._failed: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"jupyter-complete-server-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 30
        while not (self._uvicorn is not None and self._uvicorn.started):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._sock.close()
                raise OSError(f"the server did not start: {self._failed!r}")
            time.sleep(0.005)

    # -- the loop thread ---------------------------------------------------------------
    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as err:  # reported to the starting thread, or logged
            self._failed = err
            if not self._closing.is_set():
                log.exception("the server stopped")

    async def _serve(self) -> None:
        import uvicorn

        from .http import ApiProtocol

        self._loop = asyncio.get_running_loop()
        config = uvicorn.Config(
            self.app,
            http=ApiProtocol,
            ws="none",
            lifespan="off",
            interface="asgi3",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            headers=[("server", "jupyter-complete-local")],
            timeout_keep_alive=int(max(1, self.limits.idle_timeout)),
            h11_max_incomplete_event_size=self.limits.max_head_bytes,
            backlog=1024,
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        self._uvicorn = server
        await server.serve(sockets=[self._sock])

    async def _shutdown(self) -> None:
        server = self._uvicorn
        for listener in getattr(server, "servers", []):
            listener.close()
        for connection in list(server.server_state.connections):
            connection.transport.abort()
        await self.backend.aclose()
        server.force_exit = True
        server.should_exit = True

    # -- public ------------------------------------------------------------------------
    @property
    def model(self) -> LocalModel:
        """The built-in model answering; AttributeError for a server with another backend."""
        model: LocalModel | None = getattr(self.backend, "model", None)
        if model is None:
            raise AttributeError(f"{type(self.backend).__name__} has no built-in model")
        return model

    @property
    def gate(self) -> Gate:
        """The built-in model's queue (`Gate`)."""
        gate: Gate = self.backend.gate  # type: ignore[attr-defined]
        return gate

    @property
    def max_body_bytes(self) -> int:
        """Request bodies above this size get 413."""
        return self.limits.max_body_bytes

    @property
    def _connections(self) -> set[Any]:
        """The open connections (uvicorn's protocol objects)."""
        server = self._uvicorn
        return set(server.server_state.connections) if server is not None else set()

    @property
    def requires_key(self) -> bool:
        """True when requests must carry the server's API key."""
        return self._api_key is not None

    @property
    def closed(self) -> bool:
        """True once `close` has been called."""
        return self._closing.is_set()

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
        loop = self._loop
        if loop is not None and self._thread.is_alive():
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            with contextlib.suppress(Exception):
                future.result(timeout=20)
        self._thread.join(timeout=10)
        with contextlib.suppress(OSError):
            self._sock.close()
        if self._owns_model:
            with self.model.lock:
                self.model.close()

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        key = "required" if self._api_key is not None else "none"
        model: LocalModel | None = getattr(self.backend, "model", None)
        name = model.name if model is not None else type(self.backend).__name__
        return f"<LocalServer {self.url} model={name!r} api_key={key}>"


def import_stack() -> None:
    """Import what starting a server imports (uvicorn, Starlette, the app), ahead of time.

    For a caller with time to spare: `jupyter_complete.local.embedded` does it while the
    model loads on another thread, and the server then starts in a few milliseconds
    instead of ~60.
    """
    import uvicorn  # noqa: F401

    from . import builtin  # noqa: F401
    from .http import ApiApp, ApiProtocol  # noqa: F401


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
    limits: HttpLimits | None = None,
    request_limits: RequestLimits | None = None,
    reuse_cache: bool = False,
    n_threads: int | None = None,
    upstream: UpstreamConfig | None = None,
) -> LocalServer:
    """Start the built-in model's server on a background thread.

    Args:
        host: address to listen on. Anything but loopback requires ``api_key``.
        port: TCP port; 0 picks a free one (read it from ``.url``).
        model: a `LocalModel`, or the path of a GGUF file to load; default
            ``JUPYTER_COMPLETE_MODEL_PATH``, else the built-in SmolLM2-135M-Instruct.
        api_key: when set, requests must send it as ``x-api-key`` (401 otherwise).
        max_queue: requests that may wait while one generates; past it, 529.
        max_body_bytes: request bodies above this size get 413 (overrides ``limits``).
        ping_interval: seconds between pings while a streamed request waits its turn.
        refuse_complete_models: model names for which ``/v1/complete`` answers 400
            invalid_request_error "<model> does not support the Text Completions API; use
            the Messages API", as the real API does for newer models (``/v1/messages`` still
            answers them). For trying out and teaching the switch to the Messages API.
        limits: connection, head, body and time limits (`HttpLimits`; its defaults else).
        request_limits: stop-sequence, prompt-size and turn limits (`RequestLimits`).
        reuse_cache: reuse the KV cache for the whole prefix a prompt shares with the one
            before (faster repeats). Only for a server a single party can use: with several
            users, timing it tells one how much of a guessed prompt another sent. Off, only
            the chat template's own leading tokens are reused.
        n_threads: CPU threads for a model this call loads (ignored when ``model`` is a
            `LocalModel`); default ``JUPYTER_COMPLETE_THREADS``, else measured while it runs
            (`ThreadTuner`).
        upstream: take generations from a serving engine instead of a local model
            (`jupyter_complete.local.upstream.UpstreamConfig`: its URL, protocol, key
            variable, model name and bound on requests in flight); ``model`` and
            ``max_queue`` are then unused: the engine queues and batches.

    Returns:
        The running `LocalServer`.

    Raises:
        ValueError: ``host`` is not loopback and no ``api_key`` was given.
        OSError: the address cannot be bound.
        jupyter_complete.errors.LocalModelUnavailableError: the model cannot be loaded.
    """
    from .builtin import ModelBackend
    from .model import LocalModel

    if not is_loopback(host) and not api_key:
        raise ValueError(
            f"Refusing to listen on {host or 'all interfaces'!s} without an API key: anyone "
            "who can reach it could use it. Pass api_key=... (--api-key, or "
            f"{ENV_SERVER_API_KEY} for the command), or bind 127.0.0.1."
        )
    http_limits = limits if limits is not None else HttpLimits()
    if limits is None or max_body_bytes != DEFAULT_MAX_BODY_BYTES:
        http_limits.max_body_bytes = max_body_bytes
    owned: LocalModel | None = None  # a model this call loads: the server closes it
    try:
        if upstream is not None:
            from .upstream import UpstreamBackend

            backend: Backend = UpstreamBackend(upstream)
        else:
            if not isinstance(model, LocalModel):
                model = owned = LocalModel(model, n_threads=n_threads)
            backend = ModelBackend(model, max_queue=max_queue, reuse_cache=reuse_cache)
        return LocalServer(
            backend,
            host,
            port,
            api_key or None,
            limits=http_limits,
            request_limits=request_limits,
            ping_interval=ping_interval,
            refuse_complete_models=refuse_complete_models,
            owns_model=owned is not None,
        )
    except BaseException:
        if owned is not None:
            owned.close()
        raise


__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_PING_INTERVAL",
    "LocalServer",
    "Stats",
    "import_stack",
    "new_id",
    "serve",
]
