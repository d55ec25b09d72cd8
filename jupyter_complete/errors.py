"""The one error hierarchy of jupyter_complete.

Names are the official SDK's (https://github.com/anthropics/anthropic-sdk-python,
``src/anthropic/_exceptions.py``), so ``except anthropic.RateLimitError`` habits carry over,
but the set is a subset: there is no ``ConflictError`` (409), ``UnprocessableEntityError``
(422), ``ServiceUnavailableError`` (503) or ``DeadlineExceededError`` (504), so those raise
`APIStatusError` (409, 422) or `InternalServerError` (503, 504); and `OverloadedError` is an
`InternalServerError` here (the SDK's is a bare `APIStatusError`), so ``except
InternalServerError`` also catches a 529::

    CompleteError
    ├── InvalidParameterError        (also a ValueError; raised before anything is sent)
    ├── LocalModelUnavailableError   (no key, no base URL and no [local] extra)
    └── APIError
        ├── APIStatusError           (status_code, type, request_id)
        │   ├── BadRequestError 400, AuthenticationError 401, PermissionDeniedError 403,
        │   ├── NotFoundError 404, RequestTooLargeError 413, RateLimitError 429,
        │   └── InternalServerError >= 500
        │       └── OverloadedError 529
        ├── APIConnectionError
        │   └── APITimeoutError
        └── APIResponseValidationError (a body or event that is not valid JSON)
            └── ResponseTooLargeError  (a body, event or line above a documented limit)

Every `APIError` raised after text arrived carries ``.partial``: a `Completion` with all the
text received so far. ``str(err)`` is one line saying what failed and what to do.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._constants import ENV_RAISE_ERRORS

if TYPE_CHECKING:
    from .completion import Completion


class OneLineTraceback:
    """Mixin: IPython shows the exception as one line, unless full tracebacks are switched on.

    The switch is ``CompleteError.show_traceback`` (``%config CompleteMagics.show_traceback =
    True``) or the environment variable ``JUPYTER_COMPLETE_RAISE_ERRORS=1``.
    """

    #: The name shown before the message (default: the class name).
    display_name: str | None = None

    @property
    def _render_traceback_(self) -> Callable[[], list[str]]:
        # IPython's hook for a custom display. IPython >= 8 calls it when hasattr() says it
        # exists, and an exception raised by the call is shown as "Unexpected exception
        # formatting exception" plus a plain traceback. So the switch makes the attribute
        # itself missing (an AttributeError): IPython then formats the traceback, %xmode
        # and all.
        if CompleteError.show_traceback or os.environ.get(ENV_RAISE_ERRORS):
            raise _FullTraceback("_render_traceback_")
        return self._one_line

    def _one_line(self) -> list[str]:
        name = self.display_name or type(self).__name__
        return [f"\x1b[0;31m{name}\x1b[0m: {self}"]


class CompleteError(OneLineTraceback, Exception):
    """Base class of every error this package raises."""

    #: When True, notebooks show full Python tracebacks instead of the one-line message
    #: (``%config CompleteMagics.show_traceback = True`` sets it; so does the environment
    #: variable ``JUPYTER_COMPLETE_RAISE_ERRORS=1``).
    show_traceback: bool = False


class _FullTraceback(AttributeError, NotImplementedError):
    """The hook is switched off. Also a NotImplementedError: what the hook used to raise."""


class InvalidParameterError(CompleteError, ValueError):
    """A request parameter is out of range or of the wrong type; nothing was sent."""

    def __init__(self, param: str, value: object, allowed: str) -> None:
        self.param = param
        self.value = value
        self.allowed = allowed
        super().__init__(f"{param}={value!r} is invalid: it must be {allowed}.")


class LocalModelUnavailableError(CompleteError):
    """No endpoint is configured and the built-in local model cannot be started."""


class APIError(CompleteError):
    """A request to the completion endpoint failed."""

    #: The HTTP status, or None when no response arrived.
    status_code: int | None = None

    def __init__(
        self,
        message: str,
        *,
        type: str | None = None,
        body: object | None = None,
        request_id: str | None = None,
        partial: Completion | None = None,
        hint: str | None = None,
    ) -> None:
        #: The server's (or our) description of the failure, without the hint.
        self.message = message
        #: The error type from the body (``overloaded_error``, ...), when there was one.
        self.type = type
        #: The parsed error body (or raw text) the server sent.
        self.body = body
        self.request_id = request_id
        #: Everything received before the failure, as a `Completion` (None if nothing came).
        self.partial = partial
        self.hint = hint
        super().__init__(message)

    def __str__(self) -> str:
        parts = [self.message.rstrip(".") + "."]
        if self.hint:
            parts.append(self.hint)
        if self.partial is not None and self.partial.completion:
            parts.append(f"({len(self.partial.completion)} characters received were kept.)")
        if self.request_id:
            parts.append(f"[request {self.request_id}]")
        return " ".join(parts).replace("\n", " ")


class APIStatusError(APIError):
    """The server answered with an error status, or sent an ``error`` event mid-stream."""

    default_hint = "Check the request and try again."

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("hint", self.default_hint)
        super().__init__(message, **kwargs)
        self.status_code = status_code
        #: Response headers (empty for a mid-stream error event).
        self.headers = dict(headers or {})


class BadRequestError(APIStatusError):
    """400 invalid_request_error."""

    default_hint = "Fix the prompt or parameters named above."


class AuthenticationError(APIStatusError):
    """401 authentication_error."""

    default_hint = "Check ANTHROPIC_API_KEY (or the api_key argument)."


class PermissionDeniedError(APIStatusError):
    """403 permission_error."""

    default_hint = "This key may not use this model or feature."


class NotFoundError(APIStatusError):
    """404 not_found_error."""

    default_hint = "Check the model name and the base URL."


class RequestTooLargeError(APIStatusError):
    """413 request_too_large."""

    default_hint = "Shorten the prompt."


class RateLimitError(APIStatusError):
    """429 rate_limit_error."""

    default_hint = "Rate limited: wait a little, then run again."


class InternalServerError(APIStatusError):
    """>= 500 api_error."""

    default_hint = "The server failed; try again later."


class OverloadedError(InternalServerError):
    """529 overloaded_error (also raised for a mid-stream ``overloaded_error`` event)."""

    default_hint = "The server is overloaded; try again in a moment."


class APIConnectionError(APIError):
    """No usable response: refused, reset, or a stream cut before its final event."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("hint", "Check the base URL and that the server is running.")
        super().__init__(message, **kwargs)


