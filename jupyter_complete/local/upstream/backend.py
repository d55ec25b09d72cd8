"""`UpstreamBackend`: our ``/v1/complete`` and ``/v1/messages`` in front of a real serving engine.

``jupyter-complete serve --upstream URL`` keeps everything clients see (validation, key,
envelopes, SSE framing, pings, stop handling, ``stop_reason``) and takes the text from an
engine that batches many requests at once: llama.cpp's ``llama-server`` (``--parallel``
slots), vLLM, Ollama, llama-cpp-python's server, or LiteLLM's router in front of several.
Two engine protocols are spoken:

``openai`` (the default), ``POST {URL}/v1/chat/completions`` with ``stream: true``:
  - the conversation becomes chat messages: the text before the first Human turn is the
    ``system`` message, Human/Assistant turns are ``user``/``assistant`` messages, and a
    prefill is a final ``assistant`` message sent with ``continue_final_message: true`` and
    ``add_generation_prompt: false`` (the names llama-server and vLLM read), so the engine
    continues it through the model's own chat template;
  - sampling keeps the API's meaning: ``temperature`` (default 1; 0 is greedy), ``top_k``
    (0 = no cut), ``top_p`` (default 1), applied in that order (``samplers`` for
    llama-server), and the engine's own extra samplers are turned off: ``min_p: 0``,
    ``repeat_penalty: 1`` (llama.cpp's and llama-cpp-python's defaults are 0.05 and, for
    llama-cpp-python, 1.1); engines ignore the fields they do not know;
  - ``max_tokens`` is the request's;
  - stop sequences (the request's, and the built-in ``"\\n\\nHuman:"``) are matched here, on
    the engine's text, and the engine's request is closed the moment one appears (the
    engine frees its slot at once). The OpenAI protocol does not say which stop sequence
    ended a text (``finish_reason`` is ``"stop"`` for a stop string and for the model's end
    of turn alike), so leaving the matching to the engine would lose ``stop_reason``
    ``stop_sequence`` and the matched ``stop`` that our clients read.

``anthropic``, ``POST {URL}/v1/messages`` with ``stream: true`` (llama-server, vLLM,
LiteLLM, or another Messages API): the request goes as the Messages API spells it, with the
built-in ``"\\n\\nHuman:"`` added to ``stop_sequences``. The engine's extra samplers cannot be
set through this protocol: start llama-server with ``--min-p 0 --top-k 0 --samplers
"temperature;top_k;top_p"`` (see the README).

Either way, an engine that echoes the prefill at the start of its answer (llama-server's
``/v1/messages`` does; the real API does not) has the echo removed (`PrefillEcho`).

Concurrency passes through: there is no queue in front of the engine (it has its own);
at most ``max_outstanding`` requests are in flight, past which clients get 529
``overloaded_error``. The engine's error statuses map to the API's envelopes
(`rejection_for`). A job's `aclose` closes its engine response, which cancels the engine's
work on it.

The translation is in pure functions (`chat_messages`, `openai_body`, `anthropic_body`,
`openai_chunk`, `anthropic_event`, `rejection_for`) so it is tested without an engine.
httpx and httpx-sse (the ``local`` extra) are imported only when a backend is created.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, cast

from .._constants import HUMAN_PROMPT
from ..prompt import Conversation
from .api.backend import BackendError, Final, ModelCard
from .request import MessagesRequest, RequestRejected
from .stops import StopMatcher

if TYPE_CHECKING:
    from types import TracebackType

    import httpx

    from .request import GenerationRequest

UpstreamAPI = Literal["openai", "anthropic"]
UPSTREAM_APIS: tuple[UpstreamAPI, ...] = ("openai", "anthropic")

#: The order llama.cpp applies the API's samplers in: temperature first, so that top_p's
#: nucleus is taken from the distribution the temperature has shaped (the API's meaning,
#: and `jupyter_complete.sampling`'s order); llama.cpp's own default applies it last.
LLAMA_CPP_SAMPLERS = ("temperature", "top_k", "top_p")
#: The longest error body read from an engine (bytes); the rest is not read.
MAX_ERROR_BODY = 64 * 1024
#: The longest stretch of an engine's event stream without an event boundary (characters).
MAX_EVENT_CHARS = 1024 * 1024
#: The longest non-streamed answer read from an engine (``/v1/models``, token counts).
MAX_BODY = 4 * 1024 * 1024
#: Anthropic version sent to an ``anthropic`` engine.
ANTHROPIC_VERSION = "2023-06-01"


# -- translation: requests -------------------------------------------------------------------
def chat_messages(conversation: Conversation) -> list[dict[str, str]]:
    """OpenAI chat ``messages`` for a conversation: system, turns, then the prefill (if any)
    as a final ``assistant`` message for the engine to continue."""
    messages: list[dict[str, str]] = []
    if conversation.system:
        messages.append({"role": "system", "content": conversation.system})
    messages += [{"role": role, "content": text} for role, text in conversation.turns]
    if conversation.prefill:
        messages.append({"role": "assistant", "content": conversation.prefill})
    return messages


def openai_body(request: GenerationRequest, model: str, *, stream: bool = True) -> dict[str, Any]:
    """The ``/v1/chat/completions`` body for ``request`` (see the module docstring).

    ``temperature``, ``top_k`` and ``top_p`` are always sent, with the API's defaults (1, no
    cut, 1) when the request leaves them unset, because engines' own defaults differ
    (llama.cpp: 0.8, 40, 0.95).
    """
    body: dict[str, Any] = {
        "model": model,
        "messages": chat_messages(request.conversation),
        "max_tokens": request.max_tokens,
        "temperature": 1.0 if request.temperature is None else request.temperature,
        "top_k": 0 if request.top_k is None else request.top_k,
        "top_p": 1.0 if request.top_p is None else request.top_p,
        "min_p": 0.0,
        "repeat_penalty": 1.0,
        "samplers": list(LLAMA_CPP_SAMPLERS),
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    if request.conversation.prefill:
        body["continue_final_message"] = True
        body["add_generation_prompt"] = False
    user = (request.metadata or {}).get("user_id")
    if user:
        body["user"] = user
    return body


def anthropic_messages(conversation: Conversation) -> list[dict[str, str]]:
    """Messages API ``messages``: the turns, then the prefill as a final assistant message."""
    messages = [{"role": role, "content": text} for role, text in conversation.turns]
    if conversation.prefill:
        messages.append({"role": "assistant", "content": conversation.prefill})
    return messages


def anthropic_body(request: GenerationRequest, model: str) -> dict[str, Any]:
    """The ``/v1/messages`` body for ``request`` (see the module docstring)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": anthropic_messages(request.conversation),
        "max_tokens": request.max_tokens,
        "stop_sequences": _stops(request),
        "stream": True,
    }
    if request.conversation.system:
        body["system"] = request.conversation.system
    for name in ("temperature", "top_k", "top_p", "metadata"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    return body


def _stops(request: GenerationRequest) -> list[str]:
    """The request's stop sequences and the built-in ``"\\n\\nHuman:"``, once each."""
    return list(dict.fromkeys((*request.stop_sequences, HUMAN_PROMPT)))


# -- translation: responses ------------------------------------------------------------------
@dataclasses.dataclass
class Piece:
    """What one engine event says: text, an end, usage, or an error (all optional)."""

    text: str = ""
    #: The engine's reason the generation ended (``"stop"``, ``"length"``, ``"end_turn"``...).
    finish: str | None = None
    #: The stop sequence the engine says it matched, if it says.
    stop_sequence: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    #: An error the engine sent in the stream: (error type, message).
    error: tuple[str, str] | None = None


def openai_chunk(data: Mapping[str, Any]) -> Piece:
    """Read one ``chat.completion.chunk`` (or an ``{"error": ...}`` event)."""
    piece = Piece()
    error = data.get("error")
    if error is not None:
        piece.error = _error_fields(error, "api_error")
        return piece
    for choice in data.get("choices") or ():
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            continue
        delta = choice.get("delta") or {}
        content = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(content, str):
            piece.text += content
        finish = choice.get("finish_reason")
        if isinstance(finish, str):
            piece.finish = finish
            # vLLM names the stop string that matched (its `stop_reason` extension).
            named = choice.get("stop_reason")
            if isinstance(named, str):
                piece.stop_sequence = named
    usage = data.get("usage")
    if isinstance(usage, dict):
        piece.input_tokens = _int(usage.get("prompt_tokens"))
        piece.output_tokens = _int(usage.get("completion_tokens"))
    return piece


def anthropic_event(event: str, data: Mapping[str, Any]) -> Piece:
    """Read one Messages API stream event (``content_block_delta``, ``message_delta``...)."""
    piece = Piece()
    kind = data.get("type", event)
    if kind == "error":
        piece.error = _error_fields(data.get("error") or {}, "api_error")
    elif kind == "message_start":
        usage = (data.get("message") or {}).get("usage") or {}
        piece.input_tokens = _int(usage.get("input_tokens"))
    elif kind == "content_block_delta":
        delta = data.get("delta") or {}
        if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
            piece.text = delta["text"]
    elif kind == "message_delta":
        delta = data.get("delta") or {}
        if isinstance(delta.get("stop_reason"), str):
            piece.finish = delta["stop_reason"]
        if isinstance(delta.get("stop_sequence"), str):
            piece.stop_sequence = delta["stop_sequence"]
        usage = data.get("usage") or {}
        piece.output_tokens = _int(usage.get("output_tokens"))
        if usage.get("input_tokens") is not None:
            piece.input_tokens = _int(usage.get("input_tokens"))
    return piece


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _error_fields(error: object, default_type: str) -> tuple[str, str]:
    """(type, message) of an engine's error object, in whichever shape it comes."""
    if isinstance(error, str):
        return default_type, error
    if not isinstance(error, dict):
        return default_type, "the upstream engine failed"
    message = error.get("message")
    kind = error.get("type")
    return (
        kind if isinstance(kind, str) and kind in _API_ERROR_TYPES else default_type,
        message if isinstance(message, str) and message else "the upstream engine failed",
    )


_API_ERROR_TYPES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
        "rate_limit_error",
        "api_error",
        "overloaded_error",
    }
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


