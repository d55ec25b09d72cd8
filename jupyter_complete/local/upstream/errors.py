"""An engine's errors as the API's.

`rejection_for` (an error status), `error_fields` (an error event inside a stream) and
`unreachable` (no answer at all).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from ... import wire
from ..request import RequestRejected


def error_fields(error: object, default_type: str) -> tuple[str, str]:
    """(type, message) of an engine's error object, in whichever shape it comes."""
    if isinstance(error, str):
        return default_type, error
    if not isinstance(error, dict):
        return default_type, "the upstream engine failed"
    message = error.get("message")
    kind = error.get("type")
    return (
        kind if isinstance(kind, str) and kind in wire.ERROR_TYPES else default_type,
        message if isinstance(message, str) and message else "the upstream engine failed",
    )


def rejection_for(
    status: int, body: bytes, headers: Mapping[str, str] | None = None
) -> RequestRejected:
    """The API's answer for an engine's error response.

    - 400/422 -> 400 ``invalid_request_error`` with the engine's message (a prompt too long
      for the context, a template that refuses the turns); 404 -> 404 ``not_found_error``
      (an unknown model); 413 -> 413 ``request_too_large``;
    - 429 -> 429 ``rate_limit_error``; 503 and 529 (the engine is loading or full) -> 529
      ``overloaded_error``; both with ``x-should-retry: true`` and the engine's
      ``retry-after``;
    - 401/403 -> 500 ``api_error``: the engine refused *our* key, which the client cannot
      fix (the engine's message is not passed on);
    - any other status -> 500 ``api_error``.

    The message is the engine's (``error.message`` in OpenAI's and Anthropic's shapes, or a
    plain ``error`` / ``detail`` string), cut to 1000 characters.
    """
    message = _error_message(body) or f"the upstream engine answered HTTP {status}"
    message = message[:1000]
    retry: dict[str, str] = {"x-should-retry": "true"}
    after = (headers or {}).get("retry-after")
    if after:
        retry["retry-after"] = after
    if status in (400, 422):
        return RequestRejected(400, "invalid_request_error", message)
    if status == 404:
        return RequestRejected(404, "not_found_error", message)
    if status == 413:
        return RequestRejected(413, "request_too_large", message)
    if status == 429:
        return RequestRejected(429, "rate_limit_error", message, retry)
    if status in (503, 529):
        return RequestRejected(529, "overloaded_error", message, retry)
    if status in (401, 403):
        return RequestRejected(
            500, "api_error", f"the upstream engine refused this server's key (HTTP {status})"
        )
    return RequestRejected(500, "api_error", message, retry)


def _error_message(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        text = body.decode("utf-8", "replace").strip()
        return text.splitlines()[0] if text else None
    if isinstance(data, dict):
        for candidate in (data.get("error"), data.get("detail"), data.get("message")):
            if isinstance(candidate, dict) and isinstance(candidate.get("message"), str):
                return str(candidate["message"])
            if isinstance(candidate, str):
                return candidate
            if isinstance(candidate, list) and candidate:  # FastAPI's validation details
                return json.dumps(candidate)[:1000]
    return None


def unreachable(err: Exception) -> RequestRejected:
    """500 ``api_error`` (retry) for an engine that could not be reached or broke off."""
    return RequestRejected(
        500,
        "api_error",
        f"the upstream engine could not be reached ({type(err).__name__})",
        {"x-should-retry": "true"},
    )


__all__ = ["error_fields", "rejection_for", "unreachable"]
