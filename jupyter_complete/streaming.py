"""`CompletionStream`: SSE bytes from an HTTP response -> `Completion` events, as they arrive.

Two things make each event reach the caller the moment its bytes do:

* bytes are read with ``read1`` (whatever the socket has, at least one byte), never with a
  fixed-size read that waits to fill a buffer, which is what iterating a ``requests`` response
  does on a close-delimited body;
* sseclient-py dispatches an event as soon as its terminating blank line is in the buffer.

Nothing received is ever dropped: every error raised while streaming carries ``.partial``,
a `Completion` with the text so far.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

import requests
import urllib3.exceptions
from sseclient import SSEClient

from .completion import Completion
from .errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APITimeoutError,
    class_for_type,
)

log = logging.getLogger("jupyter_complete")

_READ_SIZE = 65536
_TIMEOUTS = (socket.timeout, urllib3.exceptions.ReadTimeoutError, requests.Timeout)
_BROKEN = (
    OSError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.HTTPError,
    requests.RequestException,
)


class _ByteSource:
    """Yields a response's bytes as they arrive and remembers how the body ended."""

    def __init__(self, response: requests.Response) -> None:
        self._response = response
        self.eof = False
        self.tail = b""
        self.closing = False

    def __iter__(self) -> Iterator[bytes]:
        raw = self._response.raw
        while True:
            # read1 returns what is available (for chunked bodies: from the current chunk),
            # so a small event is never held back waiting for more bytes.
            try:
                data = raw.read1(_READ_SIZE)
            except Exception:
                if not self.closing:
                    raise
                # close() from another thread pulled the connection from under this read;
                # http.client then trips over its own state (AttributeError, ValueError).
                data = b""
            if not data:
                self.eof = True
                return
            self.tail = (self.tail + data)[-4:]
            yield data

    def ended_mid_event(self) -> bool:
        """True when the body ended without the blank line that closes an event."""
        return bool(self.tail) and not self.tail.endswith((b"\n\n", b"\r\r", b"\r\n\r\n"))

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


