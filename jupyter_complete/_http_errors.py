"""Error responses -> typed errors: what the server that answered actually said.

The client's rules for a status >= 300 (and an error envelope at 2xx): redirects are
reported, never followed; a hint claims only what the response shows (the
hint for an API error type only when the body is an API error envelope with that type,
else the answering server is named and quoted); a 404 about the path (no such endpoint)
is told apart from one about the model; at most `_constants.MAX_ERROR_BODY_BYTES` of an
error body is read. A request that got no response at all (refused, reset, timed out)
becomes `APIConnectionError` / `APITimeoutError` (`connection_error`).
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import requests

from . import _constants as C
from . import wire
from ._responses import READ_SIZE, error_envelope, excerpt, server_name
from ._secrets import safe_url, without_frames
from .errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    class_for_status,
    class_for_type,
)


def refuses_completions(err: APIStatusError) -> bool:
    """Does this 400/404 say the model or endpoint does not do Text Completions?

    The API's refusal names the other API ("... is not supported on this API. Please use the
    Messages API instead."); gateways say "completions". A bad prompt or parameter does not.
    """
    text = err.message.lower()
    return (
        "complet" in text
        or "messages api" in text
        or ("not supported" in text and ("model" in text or "api" in text))
    )


def _read_error_body(response: requests.Response) -> str:
    """At most MAX_ERROR_BODY_BYTES of an error response's body, as text (never raises)."""
    got = b""
    try:
        while len(got) < C.MAX_ERROR_BODY_BYTES:
            data = response.raw.read1(READ_SIZE, decode_content=True)
            if not data:
                break
            got += data
    except Exception:  # a broken or undecodable error body: show what came
        pass
    # utf-8-sig drops a leading byte-order mark, as json.loads does for bytes (RFC 8259, 8.1
    # lets a parser ignore one); json.loads of a str would reject it, hiding the envelope.
    return got[: C.MAX_ERROR_BODY_BYTES].decode("utf-8-sig", "replace")


def json_object(response: requests.Response) -> dict[str, Any]:
    """The JSON object of a successful (already read) response.

    Raises `APIResponseValidationError` when the body is not a JSON object, and the typed
    `APIStatusError` (`status_error`) when it is an error envelope: an error is an error
    whatever the status (some gateways answer 200).
    """
    rid = response.headers.get("request-id")
    try:
        data = json.loads(response.content)
    except ValueError as err:
        raise APIResponseValidationError(
            f"The answer of {server_name(response)} is not JSON ({excerpt(response.content)!r})",
            request_id=rid,
        ) from err
    if not isinstance(data, dict):
        raise APIResponseValidationError(
            f"The answer of {server_name(response)} is not a JSON object", request_id=rid
        )
    if error_envelope(data) is not None:
        raise status_error(response, body=data)
    return data


def redirect_error(response: requests.Response, path: str) -> APIStatusError:
    """The error for a 3xx: where the server pointed, never followed."""
    status = response.status_code
    location = response.headers.get("location", "")
    try:
        # The server's words: a port out of range or a broken IPv6 literal is a ValueError.
        shown = safe_url(urllib.parse.urljoin(response.url, location)) if location else ""
    except ValueError:
        shown = ""
    suggestion = ""
    if shown.endswith(path):
        suggestion = (
            f" If that server is right, use {shown[: -len(path)] or shown} as the base URL."
        )
    if not shown:
        shown = "a location that is not a valid URL" if location else "no location"
    return APIStatusError(
        f"HTTP {status} from {server_name(response)}: it redirects to {shown}",
        status_code=status,
        body=None,
        request_id=response.headers.get("request-id"),
        headers=dict(response.headers),
        hint="Redirects are not followed, so the key and the prompt went nowhere else."
        + suggestion,
    )


