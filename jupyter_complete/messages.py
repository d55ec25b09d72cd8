"""The Messages transport: the same Text Completions request carried over ``/v1/messages``.

Text Completions is a legacy API that newer models refuse. This module converts a
``/v1/complete`` request body into a Messages body, following Anthropic's migration guide, and
reads Messages answers (JSON or SSE) back into the same `Completion` / `CompletionStream`
interface, so the magic and the panel do not know which transport ran.

Conversion rules:

* text before the first ``\\n\\nHuman:`` turn -> ``system``;
* each Human / Assistant turn -> a ``user`` / ``assistant`` message;
* text after the final ``\\n\\nAssistant:`` -> a prefill: the last ``assistant`` message, which
  the model continues (only the continuation is returned, as /v1/complete does);
* ``max_tokens_to_sample`` -> ``max_tokens``; ``stop_sequences``, ``temperature``, ``top_k``,
  ``top_p``, ``metadata`` and ``stream`` carry over unchanged.

Stop reasons map back as: ``end_turn`` -> ``stop_sequence`` (the model ended its turn, as at
``\\n\\nHuman:``), ``stop_sequence`` -> ``stop_sequence``, ``max_tokens`` -> ``max_tokens``;
anything else (``refusal``, ``pause_turn``, ...) is passed through unchanged.
"""

from __future__ import annotations

from typing import Any

from . import prompt as prompt_mod
from . import wire
from ._decoder import Decoder, Delta
from ._responses import error_envelope
from .completion import Completion, usage_of
from .errors import InvalidParameterError
from .streaming import CompletionStream

#: The stream events `MessagesDecoder` reads (the others, pings and content block
#: boundaries among them, carry nothing a Text Completions caller needs).
_READ_EVENTS = (wire.MESSAGE_START, wire.CONTENT_BLOCK_DELTA, wire.MESSAGE_DELTA, wire.MESSAGE_STOP)


def to_messages_body(body: dict[str, Any]) -> dict[str, Any]:
    """Convert a validated ``/v1/complete`` body into a ``/v1/messages`` body.

    Raises `InvalidParameterError` when the prompt is not Human/Assistant turns.
    """
    try:
        conv = prompt_mod.parse(body["prompt"])
    except prompt_mod.PromptFormatError as err:
        raise InvalidParameterError(
            "prompt",
            body["prompt"][:40] + ("..." if len(body["prompt"]) > 40 else ""),
            f"Human/Assistant turns for the Messages API ({err})",
        ) from err
    messages: list[dict[str, Any]] = [{"role": r, "content": t} for r, t in conv.turns]
    if conv.prefill:
        messages.append({"role": "assistant", "content": conv.prefill})
    out: dict[str, Any] = {
        "model": body["model"],
        "max_tokens": body["max_tokens_to_sample"],
        "messages": messages,
    }
    if conv.system:
        out["system"] = conv.system
    for key in wire.SHARED_FIELDS:
        if key in body:
            out[key] = body[key]
    return out


def from_messages_body(data: dict[str, Any], request_id: str | None) -> Completion:
    """A `Completion` from a non-streaming Messages response (its text blocks joined)."""
    blocks = data.get("content") or []
    text = "".join(
        b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text"
    )
    return Completion(
        completion=text,
        stop_reason=wire.complete_stop_reason(data.get("stop_reason")),
        model=data.get("model"),
        id=data.get("id"),
        stop=data.get("stop_sequence"),
        request_id=request_id,
        usage=usage_of(data["usage"]) if data.get("usage") else None,
    )


def message_of(data: dict[str, Any], request_id: str | None) -> Completion | None:
    """A whole Messages answer as a `Completion`; None if it has no ``content`` list."""
    if not isinstance(data.get("content"), list):
        return None
    return from_messages_body(data, request_id)


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class MessagesDecoder(Decoder):
    """Reads Messages events (or a whole Messages body) as Text Completions deltas.

    ``message_delta`` carries the stop reason; it is held (`pending_stop`, this decoder's
    own state) until ``message_stop`` ends the message.
    """

    pending_stop: str | None = None

    def parse_event(self, name: str, data: str) -> Delta | None:
        if name == wire.ERROR:
            obj = self.load(data)
            self.raise_error(error_envelope(obj) or obj, obj)
        if name not in _READ_EVENTS:
            return None  # ping, content_block_start/stop and unknown events
        obj = self.load(data)
        self.raise_if_error(obj)
        if name == wire.MESSAGE_START:
            msg = _dict(obj.get("message"))
            return Delta(id=msg.get("id"), model=msg.get("model"), usage=usage_of(msg.get("usage")))
        if name == wire.CONTENT_BLOCK_DELTA:
            delta = _dict(obj.get("delta"))
            if delta.get("type") != wire.TEXT_DELTA:
                return None
            return Delta(completion=self._delta(str(delta.get("text") or ""), None))
        if name == wire.MESSAGE_DELTA:
            delta = _dict(obj.get("delta"))
            self.pending_stop = wire.complete_stop_reason(delta.get("stop_reason"))
            return Delta(stop=delta.get("stop_sequence") or None, usage=usage_of(obj.get("usage")))
        # message_stop: the end. A missing stop reason still ends the message cleanly.
        return Delta(completion=self._delta("", self.pending_stop or "stop_sequence"))

    def parse_body(self, obj: dict[str, Any]) -> Delta | None:
        if obj.get("type") != "message" and not isinstance(obj.get("content"), list):
            return None
        whole = from_messages_body(obj, self.request_id)
        whole.stop_reason = whole.stop_reason or "stop_sequence"
        whole.id, whole.model = whole.id or self.id, whole.model or self.model
        whole.params = self.params
        return Delta(
            completion=whole, id=whole.id, model=whole.model, usage=whole.usage, stop=whole.stop
        )

    def _delta(self, text: str, stop_reason: str | None) -> Completion:
        """A delta for the caller; the final one carries the stop, usage and stop sequence."""
        return Completion(
            completion=text,
            stop_reason=stop_reason,
            model=self.model,
            id=self.id,
            stop=self.stop if stop_reason else None,
            request_id=self.request_id,
            params=self.params,
            usage=self.usage if stop_reason else None,
        )


class MessagesStream(CompletionStream):
    """A Messages SSE stream read as Text Completions deltas.

    ``content_block_delta`` text deltas become `Completion` deltas; ``message_delta`` carries
    the stop reason and output tokens; ``message_stop`` yields the final (empty) delta with
    the mapped stop reason. A stream cut before ``message_stop`` raises a connection error
    with the partial text, exactly like a Text Completions stream.
    """

    _decoder_class = MessagesDecoder


__all__ = ["MessagesStream", "from_messages_body", "message_of", "to_messages_body"]
