"""Reading an HTTP response: its bytes as they arrive, bounded; what it is; who sent it.

Bytes are read with urllib3's ``read1`` (whatever the socket has, at least one byte), never
with a fixed-size read that waits to fill a buffer, which is what iterating a ``requests``
response does on a close-delimited body. A compressed body (``content-encoding: gzip`` or
``deflate``) is decoded by the same ``read1`` call (urllib3 >= 2.6, which also caps each
call's output, so a decompression bomb cannot inflate in one step). Every read counts
against a limit in `_constants` (`ResponseTooLargeError` past it).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from typing import Any

import requests
import urllib3.exceptions
from urllib3.response import HTTPResponse

from . import _constants as C
from .errors import APIResponseValidationError, ResponseTooLargeError
from .sse import EventStreamLimitError

#: Most bytes asked of one ``read1`` call (and most a compressed body inflates to per call).
READ_SIZE = 65536


class ByteSource:
    """Yields a response's decoded bytes as they arrive, counting them against a limit.

    Raises `EventStreamLimitError` (``"response body"``) once more than ``limit`` bytes came.
    """

    def __init__(self, response: requests.Response, limit: int) -> None:
        self._response = response
        self.limit = limit
        self.received = 0
        self.eof = False
        self.closing = False

    def __iter__(self) -> Iterator[bytes]:
        raw = self._response.raw
        while True:
            # read1 returns what is available (for chunked bodies: from the current chunk),
            # so a small event is never held back waiting for more bytes; decode_content
            # inflates gzip/deflate, at most READ_SIZE bytes per call (urllib3 >= 2.6).
            try:
                data = raw.read1(READ_SIZE, decode_content=True)
            except Exception:
                if not self.closing:
                    raise
                # close() from another thread pulled the connection from under this read;
                # http.client then trips over its own state (AttributeError, ValueError).
                data = b""
            if not data:
                self.eof = True
                return
            self.received += len(data)
            if self.received > self.limit:
                raise EventStreamLimitError("response body", self.limit)
            yield data

    def close(self) -> None:
        """Close the response, waking a reader blocked in another thread."""
        self.closing = True
        # A reader blocked in another thread (the panel's Stop button) holds the buffer lock
        # that response.close() needs, so close() would wait for the server's next bytes.
        # Shutting the socket down first wakes that reader with EOF (urllib3 >= 2.3).
        shutdown = getattr(self._response.raw, "shutdown", None)
        if shutdown is not None:
            try:
                shutdown()
            except (ValueError, RuntimeError, OSError):
                pass  # no socket any more (body fully read, connection released)
        self._response.close()


def read_body(
    response: requests.Response, limit: int, setting: str, *, what: str = "response body"
) -> bytes:
    """The whole (decoded) body of ``response``, read as it arrives; at most ``limit`` bytes.

    Raises `ResponseTooLargeError` (naming ``setting``, the limit's name in `_constants`)
    as soon as more arrives, without reading the rest.
    """
    parts: list[bytes] = []
    size = 0
    raw = response.raw
    while True:
        data = raw.read1(READ_SIZE, decode_content=True)
        if not data:
            break
        size += len(data)
        if size > limit:
            response.close()
            raise ResponseTooLargeError(
                what, limit, setting, request_id=response.headers.get("request-id")
            )
        parts.append(data)
    return b"".join(parts)


def read_whole(response: requests.Response) -> bytes:
    """The decoded body, bounded by MAX_RESPONSE_BYTES.

    Read errors are raised as requests' types (so the client's retry loop treats them as it
    treats requests' own).
    """
    try:
        return read_body(response, C.MAX_RESPONSE_BYTES, "MAX_RESPONSE_BYTES")
    except urllib3.exceptions.ReadTimeoutError as err:
        raise requests.exceptions.ReadTimeout(str(err)) from err
    except urllib3.exceptions.DecodeError as err:
        response.close()
        raise APIResponseValidationError(
            f"The {response.headers.get('content-encoding')} body of {server_name(response)} "
            "is corrupt",
            request_id=response.headers.get("request-id"),
        ) from err
    except (urllib3.exceptions.HTTPError, OSError) as err:
        raise requests.exceptions.ChunkedEncodingError(type(err).__name__) from err


def _decodable_codings() -> set[str]:
    # What urllib3 can decode here: gzip, x-gzip and deflate always; br / zstd when the
    # optional packages are installed (we do not ask for those, but take them if sent).
    return {c.lower() for c in HTTPResponse.CONTENT_DECODERS} | {"identity"}


def check_encoding(response: requests.Response) -> None:
    """Check that every ``content-encoding`` of ``response`` can be decoded.

    Raises:
        APIResponseValidationError: an encoding cannot be decoded.
    """
    header = response.headers.get("content-encoding", "")
    codings = [c.strip().lower() for c in header.split(",") if c.strip()]
    unknown = [c for c in codings if c not in _decodable_codings()]
    if unknown:
        response.close()
        raise APIResponseValidationError(
            f"{server_name(response)} sent content-encoding {header!r}, which this client "
            f"did not ask for and cannot decode (it asks for {C.ACCEPT_ENCODING})",
            request_id=response.headers.get("request-id"),
            hint="Check the base URL and any proxy in between.",
        )
    if "identity" in codings and len(codings) > 1:
        # "identity" means no coding, but urllib3 decodes it inside a list as deflate. Its
        # decoder is set up at the first read, from the raw response's headers: drop it.
        response.raw.headers["content-encoding"] = ", ".join(c for c in codings if c != "identity")


def media_type(response: requests.Response) -> str:
    """The ``content-type`` without parameters, lower case (``""`` when absent)."""
    return response.headers.get("content-type", "").split(";")[0].strip().lower()


def server_name(response: requests.Response) -> str:
    """The host (and port) that answered, from the request URL (no credentials)."""
    parts = urllib.parse.urlsplit(response.url or "")
    host = parts.hostname or "the server"
    try:
        port = parts.port
    except ValueError:
        port = None
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port else host


def error_envelope(obj: object) -> dict[str, Any] | None:
    """The ``error`` object when ``obj`` is an API error envelope, else None.

    An envelope is ``{"type": "error", "error": {...}}`` (the API's) or a bare
    ``{"error": {...}}`` (the docs' stream form, and OpenAI-style gateways). It is an error
    whatever the HTTP status or the event name it came with.
    """
    if not isinstance(obj, dict) or obj.get("type") not in (None, "error"):
        return None
    err = obj.get("error")
    if isinstance(err, dict):
        return err
    if obj.get("type") == "error":
        return {"message": str(err) if err else "error"}
    return None


def excerpt(body: str | bytes, size: int = 160) -> str:
    """A short, tag-free, one-line excerpt of a body (an HTML page, plain text, JSON).

    Only the start of ``body`` is looked at, so a 64 MiB body costs no more than a small one.
    """
    head = body[: size * 16]
    text = head.decode("utf-8", "replace") if isinstance(head, bytes) else head
    return " ".join(re.sub(r"<[^>]+>", " ", text).split())[:size]


__all__ = [
    "READ_SIZE",
    "ByteSource",
    "check_encoding",
    "error_envelope",
    "excerpt",
    "media_type",
    "read_body",
    "read_whole",
    "server_name",
]