def status_error(
    response: requests.Response, *, path: str = "", model: str = "", body: object = None
) -> APIStatusError:
    """The typed error for an error response (or a 200 error envelope), with what it said.

    The class follows the HTTP status (as the SDK's do). The hint claims only what the
    response shows: the hint for an API error type when the body is an API error envelope
    with such a type; otherwise the message names the server that answered and quotes it.
    """
    status = response.status_code
    rid = response.headers.get("request-id")
    server = server_name(response)
    if body is None:
        text = _read_error_body(response)
        body = text
        try:
            body = json.loads(text)
        except ValueError:
            pass
    else:
        text = json.dumps(body)
    err = error_envelope(body)
    etype: str | None = None
    message = ""
    if isinstance(body, dict) and isinstance(body.get("request_id"), str):
        rid = rid or body["request_id"]
    if err is not None:
        etype = err.get("type") if isinstance(err.get("type"), str) else None
        message = str(err.get("message") or "")
    known_type = etype in wire.ERROR_TYPES
    if status < 400:
        # An error envelope in a successful response: its type says what it is.
        cls, _ = class_for_type(etype)
        status_shown = f"HTTP {status} carrying an error"
    else:
        cls = class_for_status(status)
        status_shown = f"HTTP {status}"
    if known_type and message:
        label = f"{status} {etype}" if status >= 400 else f"{status_shown} ({etype})"
        hint = class_for_type(etype)[0].default_hint
        text_out = f"{label}: {message}"
    else:
        said = message or excerpt(text) or response.reason or "no details"
        kind = f" ({etype})" if etype else ""
        text_out = f"{status_shown}{kind} from {server}: {said}"
        if status in _STATUS_SAYS_IT:
            hint = cls.default_hint  # what HTTP itself says (too large, too many, failed)
        else:
            hint = (
                f"This is {server}'s own answer, not an Anthropic API error: check the "
                "key, the base URL and any proxy in between against what it says."
            )
    if status == 404 and path and _path_not_found_body(message or excerpt(text), model):
        hint = _missing_path_hint(server, path)
    error_status = status if status >= 400 else class_for_type(etype)[1]
    return cls(
        text_out,
        status_code=error_status,
        type=etype,
        body=body,
        request_id=rid,
        headers=dict(response.headers),
        hint=hint,
    )


#: Statuses whose meaning HTTP itself fixes, whoever sends them (RFC 9110, RFC 6585): their
#: hint holds for a proxy's page too. 400, 401, 403 and 404 from a proxy are about the proxy.
_STATUS_SAYS_IT = frozenset({408, 413, 429, 500, 502, 503, 504, 529})


def _path_not_found_body(message: str, model: str) -> bool:
    """Is a 404 about the path (no such endpoint) rather than about the model?

    Anthropic's API names the model ("model: claude-x"); servers without the endpoint say
    "Not Found" / "File Not Found" (FastAPI: vLLM, LiteLLM, llama-cpp-python; llama.cpp's
    llama-server) and never mention a model.
    """
    text = message.lower()
    return "model" not in text and not (model and model.lower() in text)


def path_not_found(err: APIStatusError, model: str) -> bool:
    """Is ``err`` a 404 about the path (the server has no such endpoint), not the model?"""
    if err.status_code != 404:
        return False
    message = err.message.split(": ", 1)[-1]
    return _path_not_found_body(message, model)


def _missing_path_hint(server: str, path: str) -> str:
    if path == wire.COMPLETE_PATH:
        return (
            f"{server} has no {path} (the 404 is about the path, not the model): if it "
            'speaks the Messages API, use --api messages (Client(api="messages")), or '
            "--api auto; else check the base URL's path."
        )
    return (
        f"{server} has no {path} (the 404 is about the path, not the model): check the "
        "base URL's path, or use --api complete if it speaks Text Completions."
    )


def connection_error(err: requests.RequestException, shown: str) -> APIConnectionError:
    """The error for a request that got no usable response.

    `APITimeoutError` for a timeout, else `APIConnectionError` naming the reason (``shown``:
    the URL, redacted).

    Drops the frames of ``err`` (`_secrets.without_frames`: their locals hold the request
    headers, the API key among them), so that it can be the cause: ``raise
    connection_error(err, shown) from err``.
    """
    if isinstance(err, requests.Timeout):
        error: APIConnectionError = APITimeoutError(f"No answer from {shown} within the timeout")
    else:
        error = APIConnectionError(f"Could not connect to {shown} ({_reason(err)})")
    without_frames(err)
    return error


def _reason(err: BaseException) -> str:
    # requests nests the useful part (e.g. "Connection refused") several levels down.
    text = str(err)
    for needle in (
        "Connection refused",
        "Connection reset",
        "Name or service not known",
        "Remote end closed connection",
        "timed out",
    ):
        if needle in text:
            return needle
    return type(err).__name__
