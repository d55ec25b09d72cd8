"""`Client`: talks to a `/v1/complete` endpoint (Anthropic, a gateway, or the built-in model).

Endpoint resolution, in order: the ``base_url`` argument, ``ANTHROPIC_BASE_URL``, the Anthropic
API when a key is given (argument or ``ANTHROPIC_API_KEY``), else the built-in local server,
started in-process on first use.
"""

from __future__ import annotations

import copy
import email.utils
import json
import logging
import os
import random
import re
import sys
import time
import urllib.parse
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, overload

import requests
import urllib3.exceptions
from urllib3.response import HTTPResponse

from . import _constants as C
from ._http_errors import path_not_found, redirect_error, refuses_completions, status_error
from .completion import Completion
from .errors import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    BadRequestError,
    InvalidParameterError,
    NotFoundError,
)
from .render import safe_url
from .settings import check_params
from .streaming import CompletionStream, error_envelope, excerpt, read_body, server_name

if TYPE_CHECKING:
    from ._models import Models

log = logging.getLogger("jupyter_complete")
if os.environ.get(C.ENV_LOG, "").lower() in ("debug", "info"):
    logging.basicConfig()
    log.setLevel(os.environ[C.ENV_LOG].upper())

Api = Literal["complete", "messages", "auto"]
_RETRY_STATUSES = {408, 409, 429}
_SPEC_FIELDS = (
    "model",
    "prompt",
    "max_tokens_to_sample",
    "stop_sequences",
    "temperature",
    "top_k",
    "top_p",
    "metadata",
    "stream",
)


