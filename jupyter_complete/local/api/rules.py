"""Request rules a shared server adds to the API's own validation (`RequestLimits`).

`jupyter_complete.local.request` checks a body as the real API does, field by field. A
server shared by a class must also bound what one valid request may cost before it costs
it: these limits are checked on the validated request, before the prompt is rendered or
tokenised and before the request joins the queue. Each refusal is a 400
``invalid_request_error`` naming the limit and the server option that raises it.
"""

from __future__ import annotations

import dataclasses

from ..request import GenerationRequest, invalid

#: Defaults; ``jupyter-complete serve`` changes each with the flag named in its message.
DEFAULT_MAX_STOP_SEQUENCES = 64
DEFAULT_MAX_STOP_SEQUENCE_CHARS = 4096
DEFAULT_MAX_PROMPT_BYTES = 1024 * 1024
DEFAULT_MAX_TURNS = 1000


def at_least(limits: object, name: str, minimum: int, *, flag: bool = True) -> None:
    """Check that the integer field ``name`` of ``limits`` is at least ``minimum``.

    ``flag``: whether the error names the ``jupyter-complete serve`` flag that sets it.

    Raises:
        ValueError: the field is below ``minimum``.
    """
    value = getattr(limits, name)
    if value < minimum:
        where = f" (--{name.replace('_', '-')})" if flag else ""
        raise ValueError(f"{name} must be at least {minimum}{where}, got {value}")


@dataclasses.dataclass(frozen=True)
class RequestLimits:
    """What one valid request may ask for.

    Attributes:
        max_stop_sequences: stop sequences per request. Each one is searched for after
            every token while the model is held, so their number and length set the cost
            of every token (a million of them made each token 40x slower).
        max_stop_sequence_chars: their total length, in characters.
        max_prompt_bytes: UTF-8 bytes of the prompt (``/v1/complete``) or of the system
            text and messages (``/v1/messages``), checked before anything is tokenised.
        max_turns: Human/Assistant turns (messages) in one conversation.
    """

    max_stop_sequences: int = DEFAULT_MAX_STOP_SEQUENCES
    max_stop_sequence_chars: int = DEFAULT_MAX_STOP_SEQUENCE_CHARS
    max_prompt_bytes: int = DEFAULT_MAX_PROMPT_BYTES
    max_turns: int = DEFAULT_MAX_TURNS

    def __post_init__(self) -> None:
        """`ValueError` for a limit no request could pass (it names the serve flag)."""
        at_least(self, "max_stop_sequences", 0)
        at_least(self, "max_stop_sequence_chars", 0)
        at_least(self, "max_prompt_bytes", 1)
        at_least(self, "max_turns", 1)

    def check(self, request: GenerationRequest) -> None:
        """Raise `RequestRejected` (400) for the first limit ``request`` exceeds."""
        stops = request.stop_sequences
        if len(stops) > self.max_stop_sequences:
            raise invalid(
                f"stop_sequences: at most {self.max_stop_sequences} stop sequences "
                f"are allowed on this server, got {len(stops)} (--max-stop-sequences)"
            )
        chars = sum(len(s) for s in stops)
        if chars > self.max_stop_sequence_chars:
            raise invalid(
                f"stop_sequences: at most {self.max_stop_sequence_chars} characters "
                f"in all are allowed on this server, got {chars} "
                "(--max-stop-sequence-chars)"
            )
        turns = len(request.conversation.turns)
        if turns > self.max_turns:
            raise invalid(
                f"prompt is too long: {turns} turns > {self.max_turns} maximum on "
                "this server (--max-turns)"
            )
        size = request.conversation_bytes()
        if size > self.max_prompt_bytes:
            raise invalid(
                f"prompt is too long: {size} bytes > {self.max_prompt_bytes} maximum "
                "on this server (--max-prompt-bytes)"
            )


__all__ = [
    "DEFAULT_MAX_PROMPT_BYTES",
    "DEFAULT_MAX_STOP_SEQUENCES",
    "DEFAULT_MAX_STOP_SEQUENCE_CHARS",
    "DEFAULT_MAX_TURNS",
    "RequestLimits",
    "at_least",
]
