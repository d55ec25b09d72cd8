"""`EventStreamParser`: ``text/event-stream`` bytes -> events, by the WHATWG rules.

Pure (no HTTP, no IPython): `streaming` feeds it the bytes of a response as they arrive.
Our own rather than sseclient-py's: sseclient-py dispatches the unterminated block a closed
connection leaves (the WHATWG rules discard it), does not strip a leading byte-order mark
(so the first event's field name is not recognised and that event is lost), and re-scans its
whole buffer on every chunk (quadratic time on a long line, no size bound).
"""

from __future__ import annotations

import dataclasses

from . import _constants as C

_BOM = b"\xef\xbb\xbf"


@dataclasses.dataclass
class ServerSentEvent:
    """One dispatched event: ``event`` is the type ("message" when no ``event`` field came)."""

    event: str
    data: str
    #: The last event ID string at dispatch (the ``id`` field, sticky across events).
    id: str


class EventStreamLimitError(ValueError):
    """A line or an event's data is larger than the parser's limit."""

    def __init__(self, what: str, limit: int) -> None:
        self.what = what
        self.limit = limit
        super().__init__(f"{what} exceeds {limit} bytes")


class EventStreamParser:
    """Incremental ``text/event-stream`` parser following the WHATWG HTML standard, 9.2.6.

    Source: https://html.spec.whatwg.org/multipage/server-sent-events.html
    #event-stream-interpretation. Feed bytes as they arrive; `feed` returns the events whose
    terminating blank line is now complete:

    * one UTF-8 byte-order mark at the very start of the stream is skipped (split across
      feeds or not); a later one is data;
    * a line ends at CR LF, LF or CR (a CR at the end of one feed and an LF at the start of
      the next are one line end);
    * an empty line dispatches; a line starting with ``:`` is a comment; otherwise the field
      name is the text up to the first ``:`` (the whole line if there is none) and the value
      the text after it, minus one leading space;
    * ``data`` appends the value plus LF to the data buffer; ``event`` sets the event type;
      ``id`` sets the last event ID unless the value contains NUL; ``retry`` sets `retry`
      (milliseconds) when the value is ASCII digits only; other fields are ignored;
    * dispatch: the last event ID is set; with an empty data buffer nothing is dispatched;
      else the data (its final LF removed) is dispatched with the event type, or "message";
    * at end of stream, an unterminated block is discarded, never dispatched (`pending`
      says whether there is one).

    Not from the spec: ``errors`` chooses the UTF-8 decoding of each line: "replace" is the
    spec's (U+FFFD for bad bytes); "strict" raises `UnicodeDecodeError`, which a client that
    must not silently corrupt text prefers. ``max_line`` bounds one line and ``max_event``
    one event's data buffer (bytes / characters); exceeding one raises
    `EventStreamLimitError`. When `feed` raises, `completed` holds the events that were
    complete before the failing line, so a caller can still deliver them. Time and memory
    are linear in the bytes fed.
    """

    def __init__(
        self,
        *,
        max_line: int = C.MAX_EVENT_BYTES,
        max_event: int = C.MAX_EVENT_BYTES,
        errors: str = "strict",
    ) -> None:
        self.max_line = max_line
        self.max_event = max_event
        self.errors = errors
        #: The reconnection time in milliseconds, when a valid ``retry`` field came.
        self.retry: int | None = None
        #: The last event ID string.
        self.last_event_id = ""
        self._buf = bytearray()
        self._scanned = 0  # bytes at the start of _buf known to hold no line end
        self._started = False  # the BOM check is done
        self._skip_lf = False  # the previous feed ended in CR
        self._event_type = ""
        self._data: list[str] = []
        self._data_size = 0
        self._id_buffer = ""
        self._fields_seen = False
        #: The events completed by the current (or last) `feed` call, in order.
        self.completed: list[ServerSentEvent] = []

    @property
    def pending(self) -> bool:
        """True when bytes or fields of an event not yet terminated by a blank line are held."""
        return bool(self._buf) or self._fields_seen

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """Add ``data``; return the events completed by it, in order (also in `completed`)."""
        buf = self._buf
        events = self.completed = []
        buf += data
        if not self._started:
            if len(buf) < len(_BOM) and _BOM.startswith(bytes(buf)):
                return []  # could still be a BOM
            if buf.startswith(_BOM):
                del buf[: len(_BOM)]
            self._started = True
        pos = 0
        if self._skip_lf and buf:
            self._skip_lf = False
            if buf[0] == 0x0A:
                pos = 1
        # Never re-scan bytes known to hold no line end (linear time on a line that arrives
        # in many pieces), and find LF and CR with memchr-speed finds, each remembered until
        # passed (linear time on many short lines too).
        start = max(pos, self._scanned)
        lf, cr = buf.find(b"\n", start), buf.find(b"\r", start)
        if cr < 0 and lf >= 0:
            # No CR (the common case): every line ends at LF, so the complete lines are
            # decoded and split in one go, at C speed.
            last = buf.rfind(b"\n")
            block = bytes(buf[pos:last])
            try:
                if len(block) > self.max_line and max(map(len, block.split(b"\n"))) > self.max_line:
                    raise EventStreamLimitError("event stream line", self.max_line)
                texts: list[str] | None = block.decode("utf-8", self.errors).split("\n")
            except (EventStreamLimitError, UnicodeDecodeError):
                # The line-by-line loop below raises at the failing line, after the events
                # of the lines before it are in `completed`.
                texts = None
            if texts is not None:
                for text in texts:
                    event = self._line(text)
                    if event is not None:
                        events.append(event)
                pos, lf = last + 1, -1
        while True:
            if 0 <= lf < pos:
                lf = buf.find(b"\n", pos)
            if 0 <= cr < pos:
                cr = buf.find(b"\r", pos)
            if lf < 0 and cr < 0:
                break
            end = lf if cr < 0 or 0 <= lf < cr else cr
            if end - pos > self.max_line:
                raise EventStreamLimitError("event stream line", self.max_line)
            line = bytes(buf[pos:end])
            nxt = end + 1
            if buf[end] == 0x0D:
                if nxt < len(buf):
                    if buf[nxt] == 0x0A:
                        nxt += 1
                else:
                    self._skip_lf = True
            pos = nxt
            event = self._line(line.decode("utf-8", self.errors))
            if event is not None:
                events.append(event)
        del buf[:pos]
        self._scanned = len(buf)
        if len(buf) > self.max_line:
            raise EventStreamLimitError("event stream line", self.max_line)
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        self._fields_seen = True
        if line[0] == ":":
            return None
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data_size += len(value) + 1
            if self._data_size > self.max_event:
                raise EventStreamLimitError("event", self.max_event)
            self._data.append(value)
        elif name == "event":
            self._event_type = value
        elif name == "id":
            if "\0" not in value:
                self._id_buffer = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        self._fields_seen = False
        self.last_event_id = self._id_buffer
        data, event_type = self._data, self._event_type
        self._data, self._data_size, self._event_type = [], 0, ""
        if not data:
            return None
        # Joining with LF is the spec's "append value + LF, then drop the final LF".
        return ServerSentEvent(
            event=event_type or "message", data="\n".join(data), id=self.last_event_id
        )


__all__ = ["EventStreamLimitError", "EventStreamParser", "ServerSentEvent"]
