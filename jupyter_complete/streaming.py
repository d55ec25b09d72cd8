"""`CompletionStream`: SSE bytes from an HTTP response -> `Completion` events, as they arrive.

Three things make each event reach the caller the moment its bytes do:

* bytes are read with urllib3's ``read1`` (whatever the socket has, at least one byte), never
  with a fixed-size read that waits to fill a buffer, which is what iterating a ``requests``
  response does on a close-delimited body;
* a compressed body (``content-encoding: gzip`` or ``deflate``) is decoded by the same
  ``read1`` call (urllib3 >= 2.6, which also caps each call's output, so a decompression bomb
  cannot inflate in one step): an event flushed by the server's compressor is readable as
  soon as its compressed bytes are;
* `sse.EventStreamParser` (our own, by the WHATWG rules, linear time, every line and event
  bounded) dispatches an event as soon as its terminating blank line is in.

Every size read is bounded (`_constants.MAX_RESPONSE_BYTES` for the whole decompressed
stream, `_constants.MAX_EVENT_BYTES` for one line and for one event's data); exceeding one
raises `ResponseTooLargeError`. Nothing received is ever dropped: every error raised while
streaming carries ``.partial``, a `Completion` with the text so far.

A stream that is no longer referenced closes its connection at once, by reference counting
alone: the stream and the generator that reads events both refer to a `_Decoder` (the state),
which refers to neither, so no reference cycle waits for the cyclic garbage collector; the
decoder closes the connection when the last of them goes.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
import urllib.parse
from collections.abc import Callable, Generator, Iterator
from typing import Any, ClassVar

import requests
import urllib3.exceptions

from . import _constants as C
from .completion import Completion
from .errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APITimeoutError,
    ResponseTooLargeError,
    class_for_type,
)
from .sse import EventStreamLimitError, EventStreamParser

log = logging.getLogger("jupyter_complete")

_READ_SIZE = 65536
_TIMEOUTS = (socket.timeout, urllib3.exceptions.ReadTimeoutError, requests.Timeout)
_BROKEN = (
    OSError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.HTTPError,
    requests.RequestException,
)


# -- bytes from the response -------------------------------------------------------------------


class _ByteSource:
    """Yields a response's decoded bytes as they arrive, counting them against a limit."""

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
            # inflates gzip/deflate, at most _READ_SIZE bytes per call (urllib3 >= 2.6).
            try:
                data = raw.read1(_READ_SIZE, decode_content=True)
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
        data = raw.read1(_READ_SIZE, decode_content=True)
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


def _media_type(response: requests.Response) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip().lower()


# -- events -> Completion deltas ----------------------------------------------------------------


