"""`ApiProtocol`: uvicorn's h11 connection with the limits a shared server needs.

uvicorn parses HTTP/1.1 with h11 (pinned: ``http=ApiProtocol``, never httptools). h11
refuses the request-smuggling shapes by itself: two different ``Content-Length`` values,
any ``Transfer-Encoding`` but ``chunked`` (``xchunked`` is a 501), chunk sizes that are not
plain hex (``+61``, ``0_61``, ``-1``), and bounds the request head (431 past
``max_head_bytes``). ``Content-Length`` together with ``Transfer-Encoding`` is accepted by
h11 (chunked wins, RFC 9112 6.3); the app refuses it and closes the connection.

What uvicorn does not do, this class adds:

- A time limit on the request head (slowloris): uvicorn's keep-alive timer runs only
  between requests and is cancelled by the first byte of the next one, so a client that
  trickles a head byte by byte would hold its connection forever. Here the head must be
  complete within ``head_timeout`` seconds of the connection opening (or of its first byte,
  after a keep-alive pause); otherwise a 408 (or a plain close, when nothing was sent).
- A cap on open connections (``max_connections``): past it, a new connection gets a 503
  envelope and is closed at once, so idle connections cannot use up the process's file
  descriptors. (When ``accept()`` itself fails with EMFILE, asyncio stops accepting for a
  second instead of spinning.)
- Half-closed clients: a client that shuts down its sending side after the request still
  gets its answer (uvicorn would drop the connection at end of stream).
- A bounded drain: a body left unread after an early answer (401, 413...) is read and
  thrown away, at most ``drain_bytes`` and ``drain_timeout`` seconds, so the client can
  read that answer instead of meeting a reset; past either, the connection is closed.
- Protocol errors answered with the API's JSON error envelope and a ``request-id``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..api.encoders import error_body, new_id
from .limits import HttpLimits

log = logging.getLogger("jupyter_complete.local")
#: uvicorn's own per-connection messages ("Invalid HTTP request received.", a crash of the
#: app) go here: under our name, and never to stderr through logging's last resort (the
#: server may run inside a kernel); configure logging to see them.
http_log = logging.getLogger("jupyter_complete.local.http")
http_log.addHandler(logging.NullHandler())

_PHRASES = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}

#: Where h11's reasons start quoting the request's bytes.
_QUOTED = re.compile(r":? (?:bytearray\()?b['\"]")


def raw_error(status: int, error_type: str, message: str) -> bytes:
    """A whole ``connection: close`` error response, for when h11 cannot frame one."""
    rid = new_id("req_")
    body = json.dumps(error_body(error_type, message, rid)).encode()
    head = (
        f"HTTP/1.1 {status} {_PHRASES.get(status, 'Error')}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
        f"request-id: {rid}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


class _Connection(h11.Connection):
    """h11's connection, remembering the protocol error it raised (for the right status)."""

    last_error: h11.RemoteProtocolError | None = None

    def next_event(self) -> Any:
        try:
            return super().next_event()
        except h11.RemoteProtocolError as err:
            self.last_error = err
            raise


#: The key, in each request's ``scope["state"]``, of a token unique to its connection.
CONNECTION_KEY = "jupyter_complete.connection"


