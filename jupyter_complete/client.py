"""`Client`: talks to a `/v1/complete` endpoint (Anthropic, a gateway, or the built-in model).

Endpoint resolution, in order: the ``base_url`` argument, ``ANTHROPIC_BASE_URL``, the Anthropic
API when a key is given (argument or ``ANTHROPIC_API_KEY``), else the built-in local server,
started in-process on first use.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import sys
import time
import urllib.parse
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

import requests

from . import _constants as C
from . import _retries, wire
from ._completions import Api, Completions
from ._http_errors import (
    connection_error,
    json_object,
    path_not_found,
    redirect_error,
    refuses_completions,
    status_error,
)
from ._responses import check_encoding, excerpt, read_whole, server_name
from ._secrets import KeyAuth, Secret, safe_url, split_userinfo
from ._version import __version__
from .completion import Completion
from .errors import (
    APIResponseValidationError,
    BadRequestError,
    InvalidParameterError,
    NotFoundError,
)
from .streaming import CompletionStream

if TYPE_CHECKING:
    from ._models import Models

log = logging.getLogger(__name__)
if os.environ.get(C.ENV_LOG, "").lower() in ("debug", "info"):
    logging.basicConfig()
    logging.getLogger("jupyter_complete").setLevel(os.environ[C.ENV_LOG].upper())

#: The ``user-agent`` header: this package and its version.
USER_AGENT = f"jupyter_complete/{__version__} (python)"


class _NoRedirectSession(requests.Session):
    """A session that never works out where a redirect leads.

    Even with ``allow_redirects=False`` requests parses a 3xx's ``Location`` to prepare
    ``Response.next``, and a malformed one (``http://[::1``) raises ValueError out of
    ``post``. Redirects are never followed here, so there is nothing to prepare;
    `redirect_error` reads the header itself.
    """

    def get_redirect_target(self, resp: requests.Response) -> None:  # noqa: ARG002
        return None


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

    The wire rules: redirects are never followed (a 3xx raises `APIStatusError`
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
        self._key: Secret | None = Secret(key) if key else None
        url = base_url or os.environ.get(C.ENV_BASE_URL) or None
        if url is None and self._key is not None:
            url = C.DEFAULT_BASE_URL
        # User info in the URL (http://user:pass@host) is sent as Basic auth and kept out of
        # the URL itself, so no message or repr can show it.
        self._basic: tuple[Secret, Secret] | None = None
        if url is not None:
            _check_base_url(url)
            url, self._basic = split_userinfo(url)
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
            # The one place the client reaches into the server package: with no key and no
            # base URL, Client() promises the built-in model, so it starts the embedded
            # server. Lazily, so llama_cpp loads only then; nothing else here imports local.
            from .local.embedded import ensure_started

            url, key = ensure_started()
            self._base_url, self._key = url, Secret(key)
        return self._base_url

    @property
    def default_model(self) -> str:
        """The model used when a request names none."""
        return C.LOCAL_MODEL_NAME if self._local else C.DEFAULT_REMOTE_MODEL

    @cached_property
    def completions(self) -> Completions:
        """``client.completions.create(...)``."""
        return Completions(self._complete, lambda: self.default_model)

    @property
    def display_url(self) -> str:
        """The base URL without user info, query or fragment: what messages and reprs show."""
        return safe_url(self._base_url) if self._base_url else "built-in local model"

    @cached_property
    def models(self) -> Models:
        """``client.models.list()``: the endpoint's models (``GET /v1/models``)."""
        from ._models import Models  # small; imported when first listed

        return Models(self._get, safe_url(self._url(wire.MODELS_PATH)))

    def _get(self, path: str, params: dict[str, Any]) -> requests.Response:
        """``GET path?params`` with this client's headers, key and timeouts.

        Streamed and never redirected (the key stays with the host the user named).
        """
        return self._get_session().get(
            self._url(path),
            params=params,
            headers=self._headers({}),
            auth=self._auth(),
            stream=True,
            timeout=(self.connect_timeout, self.timeout),
            allow_redirects=False,
        )

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

    def _auth(self) -> KeyAuth | None:
        """What puts the key (and the URL's user info) on a request; None: nothing to put."""
        if self._key is None and self._basic is None:
            return None
        return KeyAuth(self._key, self._basic)

    def _headers(self, extra: dict[str, str]) -> dict[str, str]:
        return {
            "anthropic-version": wire.API_VERSION,
            "content-type": "application/json",
            "accept": "application/json",
            # Said explicitly, so the codings asked for never depend on which optional
            # decoders (brotli, zstandard) happen to be installed; both are decoded by zlib.
            "accept-encoding": C.ACCEPT_ENCODING,
            "user-agent": USER_AGENT,
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
            return self._via("messages", body, headers, stream, timeout)
        try:
            return self._via("complete", body, headers, stream, timeout)
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
            return self._via("messages", body, headers, stream, timeout)

    def _via(
        self,
        api: Api,
        body: dict[str, Any],
        headers: dict[str, str],
        stream: bool,
        timeout: float | None,
    ) -> Completion | CompletionStream:
        """Send ``body`` by one transport (``api``: ``"complete"`` or ``"messages"``)."""
        started = time.monotonic()
        params = {k: v for k, v in body.items() if k not in ("prompt", "stream")}
        params["api"] = api
        stream_type: type[CompletionStream] = CompletionStream
        read: Callable[[dict[str, Any], str | None], Completion | None]
        path, sent, read, shape = wire.COMPLETE_PATH, body, Completion.from_body, "a completion"
        if api == "messages":
            from . import messages  # small; imported only when this transport is used

            path, sent = wire.MESSAGES_PATH, messages.to_messages_body(body)
            stream_type, read = messages.MessagesStream, messages.message_of
            shape = "a message content list"
        response = self._send(path, sent, headers, stream=stream, timeout=timeout)
        if stream:
            return stream_type(response, started=started, params=params)
        data = json_object(response)
        result = read(data, response.headers.get("request-id"))
        if result is None:
            raise APIResponseValidationError(
                f"{server_name(response)} answered 200 without {shape} "
                f"({excerpt(response.content)!r})",
                request_id=response.headers.get("request-id"),
            )
        result.elapsed = time.monotonic() - started
        result.params = params
        return result

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
        auth = self._auth()
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
                    check_encoding(response)
                    if not stream:
                        # Read inside the attempt: it may time out (then it is retried).
                        # requests has no public way to give a Response a body read
                        # elsewhere (here bounded): set what `.content` returns.
                        response._content = read_whole(response)  # noqa: SLF001
                        setattr(response, "_content_consumed", True)  # noqa: B010 - private
            except requests.RequestException as err:
                if last:
                    raise connection_error(err, shown) from err
                self._sleep(self._retry_delay(None, attempt))
                continue
            if response.status_code < 300:
                return response
            if response.status_code < 400:
                error = redirect_error(response, path)
                response.close()
                raise error
            error = status_error(response, path=path, model=str(body.get("model") or ""))
            if not last and _retries.should_retry(response):
                response.close()
                self._sleep(self._retry_delay(response.headers, attempt))
                continue
            response.close()
            raise error
        raise AssertionError("unreachable")  # pragma: no cover

    def _retry_delay(self, headers: Any, attempt: int) -> float:
        """Seconds to wait before retry ``attempt + 1`` (`_retries.retry_delay`)."""
        return _retries.retry_delay(headers, attempt)

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
        other: Client = copy.copy(self)
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


__all__ = ["Api", "Client", "Completions"]
