"""`CompletionStream`: a streamed completion, read as `Completion` deltas the moment they arrive.

The stream is the public face; the reading is done by a `jupyter_complete._decoder.Decoder`
(the state and the events' meaning) over a `jupyter_complete._responses.ByteSource` (the
response's bytes, read with urllib3's ``read1`` as they arrive, decompressed and bounded).
Three things make each event reach the caller the moment its bytes do: ``read1`` never waits
to fill a buffer; a compressed event flushed by the server's compressor is decoded as soon as
its bytes are in; and `sse.EventStreamParser` dispatches an event at its blank line.

A stream that is no longer referenced closes its connection at once, by reference counting
alone: the stream and the generator that reads events both refer to the decoder (the state),
which refers to neither, so no reference cycle waits for the cyclic garbage collector; the
decoder closes the connection when the last of them goes.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from typing import Any, ClassVar

import requests

from ._decoder import Decoder
from .completion import Completion


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

    A transport other than ``/v1/complete`` subclasses it with its own ``_decoder_class``
    (a `Decoder` whose `Decoder.parse_event` reads that transport's events).
    """

    _decoder_class: ClassVar[type[Decoder]] = Decoder

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


__all__ = ["CompletionStream"]
