"""`Backend`: where the server's text comes from (the built-in model, or an upstream engine).

The API layer (`jupyter_complete.local.api`) validates a request, asks a `Backend` to admit
it, and turns the text the backend streams into the endpoint's body or events. It never
knows whether the text comes from the built-in model (`ModelBackend`, llama.cpp in a worker
thread) or from a real serving engine in front of which ``jupyter-complete serve --upstream
URL`` puts our endpoints. Everything a backend must do is here:

- `Backend.admit` takes a validated `GenerationRequest` (``/v1/complete`` or
  ``/v1/messages``, both already checked field by field) and returns a `Job`, or raises
  `RequestRejected`: 400 for what the backend alone can judge (a prompt too long for its
  context, a chat template that refuses the turns), 529 ``overloaded_error`` when its own
  admission policy is full. It is called before the response starts, so these are real
  HTTP statuses. It is awaited on the event loop, so CPU work (rendering, tokenising) goes
  to a thread, and it must not wait for a turn (that is `Job.wait`). Its admission policy
  is its own: the built-in model runs one generation at a time behind a bounded queue
  (`jupyter_complete.local.gate.Gate`); an upstream backend bounds its outstanding
  requests (and lets the engine queue, passing concurrency through).
- `Job.wait` returns once the job may generate (at once for an upstream backend); the
  exchange sends pings meanwhile and cancels the wait if the client leaves.
- Iterating a `Job` (``async for delta in job``) yields text deltas (``str``, never a
  stop sequence or part of one). When the iteration ends, `Job.final` is the `Final`
  record. A failure mid-generation raises `BackendError` (its message is safe to show the
  client; the exchange turns it into an ``api_error`` event or a 500) or any exception.
  `Job.wait` (or the iteration) may also raise `RequestRejected` when the backend's source
  refuses the request (an upstream engine's 429 or 503): the client gets its status, type
  and headers (a 529 ``overloaded_error`` says to retry), or its type as an error event
  once the stream has started.
- `Job.aclose` stops the work at once and frees what the job holds (its place in the
  queue, the model, the upstream connection); idempotent, and always called, also when the
  client has left or the server closes. Jobs are async context managers that call it.
- `Backend.models` answers ``GET /v1/models``; `Backend.count_tokens` answers ``POST
  /v1/messages/count_tokens`` (it may do I/O: it is awaited); `Backend.aclose` runs when the
  server closes.

An upstream backend plugs in by implementing this protocol (no base class needed) and being
passed to `jupyter_complete.local.server.LocalServer` in place of the model backend: its
jobs map the request to the engine's protocol, stream the engine's text deltas, cancel the
engine request in `aclose` (closing the HTTP response is enough for llama-server and vLLM),
and fill `Final` from the engine's finish reason and usage. Nothing in the HTTP layer
changes.
"""

from __future__ import annotations

import contextvars
import dataclasses
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from types import TracebackType

    from ..request import GenerationRequest, MessagesRequest

#: An opaque token for the client connection the request being admitted came on (one
#: object per connection, never reused), set by the HTTP layer around `Backend.admit`; None
#: outside a request. A backend with a cache shared by all callers may use it to reuse only
#: what the same client put there (the built-in model's KV cache). Others ignore it.
REQUESTER: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "jupyter_complete_requester", default=None
)

#: Why a generation ended, in the Messages API's terms (``/v1/complete`` maps ``end_turn`` to
#: ``stop_sequence`` with the stop ``"\n\nHuman:"``, as the Text Completions API reports it).
StopReason = Literal["end_turn", "stop_sequence", "max_tokens"]


@dataclasses.dataclass(frozen=True)
class Final:
    """How a finished job ended.

    Attributes:
        stop_reason: ``"end_turn"`` (the model ended its turn), ``"stop_sequence"`` (one of
            the request's stop sequences was generated; it is not in the text) or
            ``"max_tokens"`` (the request's limit, or the backend's context, was reached).
        stop_sequence: the stop sequence that matched (``stop_reason == "stop_sequence"``),
            else None.
        input_tokens: prompt tokens, as the backend counted them.
        output_tokens: tokens generated.
    """

    stop_reason: StopReason
    stop_sequence: str | None
    input_tokens: int
    output_tokens: int


@dataclasses.dataclass(frozen=True)
class ModelCard:
    """One entry of ``GET /v1/models`` (the API's ``ModelInfo``: id, display name, created).

    ``created_at`` is RFC 3339 (``"2025-01-01T00:00:00Z"``); for a local file, its mtime.
    """

    id: str
    display_name: str
    created_at: str


class BackendError(Exception):
    """A generation failed; ``str(err)`` is safe to show the client (no paths, no keys)."""


@runtime_checkable
class Job(Protocol):
    """One admitted request (see the module docstring for the life of a job)."""

    #: Prompt tokens, when known before generating (for ``message_start``); else 0.
    input_tokens: int
    #: Set when the iteration has ended normally; None before (and after a failure).
    final: Final | None

    async def wait(self) -> None:
        """Return once this job may generate; cancelling the await gives up its place."""

    def __aiter__(self) -> AsyncIterator[str]:
        """Text deltas, as the backend produces them; `final` is set when they end."""
        ...

    async def aclose(self) -> None:
        """Stop at once and free everything the job holds (idempotent)."""

    async def __aenter__(self) -> Job: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class Backend(Protocol):
    """The source of generations behind the API layer (see the module docstring)."""

    async def admit(self, request: GenerationRequest) -> Job:
        """A `Job` for ``request``, or `RequestRejected` (400 too long / refused, 529 full)."""
        ...

    def model_name(self, requested: str) -> str:
        """The ``model`` to report in answers to a request that named ``requested``."""
        ...

    def models(self) -> list[ModelCard]:
        """What ``GET /v1/models`` lists, newest first."""
        ...

    async def count_tokens(self, request: MessagesRequest) -> int:
        """``input_tokens`` of ``POST /v1/messages/count_tokens``.

        Raises `RequestRejected` as `admit` does for a request that cannot be rendered.
        """
        ...

    async def aclose(self) -> None:
        """Stop every job and free the backend (the server is closing)."""


__all__ = ["REQUESTER", "Backend", "BackendError", "Final", "Job", "ModelCard", "StopReason"]
