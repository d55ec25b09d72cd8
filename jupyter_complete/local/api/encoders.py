"""The two endpoints' answers: JSON bodies and server-sent events, as bytes (no HTTP here).

``POST /v1/complete`` answers a ``Completion`` or a stream of ``completion`` events (with
``anthropic-version: 2023-01-01``: unnamed events whose ``completion`` is the whole text so
far, then ``[DONE]``). ``POST /v1/messages`` answers a ``Message`` or the Messages stream:
``message_start``, ``content_block_start``, ``ping``, ``content_block_delta``...,
``content_block_stop``, ``message_delta`` (stop reason, output tokens), ``message_stop``.
Shapes follow the API's documentation (https://docs.anthropic.com/en/api/complete,
https://docs.anthropic.com/en/api/streaming, https://docs.anthropic.com/en/api/messages,
https://docs.anthropic.com/en/api/messages-streaming); names come from `jupyter_complete.wire`.
"""

from __future__ import annotations

import abc
import json
import secrets
import string
from typing import Any, ClassVar

from ... import wire
from ..request import CompletionRequest, GenerationRequest, MessagesRequest
from .backend import Final

_ID_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    """An id shaped like the API's (``req_01...``, ``compl_01...``): prefix, 01, 22 random."""
    return prefix + "01" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(22))


def sse_event(name: str | None, data: dict[str, Any] | str) -> bytes:
    """One server-sent event: ``event: NAME`` (when named), ``data: JSON``, a blank line."""
    payload = data if isinstance(data, str) else json.dumps(data)
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {payload}\n\n".encode()


def error_body(error_type: str, message: str, request_id: str) -> dict[str, Any]:
    """The API's error envelope."""
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    }


def complete_stop(final: Final) -> tuple[str, str | None]:
    """A `Final` as ``/v1/complete``'s ``(stop_reason, stop)`` (`wire.complete_stop`).

    The model ending its turn is reported as the Text Completions API does: a
    ``stop_sequence`` stop at ``"\\n\\nHuman:"``, where the next turn would begin.
    """
    return wire.complete_stop(final.stop_reason, final.stop_sequence)


def _event(name: str, **fields: Any) -> bytes:
    """A Messages stream event: named ``name``, its data ``{"type": name, **fields}``."""
    return sse_event(name, {"type": name, **fields})


class Encoder(abc.ABC):
    """One answer's bodies and events (one instance per request).

    Args:
        model: the ``model`` to report.
        version: the request's ``anthropic-version``.
        input_tokens: prompt tokens, when known before generating (else 0).
    """

    #: The endpoint's request class (its ``from_json`` validates a body).
    request_type: ClassVar[type[GenerationRequest]]
    #: The ``anthropic-version`` values the endpoint accepts.
    versions: ClassVar[tuple[str, ...]]
    #: The prefix of the answer's id (``compl_``, ``msg_``).
    id_prefix: ClassVar[str]

    def __init__(self, model: str, version: str, input_tokens: int = 0) -> None:
        self.model = model
        self.version = version
        self.input_tokens = input_tokens
        self.id = new_id(self.id_prefix)

    @abc.abstractmethod
    def body(self, text: str, final: Final) -> dict[str, Any]:
        """The non-streaming answer."""

    @abc.abstractmethod
    def opening(self) -> list[bytes]:
        """The events sent with the response head, before the model is ours."""

    def started(self) -> list[bytes]:
        """The events sent once the model is ours, before the first text."""
        return []

    @abc.abstractmethod
    def text(self, delta: str) -> bytes:
        """The event for a piece of text (several deltas may be joined into one)."""

    @abc.abstractmethod
    def closing(self, final: Final) -> list[bytes]:
        """The closing events; they end the stream."""

    @staticmethod
    def ping() -> bytes:
        """A keep-alive ``ping`` event."""
        return _event(wire.PING)

    @staticmethod
    def error(error_type: str, message: str) -> bytes:
        """The protocol's ``error`` event, which ends a stream that failed."""
        return _event(wire.ERROR, error={"type": error_type, "message": message})


