"""`ApiApp`: the server's ASGI application (Starlette requests and responses, on uvicorn).

Everything that can be decided from the request head is decided before any of the body is
read, in this order: HTTP version (505), header count (431), ``Host`` on a server without a
key (403, so that DNS rebinding cannot reach it; with a key, the key does), ``Content-Length``
together with ``Transfer-Encoding`` (400, the connection closed), path (404) and method
(405), API key (401), ``anthropic-version`` (400) and ``Content-Length`` over the limit
(413). Then the body is read, bounded in bytes
and in time (408), parsed, validated (`jupyter_complete.local.request`), checked against
the server's `RequestLimits`, and admitted by the `Backend` (400 too long, 529 full). Only
then does the `Exchange` answer, through a `Peer` that stands for this request's ASGI
``send`` and ``receive``.

Endpoints: ``POST /v1/complete``, ``POST /v1/messages``, ``POST /v1/messages/count_tokens``,
``GET /v1/models`` and ``GET /v1/models/{model_id}``. A trailing slash is ignored.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from ... import wire
from ..api.backend import REQUESTER, Backend
from ..api.encoders import CompleteEncoder, Encoder, MessagesEncoder, error_body, new_id
from ..api.exchange import ClientGone, Exchange
from ..api.rules import RequestLimits
from ..request import (
    RequestRejected,
    check_key,
    check_version,
    count_tokens_request,
    invalid,
    load_object,
)
from .hosts import HostCheck
from .limits import HttpLimits
from .protocol import CONNECTION_KEY

log = logging.getLogger("jupyter_complete.local")

_GENERATE: dict[str, type[Encoder]] = {
    wire.COMPLETE_PATH: CompleteEncoder,
    wire.MESSAGES_PATH: MessagesEncoder,
}
#: Bodies at least this long are parsed in a worker thread, off the event loop.
_THREAD_PARSE_BYTES = 256 * 1024
#: Bodies up to this size are always read (connections bound them); larger ones count
#: against ``max_body_bytes_in_flight``.
_SMALL_BODY = 64 * 1024


def _rejection(status: int, error_type: str, message: str, **headers: str) -> RequestRejected:
    return RequestRejected(status, error_type, message, headers)


class _AsgiPeer:
    """`Peer` over one ASGI request.

    ``send`` for the answer, ``receive`` for news of the client leaving (uvicorn reports
    ``http.disconnect`` once the connection is lost).
    """

    def __init__(self, receive: Receive, send: Send, request_id: str) -> None:
        self._send = send
        self._receive = receive
        self._rid = request_id.encode()
        self.left = asyncio.Event()
        self._watch = asyncio.ensure_future(self._watch_for_disconnect())

    async def _watch_for_disconnect(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.left.set()
                return

    def stop(self) -> None:
        self._watch.cancel()

    async def start(self, status: int, headers: Mapping[str, str]) -> None:
        if self.left.is_set():
            raise ClientGone
        raw = [(b"request-id", self._rid)]
        raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        await self._send({"type": "http.response.start", "status": status, "headers": raw})

    async def send(self, data: bytes, *, last: bool = False) -> None:
        if self.left.is_set():
            raise ClientGone
        await self._send({"type": "http.response.body", "body": data, "more_body": not last})


class ApiApp:
    """The ASGI app (see the module docstring).

    Args:
        backend: where generations come from.
        limits: the HTTP layer's limits (read at each connection and request, so a change
            applies to what comes next).
        request_limits: the request rules' limits.
        api_key: the key requests must carry, or None.
        hosts: which ``Host`` headers are accepted.
        stats: counts ``requests`` and each request's outcome.
        ping_interval: seconds between pings while a streamed request waits.
        refuse_complete_models: model names ``/v1/complete`` turns away (400).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        limits: HttpLimits,
        request_limits: RequestLimits,
        api_key: str | None,
        hosts: HostCheck,
        stats: Any,
        ping_interval: float,
        refuse_complete_models: Iterable[str] = (),
    ) -> None:
        self.backend = backend
        self.limits = limits
        self.request_limits = request_limits
        self._api_key = api_key
        self.hosts = hosts
        self.stats = stats
        self.ping_interval = ping_interval
        self.refuse_complete_models = frozenset(refuse_complete_models)
        self._in_flight = 0  # bytes of bodies being read or parsed (max_body_bytes_in_flight)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one ASGI ``http`` request (other scope types are ignored).

        A request the API refuses gets its error envelope and status; a fault of ours gets
        the API's 500 ``api_error`` if the answer has not begun (else it is re-raised, and
        uvicorn drops the connection). Each outcome is counted in `stats`.
        """
        if scope["type"] != "http":
            return
        self.stats.add("requests")
        rid = new_id("req_")
        request = Request(scope, receive)
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._handle(request, rid, tracked)
        except ClientDisconnect:  # it left before its body was in: no one to answer
            self.stats.add("disconnected")
        except RequestRejected as rejection:
            self.stats.add("overloaded" if rejection.status == 529 else "rejected")
            await self._error(request, send, rid, rejection)
        except Exception as err:
            # A fault of ours (a backend's bug): the API's 500, if the answer has not begun.
            self.stats.add("failed")
            if started:
                raise
            log.exception("request failed")
            await self._error(
                request,
                send,
                rid,
                RequestRejected(500, "api_error", f"Internal server error ({type(err).__name__})"),
            )

    async def _error(
        self, request: Request, send: Send, rid: str, rejection: RequestRejected
    ) -> None:
        body = json.dumps(error_body(rejection.error_type, rejection.message, rid)).encode()
        headers = {"request-id": rid, **rejection.headers}
        response = Response(body, rejection.status, headers, media_type="application/json")
        await response(request.scope, request.receive, send)

    # -- the head ----------------------------------------------------------------------
    def _check_head(self, request: Request) -> tuple[str, str]:
        """Everything decided by the head; the route's (path, method) that applies."""
        version = request.scope.get("http_version", "1.1")
        if version not in ("1.0", "1.1"):
            raise _rejection(
                505,
                "invalid_request_error",
                f"HTTP/{version} is not supported; use HTTP/1.1",
                connection="close",
            )
        raw: list[tuple[bytes, bytes]] = request.scope["headers"]
        if len(raw) > self.limits.max_headers:
            raise _rejection(
                431,
                "invalid_request_error",
                f"Too many header fields (the limit is {self.limits.max_headers})",
                connection="close",
            )
        headers = request.headers
        if self._api_key is None:
            # Without a key, Host is what keeps a web page (DNS rebinding) out; with one,
            # the key does, and Host is left free for tunnels and proxies.
            self.hosts.check(headers.getlist("host"))
        if "transfer-encoding" in headers and "content-length" in headers:
            # RFC 9112 6.1: such a message may be an attempt at request smuggling; the
            # connection cannot be trusted past it.
            raise _rejection(
                400,
                "invalid_request_error",
                "Content-Length and Transfer-Encoding together are not accepted",
                connection="close",
            )
        path = request.scope["path"].rstrip("/")
        method = request.method
        allowed = self._methods(path)
        if allowed is None:
            raise _rejection(404, "not_found_error", "Not Found")
        if method not in allowed:
            raise _rejection(
                405,
                "invalid_request_error",
                "Method Not Allowed",
                allow=", ".join(m for m in allowed if m != "HEAD"),
            )
        check_key(headers.get("x-api-key"), headers.get("authorization"), self._api_key)
        return path, method

    @staticmethod
    def _methods(path: str) -> tuple[str, ...] | None:
        if path in _GENERATE or path == wire.COUNT_TOKENS_PATH:
            return ("POST",)
        if path == wire.MODELS_PATH or (
            path.startswith(wire.MODELS_PATH + "/") and path.count("/") == 3
        ):
            return ("GET", "HEAD")
        return None

    async def _read_body(self, request: Request) -> bytes:
        """The body, at most ``max_body_bytes``, within ``body_timeout`` seconds."""
        limit = self.limits.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and int(declared) > limit:
            raise _too_large()
        parts: list[bytes] = []
        size = 0

        async def read() -> None:
            nonlocal size
            async for part in request.stream():
                size += len(part)
                if size > limit:
                    raise _too_large()
                parts.append(part)

        try:
            await asyncio.wait_for(read(), self.limits.body_timeout)
        except asyncio.TimeoutError:
            raise _rejection(
                408,
                "invalid_request_error",
                f"The request body did not arrive within {self.limits.body_timeout:g} s",
                connection="close",
            ) from None
        return b"".join(parts)

    # -- endpoints ---------------------------------------------------------------------
    async def _handle(self, request: Request, rid: str, send: Send) -> None:
        path, method = self._check_head(request)
        if path.startswith(wire.MODELS_PATH):
            check_version(request.headers.getlist("anthropic-version"), wire.MESSAGES_VERSIONS)
            await self._models(request, send, rid, path)
            return
        encoder_type = _GENERATE.get(path)
        versions = encoder_type.versions if encoder_type else wire.MESSAGES_VERSIONS
        version = check_version(request.headers.getlist("anthropic-version"), versions)
        declared = request.headers.get("content-length")
        # Over max_body_bytes is a 413 (from _read_body), whatever else is in flight.
        reserved = min(
            self.limits.max_body_bytes,
            self.limits.max_body_bytes if declared is None else int(declared),
        )
        if reserved > _SMALL_BODY and (
            self._in_flight + reserved > self.limits.max_body_bytes_in_flight
        ):
            raise _rejection(
                529,
                "overloaded_error",
                "Too many large request bodies at once; retry shortly (--max-body-bytes-in-flight)",
                **{"x-should-retry": "true"},
            )
        self._in_flight += reserved
        try:
            raw = await self._read_body(request)
            body = await (
                asyncio.to_thread(load_object, raw)
                if len(raw) >= _THREAD_PARSE_BYTES
                else _now(load_object(raw))
            )
        finally:
            self._in_flight -= reserved
        if encoder_type is None:
            counted = count_tokens_request(body)
            self.request_limits.check(counted)
            tokens = await self.backend.count_tokens(counted)
            await self._json(request, send, rid, {"input_tokens": tokens})
            self.stats.add("completed")
            return
        validated = encoder_type.request_type.from_dict(body)
        self.request_limits.check(validated)
        if encoder_type is CompleteEncoder and validated.model in self.refuse_complete_models:
            raise invalid(
                f"{validated.model} does not support the Text Completions API; use the Messages API"
            )
        REQUESTER.set(request.scope.get("state", {}).get(CONNECTION_KEY))
        job = await self.backend.admit(validated)
        encoder = encoder_type(self.backend.model_name(validated.model), version, job.input_tokens)
        peer = _AsgiPeer(request.receive, send, rid)
        try:
            outcome = await Exchange(
                encoder,
                job,
                peer,
                request_id=rid,
                stream=validated.stream,
                ping_interval=self.ping_interval,
            ).run()
        finally:
            peer.stop()
        self.stats.add(outcome)

    async def _models(self, request: Request, send: Send, rid: str, path: str) -> None:
        cards = self.backend.models()
        infos = [
            {
                "type": "model",
                "id": c.id,
                "display_name": c.display_name,
                "created_at": c.created_at,
            }
            for c in cards
        ]
        if path != wire.MODELS_PATH:
            wanted = path.rsplit("/", 1)[1]
            found = [info for info in infos if info["id"] == wanted]
            if not found:
                raise _rejection(404, "not_found_error", f"model: {wanted}")
            await self._json(request, send, rid, found[0])
            return
        query = request.query_params
        try:
            count = int(query.get("limit", "20"))
        except ValueError:
            count = 0
        if not 1 <= count <= 1000:
            raise invalid("limit: Input should be an integer from 1 to 1000")
        ids = [info["id"] for info in infos]
        start, stop = 0, len(infos)
        if query.get("after_id") in ids:
            start = ids.index(query["after_id"]) + 1
        if query.get("before_id") in ids:
            stop = ids.index(query["before_id"])
            start = max(start, stop - count)
        page = infos[start:stop][:count]
        await self._json(
            request,
            send,
            rid,
            {
                "data": page,
                "has_more": start + len(page) < stop,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
            },
        )

    async def _json(self, request: Request, send: Send, rid: str, data: Any) -> None:
        response = Response(
            json.dumps(data).encode(), 200, {"request-id": rid}, media_type="application/json"
        )
        await response(request.scope, request.receive, send)


async def _now(value: Any) -> Any:
    return value


def _too_large() -> RequestRejected:
    return _rejection(
        413, "request_too_large", "Request exceeds the maximum allowed number of bytes."
    )


__all__ = ["ApiApp"]