class CompletionStream:
    """A streamed completion: iterate it for `Completion` deltas.

    ::

        with client.completions.create(..., stream=True) as stream:
            for event in stream:
                print(event.completion, end="")
        final = stream.get_final_completion()

    The HTTP response is closed on every path: normal end, ``break``, an exception,
    ``close()``, leaving the ``with`` block, or garbage collection.
    """

    def __init__(
        self,
        response: requests.Response,
        *,
        started: float,
        params: dict[str, Any] | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.response = response
        #: ``request-id`` response header.
        self.request_id: str | None = response.headers.get("request-id")
        self._started = started
        self._params = dict(params or {})
        self._on_close = on_close
        self._source = _ByteSource(response)
        self._parts: list[str] = []
        self._model: str | None = self._params.get("model")
        self._id: str | None = None
        self._stop_reason: str | None = None
        self._stop: str | None = None
        self._usage: dict[str, int] | None = None
        self._first_text_at: float | None = None
        self._ended_at: float | None = None
        self._interrupted = False
        self._closed = False
        self._iterator: Generator[Completion, None, None] | None = None

    # -- iteration ---------------------------------------------------------------------
    def __iter__(self) -> Iterator[Completion]:
        if self._iterator is None:
            self._iterator = self._events()
        return self._iterator

    def __next__(self) -> Completion:
        return next(iter(self))

    @property
    def text_stream(self) -> Iterator[str]:
        """An iterator of the text deltas only (empty deltas skipped)."""
        for event in self:
            if event.completion:
                yield event.completion

    def _events(self) -> Generator[Completion, None, None]:
        client = SSEClient(iter(self._source))
        try:
            for sse in client.events():
                if sse.event in ("ping", "message") or not sse.event:
                    continue
                if self._source.eof and self._source.ended_mid_event():
                    # sseclient dispatches an unterminated trailing block: that is a cut.
                    break
                delta = self._handle_event(sse.event, sse.data)
                if delta is None:
                    continue
                yield delta
                if self._stop_reason is not None:
                    return
        except APIError:
            raise
        except UnicodeDecodeError as err:
            # sseclient decodes lines itself, so bytes that are not UTF-8 surface here.
            if not (self._source.eof and self._source.ended_mid_event()):
                raise APIResponseValidationError(
                    "The server sent an event that is not UTF-8 text",
                    partial=self.snapshot(), request_id=self.request_id,
                ) from err
            # Else a close cut the last event inside a character: a cut, reported below.
        except _TIMEOUTS as err:
            raise APITimeoutError(
                "The stream stalled: no data within the read timeout",
                partial=self.snapshot(), request_id=self.request_id,
            ) from err
        except _BROKEN as err:
            raise APIConnectionError(
                f"The connection broke mid-stream ({type(err).__name__})",
                partial=self.snapshot(), request_id=self.request_id,
            ) from err
        finally:
            self._ended_at = time.monotonic()
            self.close()
        if self._stop_reason is None:
            raise APIConnectionError(
                "The stream ended before its final event (no stop_reason)",
                partial=self.snapshot(), request_id=self.request_id,
            )

    def _load(self, data: str) -> dict[str, Any]:
        try:
            obj = json.loads(data)
        except ValueError as err:
            raise APIResponseValidationError(
                f"The server sent an event that is not JSON: {data[:80]!r}",
                partial=self.snapshot(), request_id=self.request_id,
            ) from err
        if not isinstance(obj, dict):
            raise APIResponseValidationError(
                f"The server sent an event that is not a JSON object: {data[:80]!r}",
                partial=self.snapshot(), request_id=self.request_id,
            )
        return obj

    def _handle_event(self, name: str, data: str) -> Completion | None:
        """Turn one SSE event into a delta (None: nothing for the caller). Raises on ``error``.

        Subclasses (other transports) override this; the bookkeeping helpers below are shared.
        """
        if name == "completion":
            obj = self._load(data)
            delta = Completion.from_wire(obj, request_id=self.request_id)
            if isinstance(obj.get("usage"), dict):
                # Not in the spec's CompletionResponse, but some servers report it.
                self._usage = {**(self._usage or {}), **{
                    k: v for k, v in obj["usage"].items() if isinstance(v, int)}}
            self._model = delta.model or self._model
            self._id = delta.id or self._id
            self._add_text(delta.completion)
            if delta.stop_reason is not None:
                self._stop_reason = delta.stop_reason
                self._stop = delta.stop
            delta.params = self._params
            return delta
        if name == "error":
            self._raise_error_event(self._load(data))
        return None  # unknown events are ignored, as the protocol asks

    def _add_text(self, text: str) -> None:
        if text:
            if self._first_text_at is None:
                self._first_text_at = time.monotonic()
            self._parts.append(text)

    def _raise_error_event(self, obj: dict[str, Any]) -> None:
        # Accept {"type":"error","error":{...}} and the docs' bare {"error":{...}}.
        err = obj.get("error") if isinstance(obj.get("error"), dict) else obj
        assert isinstance(err, dict)
        etype = err.get("type") if isinstance(err.get("type"), str) else None
        message = str(err.get("message") or etype or "error event")
        cls, status = class_for_type(etype)
        raise cls(
            f"The server sent an error mid-stream ({etype}: {message})",
            status_code=status, type=etype, body=obj,
            request_id=obj.get("request_id") or self.request_id, partial=self.snapshot(),
        )

    # -- results -----------------------------------------------------------------------
    @property
    def text(self) -> str:
        """All text received so far."""
        return "".join(self._parts)

    def snapshot(self, *, interrupted: bool = False) -> Completion:
        """A `Completion` holding everything received so far (used for partial results)."""
        self._interrupted = self._interrupted or interrupted
        end = self._ended_at if self._ended_at is not None else time.monotonic()
        return Completion(
            completion=self.text,
            stop_reason=self._stop_reason,
            model=self._model,
            id=self._id,
            stop=self._stop,
            request_id=self.request_id,
            elapsed=end - self._started,
            time_to_first_token=(
                None if self._first_text_at is None else self._first_text_at - self._started
            ),
            usage=self._usage,
            params=self._params,
            interrupted=self._interrupted,
        )

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
        if self._closed:
            return
        self._closed = True
        if self._ended_at is None:
            self._ended_at = time.monotonic()
        try:
            self._source.close()
        finally:
            if self._iterator is not None:
                # Finishing the generator runs its `finally` if it is suspended mid-stream.
                try:
                    self._iterator.close()
                except (ValueError, RuntimeError):
                    pass  # closing from inside the running generator
            if self._on_close is not None:
                self._on_close()

    @property
    def closed(self) -> bool:
        """True once the connection is closed."""
        return self._closed

    def __enter__(self) -> CompletionStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        chars = len(self.text)
        return f"<CompletionStream {state}, {chars} chars, stop_reason={self._stop_reason!r}>"