class PrefillEcho:
    """Remove a prefill that the engine repeats at the start of its answer.

    The API continues a prefill without repeating it; some engines (llama-server's
    ``/v1/messages``) send it first. The first ``len(prefill)`` characters are held until
    they are known: if they are the prefill they are dropped, else they are released. ::

        e = PrefillEcho("The answer is")
        e.feed("The ans") -> ""     e.feed("wer is 4") -> " 4"
    """

    def __init__(self, prefill: str) -> None:
        self.prefill = prefill
        self._held = ""
        self._decided = not prefill

    def feed(self, text: str) -> str:
        """The text that can be passed on now."""
        if self._decided:
            return text
        self._held += text
        if self.prefill.startswith(self._held):
            if len(self._held) < len(self.prefill):
                return ""
            self._decided, self._held = True, ""
            return ""
        self._decided = True
        held = self._held
        out = held[len(self.prefill) :] if held.startswith(self.prefill) else held
        self._held = ""
        return out

    def flush(self) -> str:
        """End of the answer: release a held partial echo (it was the model's own text)."""
        out, self._held, self._decided = self._held, "", True
        return out


def final_for(
    finish: str | None,
    engine_stop: str | None,
    request: GenerationRequest,
    input_tokens: int,
    output_tokens: int,
) -> Final:
    """The `Final` record for an engine that ended by itself (no stop matched here).

    ``"length"``/``"max_tokens"`` -> ``max_tokens``; a stop sequence the engine names that is
    one of the request's -> ``stop_sequence``; anything else (``"stop"``, ``"end_turn"``, the
    built-in ``"\\n\\nHuman:"``) -> ``end_turn``.
    """
    if finish in ("length", "max_tokens", "model_length"):
        return Final("max_tokens", None, input_tokens, output_tokens)
    if engine_stop is not None and engine_stop in request.stop_sequences:
        return Final("stop_sequence", engine_stop, input_tokens, output_tokens)
    return Final("end_turn", None, input_tokens, output_tokens)