class CompleteEncoder(Encoder):
    """``POST /v1/complete``: ``Completion`` bodies and ``completion`` events."""

    request_type = CompletionRequest
    versions = wire.COMPLETE_VERSIONS
    id_prefix = "compl_"

    def __init__(self, model: str, version: str, input_tokens: int = 0) -> None:
        super().__init__(model, version, input_tokens)
        self._sent: list[str] = []

    @property
    def legacy(self) -> bool:
        """2023-01-01: bodies without ``type``/``id``, cumulative unnamed events, ``[DONE]``."""
        return self.version == wire.LEGACY_VERSION

    def completion(self, text: str, stop_reason: str | None, stop: str | None) -> dict[str, Any]:
        """A ``Completion`` object: the whole body, or one event's data."""
        if self.legacy:
            return {
                "completion": text,
                "stop_reason": stop_reason,
                "stop": stop,
                "truncated": False,
                "exception": None,
                "log_id": self.id,
                "model": self.model,
            }
        return {
            "type": wire.COMPLETION,
            "id": self.id,
            "completion": text,
            "stop_reason": stop_reason,
            "model": self.model,
            "stop": stop,
            "log_id": self.id,
        }

    def body(self, text: str, final: Final) -> dict[str, Any]:
        """The non-streaming answer: a ``Completion`` with the whole ``text``."""
        return self.completion(text, *complete_stop(final))

    def opening(self) -> list[bytes]:
        """A ``ping``, sent with the response head."""
        # A ping at once: the client has its 200 and a first event while the request waits.
        return [self.ping()]

    def _event(self, delta: str, stop_reason: str | None, stop: str | None) -> bytes:
        if self.legacy:
            # 2023-01-01: unnamed events whose completion is the whole text so far.
            return sse_event(None, self.completion("".join(self._sent), stop_reason, stop))
        return sse_event(wire.COMPLETION, self.completion(delta, stop_reason, stop))

    def text(self, delta: str) -> bytes:
        """A ``completion`` event for ``delta`` (2023-01-01: the whole text so far)."""
        self._sent.append(delta)
        return self._event(delta, None, None)

    def closing(self, final: Final) -> list[bytes]:
        """A last ``completion`` event carrying ``stop_reason`` and ``stop``.

        Under 2023-01-01 it is followed by ``[DONE]``.
        """
        end = self._event("", *complete_stop(final))
        return [end, sse_event(None, "[DONE]")] if self.legacy else [end]


class MessagesEncoder(Encoder):
    """``POST /v1/messages``: ``Message`` bodies and the Messages stream events."""

    request_type = MessagesRequest
    versions = wire.MESSAGES_VERSIONS
    id_prefix = "msg_"

    def message(self, content: list[dict[str, str]], final: Final | None) -> dict[str, Any]:
        """A ``Message`` object; ``final`` None: the start of a stream, nothing yet."""
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": final.stop_reason if final else None,
            "stop_sequence": final.stop_sequence if final else None,
            "usage": {
                "input_tokens": final.input_tokens if final else self.input_tokens,
                "output_tokens": final.output_tokens if final else 0,
            },
        }

    def body(self, text: str, final: Final) -> dict[str, Any]:
        """The non-streaming answer: a ``Message`` with one ``text`` content block."""
        return self.message([{"type": "text", "text": text}], final)

    def opening(self) -> list[bytes]:
        """``message_start``, with an empty ``Message`` (its usage: the input tokens)."""
        return [_event(wire.MESSAGE_START, message=self.message([], None))]

    def started(self) -> list[bytes]:
        """``content_block_start`` for the one text block, then a ``ping``."""
        block = {"type": "text", "text": ""}
        return [_event(wire.CONTENT_BLOCK_START, index=0, content_block=block), self.ping()]

    def text(self, delta: str) -> bytes:
        """A ``content_block_delta`` event with a ``text_delta`` of ``delta``."""
        text = {"type": wire.TEXT_DELTA, "text": delta}
        return _event(wire.CONTENT_BLOCK_DELTA, index=0, delta=text)

    def closing(self, final: Final) -> list[bytes]:
        """``content_block_stop``, ``message_delta`` (stop and output tokens), ``message_stop``."""
        stop = {"stop_reason": final.stop_reason, "stop_sequence": final.stop_sequence}
        return [
            _event(wire.CONTENT_BLOCK_STOP, index=0),
            _event(wire.MESSAGE_DELTA, delta=stop, usage={"output_tokens": final.output_tokens}),
            _event(wire.MESSAGE_STOP),
        ]


__all__ = [
    "CompleteEncoder",
    "Encoder",
    "MessagesEncoder",
    "complete_stop",
    "error_body",
    "new_id",
    "sse_event",
]