class _Decoder:
    """A stream's state and event handling: everything the reading generator refers to.

    Transports subclass it (`handle_event`, `handle_body`). It never refers to the
    `CompletionStream` that owns it, which is what lets an abandoned stream be freed (and its
    connection closed) by reference counting alone.
    """

    def __init__(
        self,
        response: requests.Response,
        *,
        started: float,
        params: dict[str, Any],
        on_close: Callable[[], None] | None,
    ) -> None:
        self.response = response
        self.request_id: str | None = response.headers.get("request-id")
        self.server = server_name(response)
        self.started = started
        self.params = params
        self.on_close = on_close
        self.source = _ByteSource(response, C.MAX_RESPONSE_BYTES)
        self.parts: list[str] = []
        self.model: str | None = params.get("model")
        self.id: str | None = None
        self.stop_reason: str | None = None
        self.stop: str | None = None
        self.usage: dict[str, int] | None = None
        self.first_text_at: float | None = None
        self.ended_at: float | None = None
        self.interrupted = False
        self.closed = False

    # -- the reading loop -----------------------------------------------------------------
    def events(self) -> Generator[Completion, None, None]:
        try:
            if _media_type(self.response) == "application/json":
                yield from self._json_instead_of_events()
                return
            if _media_type(self.response) == "text/html":
                raise APIResponseValidationError(
                    f"{self.server} answered with an HTML page, not an event stream "
                    f"({excerpt(bytes(self._read_some()))!r})",
                    request_id=self.request_id,
                    hint="Check the base URL: it may point at a web page or a login proxy.",
                )
            parser = EventStreamParser()
            for chunk in self.source:
                failure: Exception | None = None
                try:
                    events = parser.feed(chunk)
                except (EventStreamLimitError, UnicodeDecodeError) as err:
                    # The events before the bad line were received: deliver them first.
                    events, failure = parser.completed, err
                for sse in events:
                    if sse.event == "ping":
                        continue
                    if sse.event == "message":
                        self.raise_if_unnamed_error(sse.data)
                        continue
                    delta = self.handle_event(sse.event, sse.data)
                    if delta is None:
                        continue
                    yield delta
                    if self.stop_reason is not None:
                        return
                if failure is not None:
                    raise failure
        except APIError as err:
            if err.partial is None and self.parts:
                err.partial = self.snapshot()
            raise
        except EventStreamLimitError as err:
            setting = "MAX_RESPONSE_BYTES" if err.what == "response body" else "MAX_EVENT_BYTES"
            what = "streamed response" if err.what == "response body" else err.what
            raise ResponseTooLargeError(
                what,
                err.limit,
                setting,
                partial=self.snapshot(),
                request_id=self.request_id,
            ) from None
        except UnicodeDecodeError as err:
            raise APIResponseValidationError(
                "The server sent an event that is not UTF-8 text",
                partial=self.snapshot(),
                request_id=self.request_id,
            ) from err
        except urllib3.exceptions.DecodeError as err:
            raise APIResponseValidationError(
                f"The stream's {self.response.headers.get('content-encoding')} data is corrupt",
                partial=self.snapshot(),
                request_id=self.request_id,
            ) from err
        except _TIMEOUTS as err:
            raise APITimeoutError(
                "The stream stalled: no data within the read timeout",
                partial=self.snapshot(),
                request_id=self.request_id,
            ) from err
        except _BROKEN as err:
            raise APIConnectionError(
                f"The connection broke mid-stream ({type(err).__name__})",
                partial=self.snapshot(),
                request_id=self.request_id,
            ) from err
        finally:
            if self.ended_at is None:
                self.ended_at = time.monotonic()
            self.close()
        if self.stop_reason is None:
            raise APIConnectionError(
                "The stream ended before its final event (no stop_reason)",
                partial=self.snapshot(),
                request_id=self.request_id,
            )

    def _read_some(self, limit: int = 4096) -> bytearray:
        got = bytearray()
        for chunk in self.source:
            got += chunk
            if len(got) >= limit:
                break
        return got

    def _json_instead_of_events(self) -> Generator[Completion, None, None]:
        """A JSON body where events were asked for: an error envelope, or a whole answer."""
        body = bytearray()
        for chunk in self.source:
            body += chunk
        try:
            obj = json.loads(bytes(body))
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            raise APIResponseValidationError(
                f"{self.server} answered with JSON that is not an answer, not an event stream "
                f"({excerpt(bytes(body))!r})",
                request_id=self.request_id,
            )
        self.raise_if_error(obj)
        delta = self.handle_body(obj)
        if delta is None:
            raise APIResponseValidationError(
                f"{self.server} answered with JSON that is not an answer, not an event stream "
                f"({excerpt(bytes(body))!r})",
                request_id=self.request_id,
            )
        yield delta

    # -- per-transport handling -----------------------------------------------------------
    def handle_event(self, name: str, data: str) -> Completion | None:
        """Turn one SSE event into a delta (None: nothing for the caller). Raises on errors."""
        if name == "completion":
            obj = self.load(data)
            self.raise_if_error(obj)
            delta = Completion.from_wire(obj, request_id=self.request_id)
            if isinstance(obj.get("usage"), dict):
                # Not in the spec's CompletionResponse, but some servers report it.
                self.usage = {
                    **(self.usage or {}),
                    **{k: v for k, v in obj["usage"].items() if isinstance(v, int)},
                }
            self.model = delta.model or self.model
            self.id = delta.id or self.id
            self.add_text(delta.completion)
            if delta.stop_reason is not None:
                self.stop_reason = delta.stop_reason
                self.stop = delta.stop
            delta.params = self.params
            return delta
        if name == "error":
            obj = self.load(data)
            self.raise_error(error_envelope(obj) or obj, obj)
        return None  # unknown events are ignored, as the protocol asks

    def handle_body(self, obj: dict[str, Any]) -> Completion | None:
        """A whole JSON answer sent instead of a stream: the final delta, or None."""
        if not isinstance(obj.get("completion"), str):
            return None
        return self.handle_event("completion", json.dumps(obj))

    # -- shared helpers --------------------------------------------------------------------
    def load(self, data: str) -> dict[str, Any]:
        try:
            obj = json.loads(data)
        except ValueError as err:
            raise APIResponseValidationError(
                f"The server sent an event that is not JSON: {data[:80]!r}",
                partial=self.snapshot(),
                request_id=self.request_id,
            ) from err
        if not isinstance(obj, dict):
            raise APIResponseValidationError(
                f"The server sent an event that is not a JSON object: {data[:80]!r}",
                partial=self.snapshot(),
                request_id=self.request_id,
            )
        return obj

    def raise_if_error(self, obj: dict[str, Any]) -> None:
        """Raise when ``obj`` is an error envelope, whatever event or status carried it."""
        err = error_envelope(obj)
        if err is not None:
            self.raise_error(err, obj)

    def raise_if_unnamed_error(self, data: str) -> None:
        """An event with no ``event`` field is ignored, unless it is a JSON error envelope.

        OpenAI-style gateways (LiteLLM) send a mid-stream failure as a bare ``data:`` line.
        """
        if '"error"' not in data:
            return  # cheap test first: not an envelope
        try:
            obj = json.loads(data)
        except ValueError:
            return
        err = error_envelope(obj)
        if err is not None:
            self.raise_error(err, obj)

    def raise_error(self, err: dict[str, Any], body: dict[str, Any]) -> None:
        etype = err.get("type") if isinstance(err.get("type"), str) else None
        message = str(err.get("message") or etype or "error event")
        cls, status = class_for_type(etype)
        where = "mid-stream" if self.parts else "instead of an answer"
        rid = body.get("request_id") if isinstance(body.get("request_id"), str) else None
        raise cls(
            f"The server sent an error {where} ({etype or 'error'}: {message})",
            status_code=status,
            type=etype,
            body=body,
            request_id=rid or self.request_id,
            partial=self.snapshot(),
        )

    def add_text(self, text: str) -> None:
        if text:
            if self.first_text_at is None:
                self.first_text_at = time.monotonic()
            self.parts.append(text)

    def snapshot(self) -> Completion:
        end = self.ended_at if self.ended_at is not None else time.monotonic()
        return Completion(
            completion="".join(self.parts),
            stop_reason=self.stop_reason,
            model=self.model,
            id=self.id,
            stop=self.stop,
            request_id=self.request_id,
            elapsed=end - self.started,
            time_to_first_token=(
                None if self.first_text_at is None else self.first_text_at - self.started
            ),
            usage=self.usage,
            params=self.params,
            interrupted=self.interrupted,
        )

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.ended_at is None:
            self.ended_at = time.monotonic()
        try:
            self.source.close()
        finally:
            if self.on_close is not None:
                self.on_close()

    def __del__(self) -> None:
        # The last reference went: the stream and its iterator are both gone (the decoder is
        # what both refer to, so iterating a temporary stream keeps it open).
        try:
            self.close()
        except Exception:
            pass