class _Secret:
    """Holds the API key so that no repr, log line or traceback local can show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<hidden>"

    __str__ = __repr__


class _KeyAuth(requests.auth.AuthBase):
    """Adds ``x-api-key`` (and Basic auth from the base URL's user info) at the last moment,
    so request-building code never holds the secrets."""

    def __init__(self, secret: _Secret | None, basic: tuple[_Secret, _Secret] | None) -> None:
        self._secret = secret
        self._basic = basic

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if self._secret is not None:
            r.headers["x-api-key"] = self._secret.reveal()
        if self._basic is not None:
            user, password = (part.reveal() for part in self._basic)
            r = requests.auth.HTTPBasicAuth(user, password)(r)
        return r

    def __repr__(self) -> str:
        return "<api key>"


class _NoRedirectSession(requests.Session):
    """A session that never works out where a redirect leads.

    Even with ``allow_redirects=False`` requests parses a 3xx's ``Location`` to prepare
    ``Response.next``, and a malformed one (``http://[::1``) raises ValueError out of
    ``post``. Redirects are never followed here, so there is nothing to prepare;
    `redirect_error` reads the header itself.
    """

    def get_redirect_target(self, resp: requests.Response) -> None:  # noqa: ARG002
        return None


class Completions:
    """``client.completions``: the ``create`` call, shaped like the official SDK's."""

    def __init__(self, client: Client) -> None:
        self._client = client

    @overload
    def create(
        self,
        *,
        prompt: str,
        model: str | None = None,
        max_tokens_to_sample: int = 256,
        stop_sequences: list[str] | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        metadata: dict[str, Any] | None = None,
        betas: list[str] | None = None,
        stream: Literal[False] = False,
        timeout: float | None = None,
        api: Api | None = None,
    ) -> Completion: ...

    @overload
    def create(
        self,
        *,
        prompt: str,
        model: str | None = None,
        max_tokens_to_sample: int = 256,
        stop_sequences: list[str] | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        metadata: dict[str, Any] | None = None,
        betas: list[str] | None = None,
        stream: Literal[True],
        timeout: float | None = None,
        api: Api | None = None,
    ) -> CompletionStream: ...

    def create(
        self,
        *,
        prompt: str,
        model: str | None = None,
        max_tokens_to_sample: int = 256,
        stop_sequences: list[str] | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        metadata: dict[str, Any] | None = None,
        betas: list[str] | None = None,
        stream: bool = False,
        timeout: float | None = None,
        api: Api | None = None,
    ) -> Completion | CompletionStream:
        """Send a completion request; a `Completion`, or a `CompletionStream` if ``stream``.

        Parameters are checked against the spec's ranges before anything is sent; a bad one
        raises `~jupyter_complete.errors.InvalidParameterError`. Unset (None) values are left
        out of the body, so the server's defaults apply. ``api`` overrides the client's
        transport for this call (see `Client`).
        """
        body: dict[str, Any] = {
            "model": model or self._client.default_model,
            "prompt": prompt,
            "max_tokens_to_sample": max_tokens_to_sample,
            "stop_sequences": list(stop_sequences) if stop_sequences else None,
            "temperature": temperature,
            "top_k": top_k,
            "top_p": top_p,
            "metadata": metadata,
        }
        body = {k: v for k, v in body.items() if v is not None}
        check_params(body)
        if stream:
            body["stream"] = True
        headers = {"anthropic-beta": ",".join(betas)} if betas else {}
        return self._client._complete(
            body, headers=headers, stream=stream, timeout=timeout, api=api
        )


class Client:
    """A client for ``POST /v1/complete``.

    Args:
        api_key: the key sent as ``x-api-key``; default ``ANTHROPIC_API_KEY``.
        base_url: the server; default ``ANTHROPIC_BASE_URL``, else the Anthropic API when a
            key is set, else the built-in local server.
        timeout: read timeout in seconds: the longest silence allowed between bytes.
        connect_timeout: seconds allowed to open the connection.
        max_retries: retries for connection errors, timeouts, 408, 409, 429 and >= 500.
        default_headers: extra headers sent with every request.
        api: the transport. ``"complete"`` (default): ``POST /v1/complete``. ``"messages"``:
            the same request converted for ``POST /v1/messages`` (for models that refuse
            Text Completions). ``"auto"``: Text Completions, switching a model to Messages
            for the rest of the session when the server says it does not support them, and
            every model when the server has no ``/v1/complete`` at all (a 404 about the
            path, not the model: llama-server, vLLM, LiteLLM); each switch is said once on
            stderr.

    The wire rules (issue 13): redirects are never followed (a 3xx raises `APIStatusError`
    naming where it pointed); ``Accept-Encoding: gzip, deflate`` is sent and decoded, also
    while streaming; every read is bounded by `_constants.MAX_RESPONSE_BYTES`,
    ``MAX_EVENT_BYTES`` and ``MAX_ERROR_BODY_BYTES`` (`ResponseTooLargeError`); an error
    envelope is an error whatever the status; user info in ``base_url`` is sent as Basic
    auth and, like its query string, never shown (`display_url`).
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = C.DEFAULT_TIMEOUT,
        connect_timeout: float = C.DEFAULT_CONNECT_TIMEOUT,
        max_retries: int = C.DEFAULT_MAX_RETRIES,
        default_headers: dict[str, str] | None = None,
        api: Api = "complete",
    ) -> None:
        if api not in ("complete", "messages", "auto"):
            raise InvalidParameterError("api", api, 'one of "complete", "messages", "auto"')
        self.api: Api = api
        #: Models that refused Text Completions in ``auto`` mode; they go to Messages now.
        self.messages_models: set[str] = set()
        key = api_key if api_key is not None else os.environ.get(C.ENV_API_KEY)
        self._key: _Secret | None = _Secret(key) if key else None
        url = base_url or os.environ.get(C.ENV_BASE_URL) or None
        if url is None and self._key is not None:
            url = C.DEFAULT_BASE_URL
        # User info in the URL (http://user:pass@host) is sent as Basic auth and kept out of
        # the URL itself, so no message or repr can show it.
        self._basic: tuple[_Secret, _Secret] | None = None
        if url is not None:
            _check_base_url(url)
            url, self._basic = _split_userinfo(url)
        self._base_url: str | None = url
        #: True once the server said (a 404 for the path) it has no /v1/complete; ``auto``
        #: then sends every request to /v1/messages.
        self.complete_missing = False
        self._local = self._base_url is None
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.max_retries = int(max_retries)
        self.default_headers = dict(default_headers or {})
        self._session: requests.Session | None = None

    # -- endpoint ----------------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        """True when this client talks to the built-in local model."""
        return self._local

    @property
    def base_url(self) -> str:
        """The server's base URL (starts the built-in server if that is the endpoint)."""
        if self._base_url is None:
            from .local.embedded import ensure_started  # lazy: llama_cpp only when needed

            url, key = ensure_started()
            self._base_url, self._key = url, _Secret(key)
        return self._base_url

    @property
    def default_model(self) -> str:
        """The model used when a request names none."""
        return C.LOCAL_MODEL_NAME if self._local else C.DEFAULT_REMOTE_MODEL

    @cached_property
    def completions(self) -> Completions:
        """``client.completions.create(...)``."""
        return Completions(self)

    @property
    def display_url(self) -> str:
        """The base URL without user info, query or fragment: what messages and reprs show."""
        return safe_url(self._base_url) if self._base_url else "built-in local model"

    @cached_property
    def models(self) -> Models:
        """``client.models.list()``: the endpoint's models (``GET /v1/models``)."""
        from ._models import Models  # small; imported when first listed

        return Models(self)

    def _url(self, path: str) -> str:
        # Keep a path prefix in the base URL (a gateway's /proxy/anthropic), as the SDK does;
        # the path goes after the base path, and any query string (a gateway token) after it.
        parts = urllib.parse.urlsplit(self.base_url)
        return urllib.parse.urlunsplit(
            (parts.scheme, parts.netloc, parts.path.rstrip("/") + path, parts.query, "")
        )

    def _get_session(self) -> requests.Session:
        if self._session is None:
            s = _NoRedirectSession()
            s.trust_env = False if self._local else s.trust_env  # never proxy loopback
            self._session = s
        return self._session

    def _headers(self, extra: dict[str, str]) -> dict[str, str]:
        return {
            "anthropic-version": C.ANTHROPIC_VERSION,
            "content-type": "application/json",
            "accept": "application/json",
            # Said explicitly, so the codings asked for never depend on which optional
            # decoders (brotli, zstandard) happen to be installed; both are decoded by zlib.
            "accept-encoding": C.ACCEPT_ENCODING,
            "user-agent": "jupyter_complete/0.1 (python)",
            **self.default_headers,
            **extra,
        }

    # -- requests ----------------------------------------------------------------------
    def _complete(
        self,
        body: dict[str, Any],
        *,
        headers: dict[str, str],
        stream: bool,
        timeout: float | None,
        api: Api | None = None,
    ) -> Completion | CompletionStream:
        api = api or self.api
        if api == "messages" or (
            api == "auto" and (self.complete_missing or body["model"] in self.messages_models)
        ):
            return self._via_messages(body, headers, stream, timeout)
        try:
            return self._via_complete(body, headers, stream, timeout)
        except (BadRequestError, NotFoundError) as err:
            if api != "auto":
                raise
            if path_not_found(err, body["model"]):
                self.complete_missing = True
                sys.stderr.write(
                    f"jupyter_complete: {self.display_url} has no Text Completions endpoint "
                    f"(404 for /v1/complete); using its Messages API (/v1/messages) from now "
                    "on.\n"
                )
            elif refuses_completions(err):
                self.messages_models.add(body["model"])
                sys.stderr.write(
                    f"jupyter_complete: {body['model']} does not support Text Completions; "
                    "using the Messages API for it from now on.\n"
                )
            else:
                raise
            return self._via_messages(body, headers, stream, timeout)

    def _via_complete(
        self,
        body: dict[str, Any],
        headers: dict[str, str],
        stream: bool,
        timeout: float | None,
    ) -> Completion | CompletionStream:
        started = time.monotonic()
        params = {k: v for k, v in body.items() if k not in ("prompt", "stream")}
        params["api"] = "complete"
        response = self._send("/v1/complete", body, headers, stream=stream, timeout=timeout)
        if stream:
            return CompletionStream(response, started=started, params=params)
        data = self._json_object(response)
        if not isinstance(data.get("completion"), str):
            raise APIResponseValidationError(
                f"{server_name(response)} answered 200 without a completion "
                f"({excerpt(response.content)!r})",
                request_id=response.headers.get("request-id"),
            )
        result = Completion.from_wire(data, request_id=response.headers.get("request-id"))
        if isinstance(data.get("usage"), dict):  # reported by some servers; not in the spec
            result.usage = {k: v for k, v in data["usage"].items() if isinstance(v, int)}
        result.elapsed = time.monotonic() - started
        result.params = params
        return result

    def _via_messages(
        self,
        body: dict[str, Any],
        headers: dict[str, str],
        stream: bool,
        timeout: float | None,
    ) -> Completion | CompletionStream:
        from . import messages  # small; imported only when this transport is used

        started = time.monotonic()
        params = {k: v for k, v in body.items() if k not in ("prompt", "stream")}
        params["api"] = "messages"
        mbody = messages.to_messages_body(body)
        response = self._send(
            messages.MESSAGES_PATH, mbody, headers, stream=stream, timeout=timeout
        )
        if stream:
            return messages.MessagesStream(response, started=started, params=params)
        data = self._json_object(response)
        if not isinstance(data.get("content"), list):
            raise APIResponseValidationError(
                f"{server_name(response)} answered 200 without a message content list "
                f"({excerpt(response.content)!r})",
                request_id=response.headers.get("request-id"),
            )
        result = messages.from_messages_body(data, response.headers.get("request-id"))
        result.elapsed = time.monotonic() - started
        result.params = params
        return result

    def _json_object(self, response: requests.Response) -> dict[str, Any]:
        """The JSON object of a successful response; an error envelope raises its error."""
        rid = response.headers.get("request-id")
        try:
            data = json.loads(response.content)
        except ValueError as err:
            raise APIResponseValidationError(
                f"The answer of {server_name(response)} is not JSON "
                f"({excerpt(response.content)!r})",
                request_id=rid,
            ) from err
        if not isinstance(data, dict):
            raise APIResponseValidationError(
                f"The answer of {server_name(response)} is not a JSON object", request_id=rid
            )
        if error_envelope(data) is not None:
            # An error is an error whatever the status (some gateways answer 200).
            raise status_error(response, body=data)
        return data

    def _send(
        self,
        path: str,
        body: dict[str, Any],
        headers: dict[str, str],
        *,
        stream: bool,
        timeout: float | None,
    ) -> requests.Response:
        """POST with retries. Only the initial response is retried, never a started stream.

        Redirects are not followed: the key and the prompt go only to the host the user
        named; a 3xx raises `APIStatusError` saying where the server pointed. A non-streamed
        body is read here, decoded and bounded by `_constants.MAX_RESPONSE_BYTES`.
        """
        url = self._url(path)
        shown = safe_url(url)  # for messages: the base URL's user info or query may be secret
        session = self._get_session()
        data = json.dumps(body).encode()
        read_timeout = self.timeout if timeout is None else timeout
        auth = (
            _KeyAuth(self._key, self._basic)
            if self._key is not None or self._basic is not None
            else None
        )
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            log.debug("POST %s attempt %d", shown, attempt + 1)
            try:
                response = session.post(
                    url,
                    data=data,
                    headers=self._headers(headers),
                    auth=auth,
                    stream=True,
                    timeout=(self.connect_timeout, read_timeout),
                    allow_redirects=False,
                )
                if response.status_code < 300:
                    _check_encoding(response)
                    if not stream:
                        # Read inside the attempt: it may time out (then it is retried).
                        response._content = _read_whole(response)
                        setattr(response, "_content_consumed", True)  # noqa: B010 - private
            except requests.Timeout as err:
                if last:
                    raise APITimeoutError(
                        f"No answer from {shown} within the timeout"
                    ) from _without_frames(err)
                self._sleep(self._retry_delay(None, attempt))
                continue
            except requests.RequestException as err:
                if last:
                    raise APIConnectionError(
                        f"Could not connect to {shown} ({_reason(err)})"
                    ) from _without_frames(err)
                self._sleep(self._retry_delay(None, attempt))
                continue
            if response.status_code < 300:
                return response
            if response.status_code < 400:
                error = redirect_error(response, path)
                response.close()
                raise error
            error = status_error(response, path=path, model=str(body.get("model") or ""))
            if not last and _should_retry(response):
                response.close()
                self._sleep(self._retry_delay(response.headers, attempt))
                continue
            response.close()
            raise error
        raise AssertionError("unreachable")  # pragma: no cover

    def _retry_delay(self, headers: Any, attempt: int) -> float:
        """Seconds to wait before retry ``attempt + 1``: the server's word if sane, else backoff."""
        after = _retry_after(headers) if headers is not None else None
        if after is not None and 0 < after <= C.MAX_RETRY_AFTER:
            return after
        backoff: float = min(C.INITIAL_RETRY_DELAY * 2**attempt, C.MAX_RETRY_DELAY)
        return backoff * (1 - 0.25 * random.random())

    def _sleep(self, seconds: float) -> None:
        # A method so tests can make retries instant.
        time.sleep(seconds)

    # -- lifetime ----------------------------------------------------------------------
    def copy(self) -> Client:
        """A client for the same endpoint, key and options, with its own connection pool.

        A `requests.Session` is not documented as safe to share between threads, so code
        that sends requests from several threads at once (`jupyter_complete.spread`) gives
        each thread its own copy. The copy shares `messages_models` (what ``api="auto"``
        learned) with this client; closing one does not close the other.
        """
        other = copy.copy(self)
        other.__dict__.pop("completions", None)  # the cached accessor is bound to self
        other.default_headers = dict(self.default_headers)
        other._session = None
        return other

    def close(self) -> None:
        """Close pooled connections."""
        if self._session is not None:
            for adapter in self._session.adapters.values():
                if isinstance(adapter, requests.adapters.HTTPAdapter):
                    # urllib3 2 closes a pool's idle connections only once the pool is
                    # garbage, and a kept error or stream (its response refers to the pool)
                    # keeps it alive: close the pools explicitly.
                    pools = adapter.poolmanager.pools
                    for key in list(pools.keys()):
                        pools[key].close()
            self._session.close()
            self._session = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.display_url if self._base_url else "built-in local model (not started)"
        key = "set" if self._key is not None else "none"
        return (
            f"Client(base_url={where!r}, api_key={key}, api={self.api!r}, timeout={self.timeout:g})"
        )


def _should_retry(response: requests.Response) -> bool:
    hint = response.headers.get("x-should-retry", "").lower()
    if hint == "true":
        return True
    if hint == "false":
        return False
    return response.status_code in _RETRY_STATUSES or response.status_code >= 500


def _retry_after(headers: Any) -> float | None:
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()


def _check_base_url(url: str) -> None:
    """Raise `InvalidParameterError` when the host or port of ``url`` does not parse.

    Checked once, here, so that no later step (requests, our messages) meets it as a bare
    ValueError. The error shows the host part as typed, never user info or a query.
    """
    try:
        urllib.parse.urlsplit(url).port  # noqa: B018 - parsing it is the check
    except ValueError as err:
        host = url.partition("//")[2] or url
        host = re.split(r"[/?#]", host, maxsplit=1)[0].rpartition("@")[2]
        raise InvalidParameterError(
            "base_url",
            host,
            f"a URL whose host part is host or host:port, with a port in 0-65535 ({err})",
        ) from None


def _split_userinfo(url: str) -> tuple[str, tuple[_Secret, _Secret] | None]:
    """``url`` without its user info, and that user info (for Basic auth), if any."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    bare = urllib.parse.urlunsplit(
        (parts.scheme, hostport, parts.path, parts.query, parts.fragment)
    )
    return bare, (_Secret(urllib.parse.unquote(user)), _Secret(urllib.parse.unquote(password)))


def _decodable_codings() -> set[str]:
    # What urllib3 can decode here: gzip, x-gzip and deflate always; br / zstd when the
    # optional packages are installed (we do not ask for those, but take them if sent).
    return {c.lower() for c in HTTPResponse.CONTENT_DECODERS} | {"identity"}


def _check_encoding(response: requests.Response) -> None:
    """Raise unless every ``content-encoding`` of ``response`` can be decoded."""
    header = response.headers.get("content-encoding", "")
    codings = [c.strip().lower() for c in header.split(",") if c.strip()]
    unknown = [c for c in codings if c not in _decodable_codings()]
    if unknown:
        response.close()
        raise APIResponseValidationError(
            f"{server_name(response)} sent content-encoding {header!r}, which this client "
            f"did not ask for and cannot decode (it asks for {C.ACCEPT_ENCODING})",
            request_id=response.headers.get("request-id"),
            hint="Check the base URL and any proxy in between.",
        )
    if "identity" in codings and len(codings) > 1:
        # "identity" means no coding, but urllib3 decodes it inside a list as deflate. Its
        # decoder is set up at the first read, from the raw response's headers: drop it.
        response.raw.headers["content-encoding"] = ", ".join(c for c in codings if c != "identity")


def _read_whole(response: requests.Response) -> bytes:
    """The decoded body, bounded by MAX_RESPONSE_BYTES; read errors as requests' types."""
    try:
        return read_body(response, C.MAX_RESPONSE_BYTES, "MAX_RESPONSE_BYTES")
    except urllib3.exceptions.ReadTimeoutError as err:
        raise requests.exceptions.ReadTimeout(str(err)) from err
    except urllib3.exceptions.DecodeError as err:
        response.close()
        raise APIResponseValidationError(
            f"The {response.headers.get('content-encoding')} body of {server_name(response)} "
            "is corrupt",
            request_id=response.headers.get("request-id"),
        ) from err
    except (urllib3.exceptions.HTTPError, OSError) as err:
        raise requests.exceptions.ChunkedEncodingError(type(err).__name__) from err


def _without_frames(err: BaseException) -> BaseException:
    """``err`` with its traceback, and those of the exceptions it chains, dropped.

    Frames inside requests and urllib3 hold the request headers, API key included, as
    locals, and verbose tracebacks (IPython's ``%xmode Verbose``) print locals. The chained
    exceptions' types and messages, which say what failed, are kept.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [err]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        e.__traceback__ = None
        try:
            # requests and urllib3 put the URL (query string included) in their messages.
            e.args = tuple(
                _redact(a)
                if isinstance(a, str)
                else _redact(str(a))
                if isinstance(a, BaseException)
                else a
                for a in e.args
            )
        except (TypeError, AttributeError):
            pass
        todo += [e.__cause__, e.__context__]
    return err


_QUERY_RE = re.compile(r"\?[^\s'\")]*")
_USERINFO_RE = re.compile(r"//[^/\s@'\"]*@")


def _redact(text: str) -> str:
    """``text`` with URL query strings and user info replaced by ``...``."""
    return _USERINFO_RE.sub("//...@", _QUERY_RE.sub("?...", text))


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


__all__ = ["Client", "Completions"]
