"""`CompletionRequest` and `MessagesRequest`: requests checked the way the real API checks them.

Error messages copy the real server's where they are known (see ``docs/architecture.md``):
``anthropic-version: header is required``, ``x-api-key header is required``,
``invalid x-api-key``, ``temperature: range: 0..1``, ``foo: Extra inputs are not permitted``,
``prompt must start with "\\n\\nHuman:" turn after an optional system prompt``; for
``/v1/messages``, ``final assistant content cannot end with trailing whitespace`` and
``messages: all messages must have non-empty content except for the optional final assistant
message``. Where the real wording is unknown, messages follow the same ``field: pydantic
message`` style (``messages.0.role: Input should be 'user' or 'assistant'``).
"""

from __future__ import annotations

import abc
import dataclasses
import hmac
import json
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .. import wire
from ..prompt import Conversation, PromptFormatError, parse
from ..wire import HUMAN_PROMPT


class RequestRejected(Exception):
    """The server answers with an error envelope instead of a completion."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        #: Extra response headers (``x-should-retry`` on 529, ``allow`` on 405).
        self.headers = dict(headers or {})


def invalid(message: str) -> RequestRejected:
    """400 invalid_request_error."""
    return RequestRejected(400, "invalid_request_error", message)


_R = TypeVar("_R", bound="GenerationRequest")


@dataclasses.dataclass(frozen=True, kw_only=True)
class GenerationRequest(abc.ABC):
    """What any endpoint's validated request asks of the model (unset optionals are None).

    `CompletionRequest` (``/v1/complete``) and `MessagesRequest` (``/v1/messages``) differ
    only in how the body spells it; the server generates from these fields alone.
    """

    model: str
    #: The turns to render through the chat template (system text, turns, prefill).
    conversation: Conversation
    max_tokens: int
    stop_sequences: tuple[str, ...] = ()
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    metadata: dict[str, Any] | None = None
    stream: bool = False

    def conversation_bytes(self) -> int:
        """UTF-8 bytes of the conversation's text (system, turns, prefill), before markup."""
        c = self.conversation
        texts = [c.system, c.prefill, *(text for _, text in c.turns)]
        return sum(len(text.encode("utf-8", "surrogatepass")) for text in texts)

    @classmethod
    def from_json(cls: type[_R], raw: bytes) -> _R:
        """Parse and validate a request body; raises `RequestRejected` (400) on the first fault."""
        return cls.from_dict(load_object(raw))

    @classmethod
    @abc.abstractmethod
    def from_dict(cls: type[_R], body: dict[str, Any]) -> _R:
        """Validate a decoded body (see `from_json`)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class CompletionRequest(GenerationRequest):
    """A validated ``/v1/complete`` body."""

    prompt: str

    @property
    def max_tokens_to_sample(self) -> int:
        """The wire name of `max_tokens`."""
        return self.max_tokens

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> CompletionRequest:
        """Validate a decoded body (see `from_json`)."""
        _require(body, wire.COMPLETE_REQUIRED)
        model = _string("model", body["model"])
        prompt = _string("prompt", body["prompt"])
        if not prompt:
            raise invalid("prompt: String should have at least 1 character")
        max_tokens = _integer("max_tokens_to_sample", body["max_tokens_to_sample"], minimum=1)
        sampling = _sampling(body, wire.COMPLETE_FIELDS)
        return cls(
            model=model,
            prompt=prompt,
            max_tokens=max_tokens,
            conversation=_conversation(prompt),
            **sampling,
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class MessagesRequest(GenerationRequest):
    """A validated ``/v1/messages`` body, text content only.

    ``messages`` and ``system`` become the `conversation`: ``system`` (a string, or text
    blocks joined by blank lines) is the system message, the messages are the turns in
    order, and a final ``assistant`` message is the prefill the model continues. Several
    text blocks in one message are joined by blank lines too.
    """

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> MessagesRequest:
        """Validate a decoded body (see `from_json`)."""
        _require(body, wire.MESSAGES_REQUIRED)
        model = _string("model", body["model"])
        max_tokens = _integer("max_tokens", body["max_tokens"], minimum=1)
        turns = _messages(body["messages"])
        system = "" if body.get("system") is None else _text("system", body["system"])
        sampling = _sampling(body, wire.MESSAGES_FIELDS)
        prefill = turns.pop()[1] if turns[-1][0] == "assistant" else ""
        return cls(
            model=model,
            max_tokens=max_tokens,
            **sampling,
            conversation=Conversation(system=system, turns=turns, prefill=prefill),
        )


def count_tokens_request(body: dict[str, Any]) -> MessagesRequest:
    """A ``POST /v1/messages/count_tokens`` body as the `MessagesRequest` it counts.

    The body has ``model``, ``messages``, ``system``; 400 as `MessagesRequest` on a fault.
    """
    _require(body, wire.COUNT_TOKENS_REQUIRED)
    model = _string("model", body["model"])
    turns = _messages(body["messages"])
    system = "" if body.get("system") is None else _text("system", body["system"])
    _no_extras(body, wire.COUNT_TOKENS_FIELDS, "")
    prefill = turns.pop()[1] if turns[-1][0] == "assistant" else ""
    return MessagesRequest(
        model=model,
        max_tokens=1,
        conversation=Conversation(system=system, turns=turns, prefill=prefill),
    )


def load_object(raw: bytes) -> dict[str, Any]:
    """A request body decoded as a JSON object; `RequestRejected` (400) otherwise."""
    try:
        body = json.loads(raw)
    except RecursionError as err:  # nesting deeper than the parser's stack
        raise invalid("Request body is nested too deeply") from err
    except (ValueError, UnicodeDecodeError) as err:
        where = (
            f" at line {err.lineno} column {err.colno}"
            if isinstance(err, json.JSONDecodeError)
            else ""
        )
        raise invalid(f"Request body is not valid JSON{where}") from err
    if not isinstance(body, dict):
        raise invalid("Input should be a valid dictionary or object to extract fields from")
    return body


def check_version(values: list[str], accepted: tuple[str, ...] = wire.COMPLETE_VERSIONS) -> str:
    """The ``anthropic-version`` in force.

    Raises:
        RequestRejected: the header is missing or not one of ``accepted``.
    """
    if not values:
        raise invalid("anthropic-version: header is required")
    # A repeated header reads as one comma-joined value, which is not a version: the real
    # server rejects it too.
    value = ", ".join(v.strip() for v in values)
    if value not in accepted:
        raise invalid(f'anthropic-version: "{value}" is not a valid version')
    return value


def check_key(x_api_key: str | None, authorization: str | None, expected: str | None) -> None:
    """401 unless the request carries ``expected`` (no check when the server has no key)."""
    if expected is None:
        return
    given = x_api_key
    if given is None and authorization and authorization.lower().startswith("bearer "):
        given = authorization[7:].strip()
    if given is None:
        raise RequestRejected(401, "authentication_error", "x-api-key header is required")
    # Constant-time comparison: the key must not leak through response timing.
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise RequestRejected(401, "authentication_error", "invalid x-api-key")


def _conversation(prompt: str) -> Conversation:
    # The API "lightly sanitizes" before validating
    # (https://docs.anthropic.com/en/api/prompt-validation): a prompt that starts
    # with "Human:" without the blank line is accepted. parse() strips trailing spaces.
    if prompt.startswith(HUMAN_PROMPT.lstrip("\n")):
        prompt = "\n\n" + prompt
    try:
        return parse(prompt)
    except PromptFormatError as err:
        raise invalid(str(err)) from err


def _require(obj: dict[str, Any], names: tuple[str, ...], where: str = "") -> None:
    """400 for the first of ``names`` missing from ``obj`` (``where``: its location prefix)."""
    for name in names:
        if name not in obj:
            raise invalid(f"{where}{name}: Field required")


def _sampling(body: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    """The optional fields both endpoints share, checked; then no field outside ``allowed``."""
    stops = _stop_sequences(body.get("stop_sequences"))
    temperature = _unit("temperature", body.get("temperature"))
    top_k = None if body.get("top_k") is None else _integer("top_k", body["top_k"], minimum=0)
    top_p = _unit("top_p", body.get("top_p"))
    metadata = _metadata(body.get("metadata"))
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise invalid("stream: Input should be a valid boolean")
    _no_extras(body, allowed, "")
    return {
        "stop_sequences": stops,
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "metadata": metadata,
        "stream": bool(stream),
    }


def _no_extras(obj: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    """400 for the first key of ``obj`` not in ``allowed``, as pydantic's ``extra=forbid``."""
    for name in obj:
        if name not in allowed:
            raise invalid(f"{where}{name}: Extra inputs are not permitted")


