"""`HttpLimits`: what one connection or request may cost the server before it is refused."""

from __future__ import annotations

import dataclasses
import math

from ..api.rules import at_least

#: The documented request-size limit of the Messages API (32 MB); past it, 413.
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_CONNECTIONS = 2048
DEFAULT_MAX_HEAD_BYTES = 32 * 1024
DEFAULT_MAX_HEADERS = 100
DEFAULT_HEAD_TIMEOUT = 20.0
DEFAULT_BODY_TIMEOUT = 60.0
DEFAULT_IDLE_TIMEOUT = 120.0
DEFAULT_MAX_BODY_BYTES_IN_FLIGHT = 4 * DEFAULT_MAX_BODY_BYTES


@dataclasses.dataclass
class HttpLimits:
    """Limits of the HTTP layer; each refusal is an API error envelope.

    Attributes:
        max_connections: open connections at once (idle ones count); past it a new one
            gets 503 ``overloaded_error`` and is closed. Also capped by the process's
            file-descriptor limit (``RLIMIT_NOFILE``, whose soft limit the server raises
            toward the hard one), keeping 64 descriptors for everything else.
        max_head_bytes: request line and headers together; past it, 431 (414 when the
            request line alone is longer).
        max_headers: header fields in one request; past it, 431.
        max_body_bytes: request body; past it, 413, decided from ``Content-Length`` before
            any of the body is read, or as a chunked body arrives.
        max_body_bytes_in_flight: bodies over 64 KiB being read or parsed at once, counted
            by their ``Content-Length`` (a chunked body counts as ``max_body_bytes``); a
            request that would pass it gets 529 ``overloaded_error`` before its body is read, so key
            holders together cannot hold more memory than this in request bodies.
        head_timeout: seconds a client has to send a whole request head, from the moment
            it connects (or sends the first byte after a keep-alive pause); then 408.
        body_timeout: seconds a client has to send the whole body once its head is in;
            then 408.
        idle_timeout: seconds a keep-alive connection may stay idle between requests.
        drain_bytes, drain_timeout: how much of an unread body is read and thrown away
            after an early answer (401, 413...), so the client can read that answer,
            before the connection is closed.
        allowed_hosts: host names a ``Host`` header may name besides the address the
            server listens on (and, on loopback, ``localhost``); ``"*"`` allows any.
    """

    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES
    max_headers: int = DEFAULT_MAX_HEADERS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_body_bytes_in_flight: int = DEFAULT_MAX_BODY_BYTES_IN_FLIGHT
    head_timeout: float = DEFAULT_HEAD_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    drain_bytes: int = 1024 * 1024
    drain_timeout: float = 5.0
    allowed_hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """`ValueError` for a limit no request could pass (it names the serve flag)."""
        for name in (
            "max_connections",
            "max_head_bytes",
            "max_headers",
            "max_body_bytes",
            "max_body_bytes_in_flight",
        ):
            at_least(self, name, 1)
        at_least(self, "drain_bytes", 0, flag=False)
        for name in ("head_timeout", "body_timeout", "idle_timeout", "drain_timeout"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                where = "" if name == "drain_timeout" else f" (--{name.replace('_', '-')})"
                raise ValueError(f"{name} must be a number of seconds above 0{where}, got {value}")


__all__ = ["DEFAULT_MAX_BODY_BYTES", "HttpLimits"]
