"""An engine's answer.

What each of its events says (`Piece`), the prefill it may echo removed (`PrefillEcho`),
and how it ended (`final_for`, `matched_final`).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, cast

from ... import wire
from ..api.backend import Final, StopReason

if TYPE_CHECKING:
    from ..request import GenerationRequest


@dataclasses.dataclass
class Piece:
    """What one engine event says: text, an end, usage, or an error (all optional)."""

    text: str = ""
    #: The engine's reason the generation ended (``"stop"``, ``"length"``, ``"end_turn"``...).
    finish: str | None = None
    #: The stop sequence the engine says it matched, if it says.
    stop_sequence: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    #: An error the engine sent in the stream: (error type, message).
    error: tuple[str, str] | None = None


def int_or_none(value: object) -> int | None:
    """``value`` if it is an ``int`` (and not a ``bool``), else None: a count read from JSON."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class PrefillEcho:
    """Remove a prefill that the engine repeats at the start of its answer.

    The API continues a prefill without repeating it; some engines (llama-server's
    ``/v1/messages``) send it first. The first ``len(prefill)`` characters are held until
    they are known: if they are the prefill they are dropped, else they are released. ::

        e = PrefillEcho("The answer is")
        e.feed("The ans") -> ""     e.feed("wer is 4") -> " 4"
    """

    def __init__(self, prefill: str) -> None:
        self.prefill = prefill
        self._held = ""
        self._decided = not prefill

    def feed(self, text: str) -> str:
        """The text that can be passed on now."""
        if self._decided:
            return text
        self._held += text
        if self.prefill.startswith(self._held):
            if len(self._held) < len(self.prefill):
                return ""
            self._decided, self._held = True, ""
            return ""
        self._decided = True
        held = self._held
        out = held[len(self.prefill) :] if held.startswith(self.prefill) else held
        self._held = ""
        return out

    def flush(self) -> str:
        """End of the answer: release a held partial echo (it was the model's own text)."""
        out, self._held, self._decided = self._held, "", True
        return out


def final_for(
    finish: str | None,
    engine_stop: str | None,
    request: GenerationRequest,
    input_tokens: int,
    output_tokens: int,
) -> Final:
    """The `Final` record for an engine that ended by itself (no stop matched here).

    ``"length"``/``"max_tokens"`` -> ``max_tokens``; a stop sequence the engine names that is
    one of the request's -> ``stop_sequence``; anything else (``"stop"``, ``"end_turn"``, the
    built-in ``"\\n\\nHuman:"``) -> ``end_turn``.
    """
    if finish in ("length", "max_tokens", "model_length"):
        return Final("max_tokens", None, input_tokens, output_tokens)
    if engine_stop is not None and engine_stop in request.stop_sequences:
        return Final("stop_sequence", engine_stop, input_tokens, output_tokens)
    return Final("end_turn", None, input_tokens, output_tokens)


def matched_final(
    stop: str, request: GenerationRequest, input_tokens: int, output_tokens: int
) -> Final:
    """The `Final` record when a stop sequence was matched here.

    ``stop_sequence`` with it, or ``end_turn`` for the built-in ``"\\n\\nHuman:"`` the
    request did not list.
    """
    reason, sequence = wire.messages_stop("stop_sequence", stop, request.stop_sequences)
    # messages_stop maps "stop_sequence" only to "end_turn" or "stop_sequence".
    return Final(cast("StopReason", reason), sequence, input_tokens, output_tokens)


__all__ = ["Piece", "PrefillEcho", "final_for", "int_or_none", "matched_final"]