class APITimeoutError(APIConnectionError):
    """The server went silent for longer than the read timeout (or never connected)."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("hint", "Raise the client's timeout, or check the server.")
        super().__init__(message, **kwargs)


class APIResponseValidationError(APIError):
    """The server sent something that is not the protocol (bad JSON in a body or event)."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault(
            "hint", "The server does not speak the API (/v1/complete or /v1/messages) correctly."
        )
        super().__init__(message, **kwargs)


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n >= 1024 * 1024 else f"{n} bytes"


class ResponseTooLargeError(APIResponseValidationError):
    """The server sent more than a documented limit allows (`_constants.MAX_*_BYTES`).

    ``what`` names the thing that was too large ("response body", "event stream line", ...),
    ``limit`` is the limit in bytes (after decompression). Reading stops at the limit, so a
    small compressed body that inflates to gigabytes costs at most ``limit`` bytes.
    """

    def __init__(self, what: str, limit: int, setting: str, **kwargs: Any) -> None:
        self.what = what
        self.limit = limit
        #: The name of the limit in `jupyter_complete._constants`.
        self.setting = setting
        kwargs.setdefault(
            "hint", "No real answer is that large: check the base URL and any proxy in between."
        )
        super().__init__(
            f"The server sent {'an' if what[:1] in 'aeiou' else 'a'} {what} larger than the "
            f"{_size(limit)} limit "
            f"(jupyter_complete._constants.{setting})",
            **kwargs,
        )


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: RequestTooLargeError,
    429: RateLimitError,
    529: OverloadedError,
}

_BY_TYPE: dict[str, tuple[type[APIStatusError], int]] = {
    "invalid_request_error": (BadRequestError, 400),
    "authentication_error": (AuthenticationError, 401),
    "permission_error": (PermissionDeniedError, 403),
    "not_found_error": (NotFoundError, 404),
    "request_too_large": (RequestTooLargeError, 413),
    "rate_limit_error": (RateLimitError, 429),
    "api_error": (InternalServerError, 500),
    "timeout_error": (InternalServerError, 504),
    "overloaded_error": (OverloadedError, 529),
}


def class_for_status(status: int) -> type[APIStatusError]:
    """The error class the SDK uses for an HTTP status."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return InternalServerError
    return APIStatusError


def class_for_type(error_type: str | None) -> tuple[type[APIStatusError], int]:
    """The error class and its usual status for an ``error.type`` (mid-stream errors)."""
    return _BY_TYPE.get(error_type or "", (APIStatusError, 500))


__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "CompleteError",
    "InternalServerError",
    "InvalidParameterError",
    "LocalModelUnavailableError",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTooLargeError",
    "ResponseTooLargeError",
    "class_for_status",
    "class_for_type",
]
