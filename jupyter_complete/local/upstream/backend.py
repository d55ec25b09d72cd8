"""`UpstreamBackend` and `UpstreamJob`: the `Backend` protocol, served by an engine over HTTP.

The engine is reached with httpx and its events read with httpx-sse (both in the ``local``
extra, imported only when a backend is created); every size read from it is bounded
(`MAX_BODY`, `MAX_ERROR_BODY`, `MAX_EVENT_CHARS`). The job matches stop sequences on the
engine's text and closes the engine's response the moment one appears.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, cast

from ... import wire
from ...wire import HUMAN_PROMPT
from ..api.backend import BackendError, Final, ModelCard
from ..closing import AsyncClosing
from ..request import MessagesRequest, RequestRejected
from ..stops import StopMatcher
from .answer import PrefillEcho, final_for, int_or_none, matched_final
from .anthropic import anthropic_body, anthropic_count_body, anthropic_event
from .errors import rejection_for, unreachable
from .openai import openai_body, openai_chunk

if TYPE_CHECKING:
    import httpx

    from ..request import GenerationRequest
    from .config import UpstreamConfig

#: The longest error body read from an engine (bytes); the rest is not read.
MAX_ERROR_BODY = 64 * 1024
#: The longest stretch of an engine's event stream without an event boundary (characters).
MAX_EVENT_CHARS = 1024 * 1024
#: The longest non-streamed answer read from an engine (``/v1/models``, token counts).
MAX_BODY = 4 * 1024 * 1024


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
            headers["anthropic-version"] = wire.API_VERSION
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
        """A job for ``request``; nothing is sent until `UpstreamJob.wait`.

        529 ``overloaded_error`` when ``max_outstanding`` requests are already in flight.
        """
        if self._outstanding >= self.config.max_outstanding:
            self.stats["overloaded"] += 1
            raise RequestRejected(529, "overloaded_error", "Overloaded", {"x-should-retry": "true"})
        self._outstanding += 1
        self.stats["admitted"] += 1
        job = UpstreamJob(self, request)
        self._jobs.add(job)
        return job

    def release(self, job: UpstreamJob) -> None:
        """Forget ``job``, which has closed: its place among ``max_outstanding`` is free."""
        if job in self._jobs:
            self._jobs.discard(job)
            self._outstanding -= 1

    def refresh_models(self) -> list[ModelCard]:
        """Ask the engine for its models and keep them for `models`.

        ``GET /v1/models``, blocking, 10 s at most. Called once when the backend is created;
        an engine that does not answer (not started yet, or without the list) leaves the list
        empty.
        """
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
                client.stream("GET", wire.MODELS_PATH) as response,
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
            body = anthropic_count_body(request, model)
            data = await self._post_json(wire.COUNT_TOKENS_PATH, body)
            count = int_or_none(data.get("input_tokens"))
        else:
            body = openai_body(request, model, stream=False)
            body["max_tokens"] = 1
            data = await self._post_json("/v1/chat/completions", body)
            count = int_or_none((data.get("usage") or {}).get("prompt_tokens"))
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

    async def send(self, method: str, path: str, body: dict[str, Any] | None) -> httpx.Response:
        """Send one request to the engine; its response, body unread (the caller closes it).

        Raises:
            RequestRejected: 500 ``api_error`` (retry) when the engine cannot be reached.
        """
        import httpx

        try:
            request = self._client.build_request(method, path, json=body)
            return await self._client.send(request, stream=True)
        except httpx.HTTPError as err:
            raise unreachable(err) from err

    async def _request(
        self, method: str, path: str, body: dict[str, Any] | None
    ) -> tuple[int, bytes, dict[str, str]]:
        """(status, body of at most `MAX_BODY` bytes, headers) of one engine request."""
        import httpx

        response = await self.send(method, path, body)
        try:
            async with contextlib.aclosing(response):
                raw = await _read_bounded(response, MAX_BODY)
        except httpx.HTTPError as err:
            raise unreachable(err) from err
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
    """The response as `httpx_sse.EventSource` reads it (``headers``, ``aiter_text``).

    Fails once more than ``limit`` characters arrive without an event boundary (a blank
    line): an engine cannot make us buffer without end.
    """

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


class UpstreamJob(AsyncClosing):
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
            path, body = wire.MESSAGES_PATH, anthropic_body(self.request, model)
        else:
            path, body = "/v1/chat/completions", openai_body(self.request, model)
        response = await self.backend.send("POST", path, body)
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
        """Input tokens, asked of the engine; 0 if it cannot say.

        For engines whose stream reports no usage (llama-cpp-python's server).
        """
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
            self.backend.release(self)


__all__ = ["MAX_BODY", "MAX_ERROR_BODY", "MAX_EVENT_CHARS", "UpstreamBackend", "UpstreamJob"]
