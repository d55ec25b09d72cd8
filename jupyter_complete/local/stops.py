"""`StopMatcher`: cut generated text at the first stop sequence, without ever sending part of one.

Text arrives a token at a time, and a stop sequence can span several tokens. Text that could
still turn out to be the start of a stop sequence is held back until the next tokens decide
it; so what the client receives never contains a stop sequence or a piece of one.
"""

from __future__ import annotations

from collections.abc import Iterable


class StopMatcher:
    """Feed text pieces in; get back the text that is safe to send, and the stop that matched.

    ::

        m = StopMatcher(["\\n\\nHuman:", "END"])
        m.feed("Hello\\n")     # -> "Hello" ("\\n" is held: it may start "\\n\\nHuman:")
        m.feed("\\nHum")       # -> ""
        m.feed("an: hi")      # -> "" and m.matched == "\\n\\nHuman:"
    """

    def __init__(self, stops: Iterable[str]) -> None:
        #: The stop sequences, longest first so that of two matches at one position the
        #: longer one is reported.
        self.stops: tuple[str, ...] = tuple(sorted({s for s in stops if s}, key=len, reverse=True))
        self._pending = ""
        #: The stop sequence found, once one is (then the matcher takes no more text).
        self.matched: str | None = None

    @property
    def pending(self) -> str:
        """Text held back because it may be the start of a stop sequence."""
        return self._pending

    def feed(self, text: str) -> str:
        """Add generated text; return what can be sent now (possibly "")."""
        if self.matched is not None:
            return ""
        buffer = self._pending + text
        best = -1
        for stop in self.stops:
            at = buffer.find(stop)
            if at != -1 and (best == -1 or at < best):
                best, self.matched = at, stop
        if best != -1:
            self._pending = ""
            return buffer[:best]
        hold = self._held_suffix(buffer)
        self._pending = buffer[len(buffer) - hold :] if hold else ""
        return buffer[: len(buffer) - hold]

    def flush(self) -> str:
        """End of generation without a stop: release the held-back text."""
        if self.matched is not None:
            return ""
        text, self._pending = self._pending, ""
        return text

    def _held_suffix(self, buffer: str) -> int:
        """Length of the longest suffix of ``buffer`` that is a proper prefix of a stop."""
        longest = 0
        for stop in self.stops:
            # Only suffixes shorter than the stop itself can be a proper prefix of it.
            for n in range(min(len(stop) - 1, len(buffer)), longest, -1):
                if buffer.endswith(stop[:n]):
                    longest = n
                    break
        return longest


__all__ = ["StopMatcher"]