class CompletionStream:
    """A streamed completion: iterate it for `Completion` deltas.

    ::

        with client.completions.create(..., stream=True) as stream:
            for event in stream:
                print(event.completion, end="")
        final = stream.get_final_completion()

    The HTTP response is closed on every path: normal end, ``break``, an exception,
    ``close()``, leaving the ``with`` block, or the last reference to the stream going away
    (by reference counting: no cycle keeps it alive until the cyclic collector runs).

    Raises (while iterating) the `APIError` subclasses: `APIStatusError` subclasses for an
    error event or an error envelope, `APIConnectionError` for a cut (no final event),
    `APITimeoutError` for a stall, `APIResponseValidationError` for bad JSON or text, and
    `ResponseTooLargeError` above the limits in `_constants`. Each carries ``.partial``.
    """

    _decoder_class: ClassVar[type[_Decoder]] = _Decoder

    def __init__(
        self,
        response: requests.Response,
        *,
        started: float,
        params: dict[str, Any] | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._decoder = self._decoder_class(
            response, started=started, params=dict(params or {}), on_close=on_close
        )
        self._iterator: Generator[Completion, None, None] | None = None

    @property
    def response(self) -> requests.Response:
        """The HTTP response being read."""
        return self._decoder.response

    @property
    def request_id(self) -> str | None:
        """``request-id`` response header."""
        return self._decoder.request_id

    # -- iteration ---------------------------------------------------------------------
    def __iter__(self) -> Iterator[Completion]:
        if self._iterator is None:
            self._iterator = self._decoder.events()
        return self._iterator

    def __next__(self) -> Completion:
        return next(iter(self))

    @property
    def text_stream(self) -> Iterator[str]:
        """An iterator of the text deltas only (empty deltas skipped)."""
        for event in self:
            if event.completion:
                yield event.completion

    # -- results -----------------------------------------------------------------------
    @property
    def text(self) -> str:
        """All text received so far."""
        return "".join(self._decoder.parts)

    def snapshot(self, *, interrupted: bool = False) -> Completion:
        """A `Completion` holding everything received so far (used for partial results)."""
        self._decoder.interrupted = self._decoder.interrupted or interrupted
        return self._decoder.snapshot()

    def until_done(self) -> None:
        """Consume the rest of the stream."""
        for _ in self:
            pass

    def get_final_completion(self) -> Completion:
        """Consume the stream and return one `Completion` with the joined text."""
        self.until_done()
        return self.snapshot()

    # -- lifetime ----------------------------------------------------------------------
    def close(self) -> None:
        """Close the HTTP connection (idempotent). Text received so far stays available."""
        try:
            self._decoder.close()
        finally:
            if self._iterator is not None:
                # Finishing the generator runs its `finally` if it is suspended mid-stream.
                try:
                    self._iterator.close()
                except (ValueError, RuntimeError):
                    pass  # closing from inside the running generator

    @property
    def closed(self) -> bool:
        """True once the connection is closed."""
        return self._decoder.closed

    def __enter__(self) -> CompletionStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        d = self._decoder
        return (
            f"<{type(self).__name__} {state}, {len(self.text)} chars, "
            f"stop_reason={d.stop_reason!r}>"
        )
