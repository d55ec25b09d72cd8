"""`Decoder`: a stream's state, and its events read into `Completion` deltas.

`sse.EventStreamParser` (our own, by the WHATWG rules, linear time, every line and event
bounded) dispatches an event as soon as its terminating blank line is in; the decoder hands
each event to its transport's hook, `Decoder.parse_event`, which says what the event adds
(a `Delta`) and never touches the state; the decoder alone keeps the running state (text,
id, model, usage, stop) and yields the deltas the caller sees. ``/v1/complete``'s hook is
here; the Messages transport's is `jupyter_complete.messages.MessagesDecoder`.

Every size read is bounded (`_constants.MAX_RESPONSE_BYTES` for the whole decompressed
stream, `_constants.MAX_EVENT_BYTES` for one line and for one event's data); exceeding one
raises `ResponseTooLargeError`. Nothing received is ever dropped: every error raised while
streaming carries ``.partial``, a `Completion` with the text so far.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from collections.abc import Callable, Generator, Mapping
from typing import Any

import requests
import urllib3.exceptions

from . import _constants as C
from . import wire
from ._responses import ByteSource, error_envelope, excerpt, media_type, server_name
from .completion import Completion, usage_of
from .errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APITimeoutError,
    ResponseTooLargeError,
    class_for_type,
)
from .sse import EventStreamLimitError, EventStreamParser

_TIMEOUTS = (socket.timeout, urllib3.exceptions.ReadTimeoutError, requests.Timeout)
_BROKEN = (
    OSError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.HTTPError,
    requests.RequestException,
)


@dataclasses.dataclass(frozen=True)
class Delta:
    """What one event adds to a stream, as a transport's `Decoder.parse_event` reads it.

    The decoder merges it into the stream's state: ``id`` and ``model`` when given,
    ``usage`` counts over the earlier ones, ``stop`` when not None, then the text and
    ``stop_reason`` of ``completion``, which is what the caller receives (None: nothing; a
    ``stop_reason`` ends the stream).
    """

    completion: Completion | None = None
    id: str | None = None
    model: str | None = None
    usage: Mapping[str, int] | None = None
    stop: str | None = None


class Decoder:
    """A stream's state and event handling: everything the reading generator refers to.

    Transports subclass it and override the hooks `parse_event` and `parse_body`. It never
    refers to the `CompletionStream` that owns it, which is what lets an abandoned stream
    be freed (and its connection closed) by reference counting alone.
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
        self.source = ByteSource(response, C.MAX_RESPONSE_BYTES)
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
        """The deltas, as their events arrive.

        Raises the `APIError` subclasses (with ``.partial``) described at `CompletionStream`.
        Closes the response on every path.
        """
        try:
            if media_type(self.response) == "application/json":
                yield from self._json_instead_of_events()
                return
            if media_type(self.response) == "text/html":
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
                    if sse.event == wire.PING:
                        continue
                    if sse.event == "message":  # SSE's name for an event with none
                        self.raise_if_unnamed_error(sse.data)
                        continue
                    delta = self.parse_event(sse.event, sse.data)
                    if delta is None:
                        continue
                    out = self._merge(delta)
                    if out is not None:
                        yield out
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
                what, err.limit, setting, partial=self.snapshot(), request_id=self.request_id
            ) from None
        except (UnicodeDecodeError, *_TIMEOUTS, *_BROKEN) as err:
            raise self._read_error(err) from err
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

    def _read_error(self, err: BaseException) -> APIError:
        """The error for a failed read: bad text, a corrupt coding, a stall or a cut."""
        cls: type[APIError] = APIResponseValidationError
        if isinstance(err, UnicodeDecodeError):
            message = "The server sent an event that is not UTF-8 text"
        elif isinstance(err, urllib3.exceptions.DecodeError):
            message = (
                f"The stream's {self.response.headers.get('content-encoding')} data is corrupt"
            )
        elif isinstance(err, _TIMEOUTS):
            cls, message = APITimeoutError, "The stream stalled: no data within the read timeout"
        else:
            cls = APIConnectionError
            message = f"The connection broke mid-stream ({type(err).__name__})"
        return cls(message, partial=self.snapshot(), request_id=self.request_id)

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
        if isinstance(obj, dict):
            self.raise_if_error(obj)
            delta = self.parse_body(obj)
            out = None if delta is None else self._merge(delta)
            if out is not None:
                yield out
                return
        raise APIResponseValidationError(
            f"{self.server} answered with JSON that is not an answer, not an event stream "
            f"({excerpt(bytes(body))!r})",
            request_id=self.request_id,
        )

    def _merge(self, delta: Delta) -> Completion | None:
        """Fold ``delta`` into the stream's state (see `Delta`); what the caller receives."""
        self.id = delta.id or self.id
        self.model = delta.model or self.model
        if delta.usage is not None:
            self.usage = {**(self.usage or {}), **delta.usage}
        if delta.stop is not None:
            self.stop = delta.stop
        out = delta.completion
        if out is not None:
            self.add_text(out.completion)
            if out.stop_reason is not None:
                self.stop_reason = out.stop_reason
        return out

    # -- per-transport hooks (``/v1/complete`` here) --------------------------------------
    def parse_event(self, name: str, data: str) -> Delta | None:
        """What one SSE event adds (None: nothing). Raises on errors; changes no state."""
        if name == wire.COMPLETION:
            obj = self.load(data)
            self.raise_if_error(obj)
            delta = Completion.from_wire(obj, request_id=self.request_id)
            delta.params = self.params
            return Delta(
                completion=delta,
                id=delta.id,
                model=delta.model,
                # Not in the spec's CompletionResponse, but some servers report it.
                usage=usage_of(obj.get("usage")),
                stop=delta.stop if delta.stop_reason is not None else None,
            )
        if name == wire.ERROR:
            obj = self.load(data)
            self.raise_error(error_envelope(obj) or obj, obj)
        return None  # unknown events are ignored, as the protocol asks

    def parse_body(self, obj: dict[str, Any]) -> Delta | None:
        """A whole JSON answer sent instead of a stream: its one delta, or None."""
        if not isinstance(obj.get("completion"), str):
            return None
        return self.parse_event(wire.COMPLETION, json.dumps(obj))

    # -- shared helpers --------------------------------------------------------------------
    def load(self, data: str) -> dict[str, Any]:
        """An event's data as a JSON object; `APIResponseValidationError` otherwise."""
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
        self.raise_if_error(obj)

    def raise_error(self, err: dict[str, Any], body: dict[str, Any]) -> None:
        """Raise the typed `APIStatusError` for an error event (``err``: its error object)."""
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
        """Append received text (and note when the first came)."""
        if text:
            if self.first_text_at is None:
                self.first_text_at = time.monotonic()
            self.parts.append(text)

    def snapshot(self) -> Completion:
        """Everything received so far, as one `Completion`."""
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
        """Close the connection (idempotent), then call ``on_close``."""
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


__all__ = ["Decoder", "Delta"]