def matched_final(
    stop: str, request: GenerationRequest, input_tokens: int, output_tokens: int
) -> Final:
    """The `Final` record when a stop sequence was matched here: ``stop_sequence`` with it,
    or ``end_turn`` for the built-in ``"\\n\\nHuman:"`` the request did not list."""
    if stop == HUMAN_PROMPT and stop not in request.stop_sequences:
        return Final("end_turn", None, input_tokens, output_tokens)
    return Final("stop_sequence", stop, input_tokens, output_tokens)


# -- the backend -----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class UpstreamConfig:
    """Where and how to reach the engine.

    Attributes:
        url: the engine's base URL (``http://127.0.0.1:8080``); ``/v1/...`` is appended, and
            a trailing ``/v1`` in it is accepted too.
        api: ``"openai"`` or ``"anthropic"`` (the protocol the engine is spoken to in).
        key_env: the environment variable holding the engine's API key, read once at
            start; the key goes only to ``url``'s host, as ``Authorization: Bearer`` for
            ``openai`` and ``x-api-key`` for ``anthropic``.
        model: the model name sent to the engine (default: the name each request gives).
        max_outstanding: requests in flight to the engine at once; past it, 529.
        connect_timeout, read_timeout: seconds (a read waits for the engine's next event).
    """

    url: str
    api: UpstreamAPI = "openai"
    key_env: str | None = None
    model: str | None = None
    max_outstanding: int = 64
    connect_timeout: float = 5.0
    read_timeout: float = 600.0

    def __post_init__(self) -> None:
        if self.api not in UPSTREAM_APIS:
            raise ValueError(
                f"upstream api must be one of {', '.join(UPSTREAM_APIS)}, not {self.api!r}"
            )
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"upstream URL must start with http:// or https://: {self.url!r}")
        if self.max_outstanding < 1:
            raise ValueError("max outstanding upstream requests must be at least 1")
        if self.key_env is not None and not os.environ.get(self.key_env):
            raise ValueError(
                f"the environment variable {self.key_env} named by --upstream-key-env is not set"
            )

    @property
    def base(self) -> str:
        """The URL without a trailing ``/`` or ``/v1``."""
        base = self.url.rstrip("/")
        return base[:-3] if base.endswith("/v1") else base


