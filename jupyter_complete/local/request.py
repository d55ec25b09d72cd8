"""`CompletionRequest`: a ``POST /v1/complete`` request checked the way the real API checks it.

Error messages copy the real server's where they are known (protocol.md 1.4, 1.5, 4.3):
``anthropic-version: header is required``, ``x-api-key header is required``,
``invalid x-api-key``, ``temperature: range: 0..1``, ``foo: Extra inputs are not permitted``,
``prompt must start with "\\n\\nHuman:" turn after an optional system prompt``. Where the
real wording is unknown, messages follow the same ``field: pydantic message`` style.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from .._constants import HUMAN_PROMPT
from ..prompt import Conversation, PromptFormatError, parse

#: Versions the server speaks. 2023-01-01 streams cumulative, data-only events (protocol.md 1.3).
VERSIONS = ("2023-06-01", "2023-01-01")
LEGACY_VERSION = "2023-01-01"

_FIELDS = (
    "model", "prompt", "max_tokens_to_sample", "stop_sequences", "temperature", "top_k",
    "top_p", "metadata", "stream",
)
_REQUIRED = ("model", "prompt", "max_tokens_to_sample")


class RequestRejected(Exception):
    """The server answers with an error envelope instead of a completion."""

    def __init__(
        self, status: int, error_type: str, message: str,
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


@dataclasses.dataclass(frozen=True)
class CompletionRequest:
    """A validated request body (unset optional fields are None)."""

    model: str
    prompt: str
    max_tokens_to_sample: int
    conversation: Conversation
    stop_sequences: tuple[str, ...] = ()
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    metadata: dict[str, Any] | None = None
    stream: bool = False

    @classmethod
    def from_json(cls, raw: bytes) -> CompletionRequest:
        """Parse and validate a request body; raises `RequestRejected` (400) on the first fault."""
        try:
            body = json.loads(raw)
        except RecursionError as err:  # nesting deeper than the parser's stack
            raise invalid("Request body is nested too deeply") from err
        except (ValueError, UnicodeDecodeError) as err:
            where = (f" at line {err.lineno} column {err.colno}"
                     if isinstance(err, json.JSONDecodeError) else "")
            raise invalid(f"Request body is not valid JSON{where}") from err
        if not isinstance(body, dict):
            raise invalid("Input should be a valid dictionary or object to extract fields from")
        return cls.from_dict(body)

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> CompletionRequest:
        """Validate a decoded body (see `from_json`)."""
        for name in _REQUIRED:
            if name not in body:
                raise invalid(f"{name}: Field required")
        model = _string("model", body["model"])
        prompt = _string("prompt", body["prompt"])
        if not prompt:
            raise invalid("prompt: String should have at least 1 character")
        max_tokens = _integer("max_tokens_to_sample", body["max_tokens_to_sample"], minimum=1)
        stops = _stop_sequences(body.get("stop_sequences"))
        temperature = _unit("temperature", body.get("temperature"))
        top_k = (None if body.get("top_k") is None
                 else _integer("top_k", body["top_k"], minimum=0))
        top_p = _unit("top_p", body.get("top_p"))
        metadata = _metadata(body.get("metadata"))
        stream = body.get("stream")
        if stream is not None and not isinstance(stream, bool):
            raise invalid("stream: Input should be a valid boolean")
        for name in body:
            if name not in _FIELDS:
                raise invalid(f"{name}: Extra inputs are not permitted")
        return cls(
            model=model, prompt=prompt, max_tokens_to_sample=max_tokens,
            conversation=_conversation(prompt), stop_sequences=stops,
            temperature=temperature, top_k=top_k, top_p=top_p, metadata=metadata,
            stream=bool(stream),
        )


def check_version(values: list[str]) -> str:
    """The ``anthropic-version`` in force; raises `RequestRejected` if missing or unknown."""
    if not values:
        raise invalid("anthropic-version: header is required")
    # A repeated header reads as one comma-joined value, which is not a version: the real
    # server rejects it too (protocol.md 1.2).
    value = ", ".join(v.strip() for v in values)
    if value not in VERSIONS:
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
    # The API "lightly sanitizes" before validating (protocol.md 1.5): a prompt that starts
    # with "Human:" without the blank line is accepted. parse() strips trailing spaces.
    if prompt.startswith(HUMAN_PROMPT.lstrip("\n")):
        prompt = "\n\n" + prompt
    try:
        return parse(prompt)
    except PromptFormatError as err:
        raise invalid(str(err)) from err


def _string(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise invalid(f"{name}: Input should be a valid string")
    return value


def _integer(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(f"{name}: Input should be a valid integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise invalid(f"{name}: Input should be a valid integer, got a number with a "
                          "fractional part")
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
    "LEGACY_VERSION",
    "VERSIONS",
    "CompletionRequest",
    "RequestRejected",
    "check_key",
    "check_version",
    "invalid",
]