def _messages(value: object) -> list[tuple[str, str]]:
    """``messages`` as (role, text) turns, checked as the Messages API checks them."""
    if not isinstance(value, list):
        raise invalid("messages: Input should be a valid list")
    if not value:
        raise invalid("messages: at least one message is required")
    turns: list[tuple[str, str]] = []
    for i, message in enumerate(value):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise invalid(
                f"{where}: Input should be a valid dictionary or object to extract fields from"
            )
        _require(message, ("role", "content"), f"{where}.")
        if message["role"] not in wire.ROLES:
            raise invalid(f"{where}.role: Input should be 'user' or 'assistant'")
        _no_extras(message, ("role", "content"), f"{where}.")
        turns.append((message["role"], _text(f"{where}.content", message["content"])))
    for i, (role, text) in enumerate(turns):
        # Only the final assistant message may be empty: it is a prefill of nothing.
        if not text and not (i == len(turns) - 1 and role == "assistant"):
            raise invalid(
                "messages: all messages must have non-empty content except for the "
                "optional final assistant message"
            )
    if turns[-1][0] == "assistant" and turns[-1][1] != turns[-1][1].rstrip():
        raise invalid("final assistant content cannot end with trailing whitespace")
    return turns


def _text(where: str, value: object) -> str:
    """A content value as text: a string, or a list of text blocks joined by blank lines."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise invalid(f"{where}: Input should be a valid string or a list of content blocks")
    texts: list[str] = []
    for j, block in enumerate(value):
        at = f"{where}.{j}"
        if not isinstance(block, dict):
            raise invalid(
                f"{at}: Input should be a valid dictionary or object to extract fields from"
            )
        _require(block, ("type",), f"{at}.")
        if block["type"] != "text":
            # Images, documents and tool blocks need a model that reads them.
            raise invalid(
                f"{at}.type: the local model reads only 'text' content blocks, "
                f"not {block['type']!r}"
            )
        _require(block, ("text",), f"{at}.")
        _no_extras(block, ("type", "text"), f"{at}.")
        text = _string(f"{at}.text", block["text"])
        if not text:
            raise invalid(f"{where}: text content blocks must be non-empty")
        texts.append(text)
    return "\n\n".join(texts)


def _string(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise invalid(f"{name}: Input should be a valid string")
    return value


def _integer(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(f"{name}: Input should be a valid integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise invalid(
                f"{name}: Input should be a valid integer, got a number with a fractional part"
            )
        value = int(value)
    if value < minimum:
        raise invalid(f"{name}: Input should be greater than or equal to {minimum}")
    return value


def _unit(name: str, value: object) -> float | None:
    """A number in [0, 1], the API's range for temperature and top_p."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(f"{name}: Input should be a valid number")
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise invalid(f"{name}: range: 0..1")
    return float(value)


def _stop_sequences(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise invalid("stop_sequences: Input should be a valid list")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise invalid(f"stop_sequences.{i}: Input should be a valid string")
    return tuple(s for s in value if s)


def _metadata(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid("metadata: Input should be a valid dictionary")
    checks: dict[str, Callable[[object], None]] = {"user_id": _user_id}
    for key, item in value.items():
        if key not in checks:
            raise invalid(f"metadata.{key}: Extra inputs are not permitted")
        checks[key](item)
    return dict(value)


def _user_id(value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise invalid("metadata.user_id: Input should be a valid string")
    if len(value) > 256:
        raise invalid("metadata.user_id: String should have at most 256 characters")


__all__ = [
    "CompletionRequest",
    "GenerationRequest",
    "MessagesRequest",
    "RequestRejected",
    "check_key",
    "check_version",
    "count_tokens_request",
    "invalid",
    "load_object",
]