class UpstreamBackend:
    """A `jupyter_complete.local.api.backend.Backend` whose text comes from an engine.

    Create it on the server's event loop (``UpstreamBackend(config)``); `aclose` closes
    its connections. The API key named by ``config.key_env`` is read here and kept out of
    reprs and errors.
    """

    def __init__(self, config: UpstreamConfig) -> None:
        import httpx

        self.config = config
        headers = {"content-type": "application/json"}
        key = os.environ.get(config.key_env) if config.key_env else None
        if config.api == "anthropic":
            headers["anthropic-version"] = ANTHROPIC_VERSION
            if key:
                headers["x-api-key"] = key
        elif key:
            headers["authorization"] = f"Bearer {key}"
        self._headers = headers
        limits = httpx.Limits(
            max_connections=config.max_outstanding + 4,
            max_keepalive_connections=config.max_outstanding + 4,
        )
        timeout = httpx.Timeout(config.read_timeout, connect=config.connect_timeout)
        # trust_env=False: no proxy from the environment sees the key or the prompts.
        self._client = httpx.AsyncClient(
            base_url=config.base,
            headers=headers,
            limits=limits,
            timeout=timeout,
            trust_env=False,
            follow_redirects=False,
        )
        self._outstanding = 0
        self._jobs: set[UpstreamJob] = set()
        self._models: list[ModelCard] | None = None
        #: Counts for tests and benchmarks: admitted, overloaded (refused with 529).
        self.stats = {"admitted": 0, "overloaded": 0}
        self.refresh_models()

    def __repr__(self) -> str:
        return f"UpstreamBackend({self.config.base!r}, api={self.config.api!r})"

    @property
    def outstanding(self) -> int:
        """Requests admitted and not yet closed."""
        return self._outstanding

    def model_name(self, requested: str) -> str:
        """``--upstream-model`` when given, else the name the client asked for."""
        return self.config.model or requested

    async def admit(self, request: GenerationRequest) -> UpstreamJob:
        """A job for ``request``; 529 ``overloaded_error`` when ``max_outstanding`` requests
        are already in flight. Nothing is sent until `UpstreamJob.wait`."""
        if self._outstanding >= self.config.max_outstanding:
            self.stats["overloaded"] += 1
            raise RequestRejected(529, "overloaded_error", "Overloaded", {"x-should-retry": "true"})
        self._outstanding += 1
        self.stats["admitted"] += 1
        job = UpstreamJob(self, request)
        self._jobs.add(job)
        return job

    def _release(self, job: UpstreamJob) -> None:
        if job in self._jobs:
            self._jobs.discard(job)
            self._outstanding -= 1

    def refresh_models(self) -> list[ModelCard]:
        """Ask the engine for its models (``GET /v1/models``, blocking, 10 s at most) and keep
        them for `models`. Called once when the backend is created; an engine that does not
        answer (not started yet, or without the list) leaves the list empty."""
        import httpx

        try:
            with (
                httpx.Client(
                    base_url=self.config.base,
                    headers=self._headers,
                    timeout=10.0,
                    trust_env=False,
                    follow_redirects=False,
                ) as client,
                client.stream("GET", "/v1/models") as response,
            ):
                raw = b"".join(_take(response.iter_bytes(), MAX_BODY))
                data = json.loads(raw) if response.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            data = {}
        cards: list[ModelCard] = []
        for item in data.get("data") or () if isinstance(data, dict) else ():
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                created = item.get("created")
                stamp = (
                    time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
                    if isinstance(created, int)
                    else item.get("created_at") or "1970-01-01T00:00:00Z"
                )
                cards.append(
                    ModelCard(item["id"], str(item.get("display_name") or item["id"]), str(stamp))
                )
        self._models = cards
        return cards

    def models(self) -> list[ModelCard]:
        """``--upstream-model`` first (when given), then what the engine listed at start."""
        cards = list(self._models or ())
        if self.config.model and all(c.id != self.config.model for c in cards):
            cards.insert(0, ModelCard(self.config.model, self.config.model, "1970-01-01T00:00:00Z"))
        return cards

    async def count_tokens(self, request: GenerationRequest) -> int:
        """Input tokens as the engine counts them.

        ``anthropic``: the engine's ``/v1/messages/count_tokens``. ``openai`` (which has no
        such endpoint): a one-token completion of the same messages, whose
        ``usage.prompt_tokens`` is the count (the engine's own template and tokenizer; the
        prompt stays in its cache for the request that usually follows).
        """
        model = self.model_name(request.model)
        if self.config.api == "anthropic":
            body = anthropic_body(request, model)
            for name in (
                "stream",
                "max_tokens",
                "stop_sequences",
                "temperature",
                "top_k",
                "top_p",
                "metadata",
            ):
                body.pop(name, None)
            data = await self._post_json("/v1/messages/count_tokens", body)
            count = _int(data.get("input_tokens"))
        else:
            body = openai_body(request, model, stream=False)
            body["max_tokens"] = 1
            data = await self._post_json("/v1/chat/completions", body)
            count = _int((data.get("usage") or {}).get("prompt_tokens"))
        if count is None:
            raise RequestRejected(500, "api_error", "the upstream engine did not count tokens")
        return count

    async def _post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        status, raw, headers = await self._request("POST", path, body)
        if status != 200:
            raise rejection_for(status, raw[:MAX_ERROR_BODY], headers)
        try:
            data = json.loads(raw)
        except ValueError as err:
            raise RequestRejected(
                500, "api_error", "the upstream engine sent an unreadable answer"
            ) from err
        return data if isinstance(data, dict) else {}

    async def _request(
        self, method: str, path: str, body: dict[str, Any] | None
    ) -> tuple[int, bytes, dict[str, str]]:
        """(status, body of at most `MAX_BODY` bytes, headers) of one engine request."""
        import httpx

        try:
            request = self._client.build_request(method, path, json=body)
            response = await self._client.send(request, stream=True)
            try:
                raw = await _read_bounded(response, MAX_BODY)
            finally:
                await response.aclose()
        except httpx.HTTPError as err:
            raise _unreachable(err) from err
        return response.status_code, raw, dict(response.headers)

    async def aclose(self) -> None:
        """Close every job's engine request, then the connections."""
        for job in list(self._jobs):
            await job.aclose()
        await self._client.aclose()