class ApiProtocol(H11Protocol):
    """One HTTP/1.1 connection (see the module docstring). ``limits`` comes from the app."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.logger = http_log
        # Each request's scope["state"] is a copy of this: a token of this connection alone.
        self.app_state = {**self.app_state, CONNECTION_KEY: object()}
        app: Any = self.config.app
        self.limits: HttpLimits = app.limits
        self.conn = _Connection(h11.SERVER, self.limits.max_head_bytes)
        self._deadline: asyncio.TimerHandle | None = None
        self._head_started = False  # bytes of the current request head have arrived
        self._line_done = False  # ... and its request line is complete
        self._head = bytearray()  # the head so far, up to the limit
        self._line_end = self._head_end = -1  # where its first line and it end, once seen
        self._half_closed = False
        self._drained = 0
        self._drain_until = 0.0

    # -- connections -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Accept a connection and start its head clock, or refuse it past ``max_connections``.

        A refused connection gets a 503 ``overloaded_error`` envelope and is closed at once.
        """
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            log.warning(
                "connection refused: %d open, the limit is %d (--max-connections)",
                len(self.connections) - 1,
                self.limits.max_connections,
            )
            transport.write(
                raw_error(
                    503,
                    "overloaded_error",
                    f"Too many open connections: the limit is {self.limits.max_connections} "
                    "(--max-connections); retry shortly",
                )
            )
            transport.close()
            return
        self._arm(self.limits.head_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop this connection's clock, then let uvicorn clean up (``exc``: why, or None)."""
        self._disarm()
        super().connection_lost(exc)

    def eof_received(self) -> bool:  # type: ignore[override]
        """The client shut down its sending side: answer what it asked, then close."""
        self._half_closed = True
        # Their side is DONE after a whole request, or MUST_CLOSE when it also asked to
        # close the connection (HTTP/1.0, "Connection: close").
        asked = (
            self.cycle is not None
            and not self.cycle.response_complete
            and self.conn.their_state in (h11.DONE, h11.MUST_CLOSE)
            and not self._head_started
        )
        if not asked:
            # Nothing asked, or half a head or body that can never be finished.
            self._disarm()
            self.transport.close()
            return False
        return True

    # -- the request head's clock ------------------------------------------------------
    def _arm(self, seconds: float, callback: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._head_started:
            self.transport.write(
                raw_error(
                    408,
                    "invalid_request_error",
                    f"The request head did not arrive within {self.limits.head_timeout:g} s",
                )
            )
        self.transport.close()

    def _drain_timed_out(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        """Feed ``data`` to h11, timing and bounding the head, and draining unread bodies.

        A head's first byte starts its clock (``head_timeout``); a head past ``max_head_bytes``
        is refused (431, or 414 for the request line alone); a body left unread after an
        answer is thrown away up to ``drain_bytes``/``drain_timeout``, then the connection
        is closed.
        """
        state = self.conn.their_state
        if self.conn.our_state is h11.DONE and state is h11.SEND_BODY:
            # Draining the unread body of a request already answered.
            self._drained += len(data)
            if self._drained > self.limits.drain_bytes or time.monotonic() > self._drain_until:
                self._disarm()
                self.transport.close()
                return
        elif state is h11.IDLE:
            if not self._head_started:
                self._head_started = True
                if self._deadline is None:  # the first byte after a keep-alive pause
                    self._arm(self.limits.head_timeout, self._head_timed_out)
            if self._head_too_long(data):
                return
        super().data_received(data)
        if self._head_started and self.conn.their_state is not h11.IDLE:
            # The head is complete (or refused): its clock stops; the app times the body.
            self._head_started = False
            self._line_done = False
            self._head = bytearray()
            self._line_end = self._head_end = -1
            self._disarm()

    def _head_too_long(self, data: bytes) -> bool:
        """Refuse a head longer than ``max_head_bytes`` (414 when the request line alone is).

        h11 bounds only heads still incomplete, not one that arrives whole in a read.
        """
        limit = self.limits.max_head_bytes
        seen = len(self._head)
        self._head += data[: max(0, limit + 4 - seen)]
        if self._line_end == -1:
            self._line_end = self._head.find(b"\n", seen)
            self._line_done = self._line_end != -1
        if self._head_end == -1:
            self._head_end = self._head.find(b"\r\n\r\n", max(0, seen - 3))
        end = self._head_end
        if (end == -1 and len(self._head) <= limit) or (end != -1 and end + 4 <= limit):
            return False
        self._disarm()
        if self._line_end == -1 or self._line_end > limit:
            self.transport.write(
                raw_error(
                    414,
                    "invalid_request_error",
                    f"Request line too long (the limit is {limit} bytes)",
                )
            )
        else:
            self.transport.write(
                raw_error(
                    431,
                    "invalid_request_error",
                    "Request header fields too large "
                    f"(the limit is {limit} bytes, --max-head-bytes)",
                )
            )
        self.transport.close()
        return True

    def on_response_complete(self) -> None:
        """After an answer: close a half-closed connection, or drain a body left unread.

        The drain is bounded by ``drain_bytes`` and ``drain_timeout`` seconds.
        """
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self._half_closed:
            self.transport.close()
            return
        if self.conn.their_state is h11.SEND_BODY:
            self._drained = 0
            self._drain_until = time.monotonic() + self.limits.drain_timeout
            self._arm(self.limits.drain_timeout, self._drain_timed_out)
        # Otherwise uvicorn's keep-alive timer runs until the next request's first byte.

    # -- protocol errors ---------------------------------------------------------------
    def send_400_response(self, msg: str) -> None:
        """h11 refused the request: its status and reason in the API's envelope."""
        self._disarm()
        if self.cycle is not None and self.cycle.response_started:
            # Refused while draining a body after an answer: nothing more to say.
            self.transport.close()
            return
        conn = self.conn
        err = conn.last_error if isinstance(conn, _Connection) else None
        status = err.error_status_hint if err is not None else 400
        # h11 quotes the offending line ("illegal header line: bytearray(b'...')"), which
        # may hold the key: the reason stops before the quote.
        reason = _QUOTED.split(str(err) if err is not None else msg, maxsplit=1)[0]
        if status == 431 and not self._line_done:
            status, reason = 414, "Request line too long"
        if status not in _PHRASES:
            status = 400
        error_type = "api_error" if status >= 500 else "invalid_request_error"
        if status == 501:
            reason += " (only Transfer-Encoding: chunked is accepted)"
        self.transport.write(raw_error(status, error_type, f"Invalid HTTP request: {reason}"))
        self.transport.close()


__all__ = ["CONNECTION_KEY", "ApiProtocol", "raw_error"]
