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
from .completion import Completion
from .errors import InvalidParameterError
from .streaming import CompletionStream, _Decoder, error_envelope

MESSAGES_PATH = "/v1/messages"

STOP_REASONS = {
    "end_turn": "stop_sequence",
    "stop_sequence": "stop_sequence",
    "max_tokens": "max_tokens",
}


def map_stop_reason(reason: str | None) -> str | None:
    """A Messages stop reason in Text Completions terms."""
    return None if reason is None else STOP_REASONS.get(reason, reason)


def to_messages_body(body: dict[str, Any]) -> dict[str, Any]:
    """Convert a validated ``/v1/complete`` body into a ``/v1/messages`` body."""
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
    for key in ("stop_sequences", "temperature", "top_k", "top_p", "metadata", "stream"):
        if key in body:
            out[key] = body[key]
    return out


def from_messages_body(data: dict[str, Any], request_id: str | None) -> Completion:
    """A `Completion` from a non-streaming Messages response."""
    blocks = data.get("content") or []
    text = "".join(
        b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text"
    )
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else None
    return Completion(
        completion=text,
        stop_reason=map_stop_reason(data.get("stop_reason")),
        model=data.get("model"),
        id=data.get("id"),
        stop=data.get("stop_sequence"),
        request_id=request_id,
        usage=_int_usage(usage),
    )


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int_usage(usage: dict[str, Any] | None) -> dict[str, int] | None:
    if not usage:
        return None
    return {k: int(v) for k, v in usage.items() if isinstance(v, int)}


class _MessagesDecoder(_Decoder):
    """Reads Messages events (or a whole Messages body) as Text Completions deltas."""

    pending_stop: str | None = None

    def handle_event(self, name: str, data: str) -> Completion | None:
        if name == "error":
            obj = self.load(data)
            self.raise_error(error_envelope(obj) or obj, obj)
        if name not in ("message_start", "content_block_delta", "message_delta", "message_stop"):
            return None  # ping, content_block_start/stop and unknown events
        obj = self.load(data)
        self.raise_if_error(obj)
        if name == "message_start":
            msg = _dict(obj.get("message"))
            self.id = msg.get("id") or self.id
            self.model = msg.get("model") or self.model
            self._merge_usage(msg.get("usage"))
            return None
        if name == "content_block_delta":
            delta = _dict(obj.get("delta"))
            if delta.get("type") != "text_delta":
                return None
            text = str(delta.get("text") or "")
            self.add_text(text)
            return self._delta(text, None)
        if name == "message_delta":
            delta = _dict(obj.get("delta"))
            self.pending_stop = map_stop_reason(delta.get("stop_reason"))
            self.stop = delta.get("stop_sequence") or self.stop
            self._merge_usage(obj.get("usage"))
            return None
        # message_stop: the end. A missing stop reason still ends the message cleanly.
        self.stop_reason = self.pending_stop or "stop_sequence"
        return self._delta("", self.stop_reason)

    def handle_body(self, obj: dict[str, Any]) -> Completion | None:
        if obj.get("type") != "message" and not isinstance(obj.get("content"), list):
            return None
        whole = from_messages_body(obj, self.request_id)
        self.id, self.model = whole.id or self.id, whole.model or self.model
        self.usage, self.stop = whole.usage, whole.stop
        self.add_text(whole.completion)
        self.stop_reason = whole.stop_reason or "stop_sequence"
        return self._delta(whole.completion, self.stop_reason)

    def _merge_usage(self, usage: object) -> None:
        if isinstance(usage, dict):
            merged = dict(self.usage or {})
            merged.update(_int_usage(usage) or {})
            self.usage = merged

    def _delta(self, text: str, stop_reason: str | None) -> Completion:
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

    _decoder_class = _MessagesDecoder