def _take(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    """``chunks`` up to ``limit`` bytes in all (the rest is not read)."""
    left = limit
    for chunk in chunks:
        yield chunk[:left]
        left -= len(chunk)
        if left <= 0:
            return


async def _read_bounded(response: httpx.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of a response body (the rest is not read)."""
    raw = bytearray()
    async for chunk in response.aiter_bytes():
        raw += chunk
        if len(raw) >= limit:
            break
    return bytes(raw[:limit])


class _BoundedEvents:
    """The response as `httpx_sse.EventSource` reads it (``headers``, ``aiter_text``), failing
    once more than ``limit`` characters arrive without an event boundary (a blank line):
    an engine cannot make us buffer without end."""

    def __init__(self, response: httpx.Response, limit: int) -> None:
        self._response = response
        self._limit = limit

    @property
    def headers(self) -> httpx.Headers:
        return self._response.headers

    async def aiter_text(self) -> AsyncIterator[str]:
        since = 0
        async for text in self._response.aiter_text():
            cut = max(text.rfind("\n\n"), text.rfind("\r\n\r\n"), text.rfind("\r\r"))
            since = len(text) - cut if cut >= 0 else since + len(text)
            if since > self._limit:
                raise BackendError("the upstream engine sent an oversized event")
            yield text


def _unreachable(err: Exception) -> RequestRejected:
    return RequestRejected(
        500,
        "api_error",
        f"the upstream engine could not be reached ({type(err).__name__})",
        {"x-should-retry": "true"},
    )


class UpstreamJob:
    """One request in flight to the engine (the `Job` protocol)."""

    def __init__(self, backend: UpstreamBackend, request: GenerationRequest) -> None:
        self.backend = backend
        self.request = request
        self.input_tokens = 0
        self.final: Final | None = None
        self._response: httpx.Response | None = None
        self._closed = False

    async def wait(self) -> None:
        """Send the request and wait for the engine's response headers.

        Raises `RequestRejected` for an engine's error status (mapped by `rejection_for`)
        or when the engine cannot be reached.
        """
        import httpx

        if self._response is not None or self._closed:
            return
        config = self.backend.config
        model = self.backend.model_name(self.request.model)
        if config.api == "anthropic":
            path, body = "/v1/messages", anthropic_body(self.request, model)
        else:
            path, body = "/v1/chat/completions", openai_body(self.request, model)
        client = self.backend._client
        try:
            response = await client.send(client.build_request("POST", path, json=body), stream=True)
        except httpx.HTTPError as err:
            raise _unreachable(err) from err
        if response.status_code != 200:
            raw = b""
            try:
                raw = await _read_bounded(response, MAX_ERROR_BODY)
            except httpx.HTTPError:
                pass
            finally:
                await response.aclose()
            raise rejection_for(response.status_code, raw, response.headers)
        self._response = response

    def __aiter__(self) -> AsyncIterator[str]:
        return self._deltas()

    async def _deltas(self) -> AsyncIterator[str]:
        import httpx
        from httpx_sse import EventSource, SSEError

        await self.wait()
        assert self._response is not None
        request = self.request
        anthropic = self.backend.config.api == "anthropic"
        matcher = StopMatcher((HUMAN_PROMPT, *request.stop_sequences))
        echo = PrefillEcho(request.conversation.prefill)
        finish: str | None = None
        engine_stop: str | None = None
        output_tokens = 0
        counted = 0  # text pieces, for engines that report no usage
        try:
            source = EventSource(
                cast("httpx.Response", _BoundedEvents(self._response, MAX_EVENT_CHARS))
            )
            async for sse in source.aiter_sse():
                if not sse.data or sse.data == "[DONE]":
                    continue
                try:
                    data = json.loads(sse.data)
                except ValueError as err:
                    raise BackendError("the upstream engine sent an unreadable event") from err
                if not isinstance(data, dict):
                    continue
                piece = anthropic_event(sse.event, data) if anthropic else openai_chunk(data)
                if piece.error is not None:
                    raise BackendError(f"upstream {piece.error[0]}: {piece.error[1]}")
                if piece.input_tokens is not None:
                    self.input_tokens = piece.input_tokens
                if piece.output_tokens is not None:
                    output_tokens = piece.output_tokens
                if piece.finish is not None:
                    finish, engine_stop = piece.finish, piece.stop_sequence
                if piece.text:
                    counted += 1
                    text = matcher.feed(echo.feed(piece.text))
                    if text:
                        yield text
                    if matcher.matched is not None:
                        break  # closing the response (below) cancels the engine's work
        except httpx.HTTPError as err:
            raise BackendError(
                f"the upstream engine's stream broke ({type(err).__name__})"
            ) from err
        except SSEError as err:
            raise BackendError(f"the upstream engine did not answer with events: {err}") from err
        finally:
            await self.aclose()
        if matcher.matched is None:
            tail = matcher.feed(echo.flush())
            if matcher.matched is None:
                tail += matcher.flush()
            if tail:
                yield tail
        if matcher.matched is None and finish is None:
            raise BackendError("the upstream engine ended its stream without finishing")
        if not self.input_tokens and isinstance(request, MessagesRequest):
            # Cut short by a stop sequence, or an engine whose stream has no usage; only
            # the Messages API reports input tokens.
            self.input_tokens = await self._count_input()
        outputs = max(output_tokens, counted)
        if matcher.matched is not None:
            self.final = matched_final(matcher.matched, request, self.input_tokens, outputs)
        else:
            self.final = final_for(finish, engine_stop, request, self.input_tokens, outputs)

    async def _count_input(self) -> int:
        """Input tokens, asked of the engine, for engines whose stream reports no usage
        (llama-cpp-python's server); 0 if it cannot say."""
        try:
            return await self.backend.count_tokens(self.request)
        except RequestRejected:
            return 0

    async def aclose(self) -> None:
        """Close the engine's response (the engine cancels the generation) and free the slot."""
        if self._closed:
            return
        self._closed = True
        response, self._response = self._response, None
        try:
            if response is not None:
                await response.aclose()
        finally:
            self.backend._release(self)

    async def __aenter__(self) -> UpstreamJob:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


__all__ = [
    "UPSTREAM_APIS",
    "PrefillEcho",
    "UpstreamBackend",
    "UpstreamConfig",
    "UpstreamJob",
    "anthropic_body",
    "anthropic_event",
    "chat_messages",
    "final_for",
    "matched_final",
    "openai_body",
    "openai_chunk",
    "rejection_for",
]
