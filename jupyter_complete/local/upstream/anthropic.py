"""The Messages API protocol (``POST /v1/messages``) spoken to an engine, both ways.

`anthropic_body` sends one of our requests as the Messages API spells it (with the built-in
``"\\n\\nHuman:"`` added to ``stop_sequences``), `anthropic_count_body` asks
``/v1/messages/count_tokens`` about it, and `anthropic_event` reads one stream event into a
`Piece` (https://docs.anthropic.com/en/api/messages-streaming).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ... import wire
from ...wire import HUMAN_PROMPT
from .answer import Piece, int_or_none
from .errors import error_fields

if TYPE_CHECKING:
    from ...prompt import Conversation
    from ..request import GenerationRequest

#: Anthropic version sent to an ``anthropic`` engine.
#: What `anthropic_body` sends that ``/v1/messages/count_tokens`` does not take: the fields
#: that shape a generation, not its prompt.
_GENERATION_FIELDS = (
    "stream",
    "max_tokens",
    "stop_sequences",
    "temperature",
    "top_k",
    "top_p",
    "metadata",
)


def anthropic_messages(conversation: Conversation) -> list[dict[str, str]]:
    """Messages API ``messages``: the turns, then the prefill as a final assistant message."""
    messages = [{"role": role, "content": text} for role, text in conversation.turns]
    if conversation.prefill:
        messages.append({"role": "assistant", "content": conversation.prefill})
    return messages


def anthropic_body(request: GenerationRequest, model: str) -> dict[str, Any]:
    """The ``/v1/messages`` body for ``request`` (see `jupyter_complete.local.upstream`)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": anthropic_messages(request.conversation),
        "max_tokens": request.max_tokens,
        "stop_sequences": _stops(request),
        "stream": True,
    }
    if request.conversation.system:
        body["system"] = request.conversation.system
    for name in ("temperature", "top_k", "top_p", "metadata"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    return body


def _stops(request: GenerationRequest) -> list[str]:
    """The request's stop sequences and the built-in ``"\\n\\nHuman:"``, once each."""
    return list(dict.fromkeys((*request.stop_sequences, HUMAN_PROMPT)))


def anthropic_count_body(request: GenerationRequest, model: str) -> dict[str, Any]:
    """The ``/v1/messages/count_tokens`` body for ``request``.

    `anthropic_body`'s model, system and messages.
    """
    body = anthropic_body(request, model)
    for name in _GENERATION_FIELDS:
        body.pop(name, None)
    return body


def anthropic_event(event: str, data: Mapping[str, Any]) -> Piece:
    """Read one Messages API stream event (``content_block_delta``, ``message_delta``...)."""
    piece = Piece()
    kind = data.get("type", event)
    if kind == wire.ERROR:
        piece.error = error_fields(data.get("error") or {}, "api_error")
    elif kind == wire.MESSAGE_START:
        usage = (data.get("message") or {}).get("usage") or {}
        piece.input_tokens = int_or_none(usage.get("input_tokens"))
    elif kind == wire.CONTENT_BLOCK_DELTA:
        delta = data.get("delta") or {}
        if delta.get("type") == wire.TEXT_DELTA and isinstance(delta.get("text"), str):
            piece.text = delta["text"]
    elif kind == wire.MESSAGE_DELTA:
        delta = data.get("delta") or {}
        if isinstance(delta.get("stop_reason"), str):
            piece.finish = delta["stop_reason"]
        if isinstance(delta.get("stop_sequence"), str):
            piece.stop_sequence = delta["stop_sequence"]
        usage = data.get("usage") or {}
        piece.output_tokens = int_or_none(usage.get("output_tokens"))
        if usage.get("input_tokens") is not None:
            piece.input_tokens = int_or_none(usage.get("input_tokens"))
    return piece


__all__ = [
    "anthropic_body",
    "anthropic_count_body",
    "anthropic_event",
    "anthropic_messages",
]
