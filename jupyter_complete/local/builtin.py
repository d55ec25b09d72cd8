"""`ModelBackend`: the built-in model as a `jupyter_complete.local.api.backend.Backend`.

Admission: one generation at a time through the `Gate`, at most ``max_queue`` waiting
behind it, 529 ``overloaded_error`` past that. Each admitted job gets a worker thread (so
at most ``1 + max_queue`` of them) that waits for the gate, runs llama.cpp and hands each
text delta to the event loop through an unbounded queue: the generation never waits on the
client's socket, so a slow reader cannot hold the model (what it has not read yet is at
most ``max_tokens`` tokens' text). Cancelling a job (the client left, the server closes)
is seen by the worker before its next token, and the gate goes to the next in line.

By default the KV cache is reused only for the prompt's leading tokens that hold none of
the caller's text (`LocalModel.render_public`), or in full when the cache was last filled
for a request on the same client connection (`REQUESTER`): that client's own prompt, which
tells it nothing new. Reusing another caller's prompt would let a key holder time how much
of a guessed prompt another user sent (a right guess answered in 0.1 s, a wrong one in 4
s). A connection is one client's (behind a reverse proxy that pools its connections to the
server, several users may share one: use the default there, never ``reuse_cache``).
``reuse_cache=True`` reuses the whole common prefix whoever sent it, which is safe only when
a single party can send requests: the embedded server, whose random key never leaves the
kernel that started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .api.backend import REQUESTER, BackendError, Final, ModelCard, StopReason
from .closing import AsyncClosing
from .gate import Gate
from .generation import STOP_SEQUENCE, Generation
from .request import GenerationRequest, MessagesRequest, RequestRejected, invalid

if TYPE_CHECKING:
    from .model import LocalModel

log = logging.getLogger(__name__)

_STARTED = object()
_CANCELLED = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def final_of(generation: Generation, input_tokens: int) -> Final:
    """A finished `Generation`'s outcome as a `Final` (Messages API terms).

    The model ending its own turn is ``end_turn``; one of the caller's stop sequences is
    ``stop_sequence`` (and names it); running out of tokens is ``max_tokens``.
    """
    reason: StopReason
    sequence: str | None = None
    if generation.end_of_turn:
        reason = "end_turn"
    elif generation.stop_reason == STOP_SEQUENCE:
        reason, sequence = "stop_sequence", generation.stop
    else:
        reason = "max_tokens"
    return Final(reason, sequence, input_tokens, len(generation.tokens))


class ModelBackend:
    """The built-in `LocalModel` behind the API layer.

    Args:
        model: the model that generates.
        max_queue: requests that may wait while one generates; past it, 529.
        reuse_cache: reuse the KV cache for the whole prefix a prompt shares with the last
            one, not only the chat template's own leading tokens (see the module docstring:
            only for a server a single party can reach).
    """

    def __init__(self, model: LocalModel, *, max_queue: int = 8, reuse_cache: bool = False) -> None:
        self.model = model
        self.gate = Gate(max_queue)
        self.reuse_cache = reuse_cache
        self._jobs: set[_ModelJob] = set()
        self._jobs_lock = threading.Lock()

    # -- Backend -----------------------------------------------------------------------
    def model_name(self, requested: str) -> str:  # noqa: ARG002 - one model answers all
        """The loaded model's name, whatever the request named."""
        return self.model.name

    def models(self) -> list[ModelCard]:
        """The one model this backend serves (created: its file's modification time)."""
        try:
            stamp = self.model.path.stat().st_mtime
        except OSError:
            stamp = 0.0
        created = datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc)
        return [ModelCard(self.model.name, self.model.name, created.strftime("%Y-%m-%dT%H:%M:%SZ"))]

    async def count_tokens(self, request: MessagesRequest) -> int:
        """Prompt tokens of ``request`` as the model would see them."""
        tokens, _ = await asyncio.to_thread(self._render, request, "messages")
        return len(tokens)

    async def admit(self, request: GenerationRequest) -> _ModelJob:
        """Render and tokenise (in a thread), check the length, join the queue."""
        field = "messages" if isinstance(request, MessagesRequest) else "prompt"
        tokens, public = await asyncio.to_thread(self._render, request, field)
        limit = self.model.n_ctx - 1
        if len(tokens) > limit:
            raise invalid(f"prompt is too long: {len(tokens)} tokens > {limit} maximum")
        ticket = self.gate.admit()
        if ticket is None:
            raise RequestRejected(529, "overloaded_error", "Overloaded", {"x-should-retry": "true"})
        generation = Generation(
            self.model,
            tokens,
            request,
            reuse_limit=None if self.reuse_cache else public,
            owner=REQUESTER.get(),
        )
        job = _ModelJob(self, generation, ticket)
        with self._jobs_lock:
            self._jobs.add(job)
        job.start()
        return job

    async def aclose(self) -> None:
        """Cancel every job and wait (in a thread) until the model is free."""
        with self._jobs_lock:
            jobs = list(self._jobs)
        for job in jobs:
            job.cancel()
        await asyncio.to_thread(self.gate.wait_idle, 10)

    # -- helpers -----------------------------------------------------------------------
    def _render(self, request: GenerationRequest, field: str) -> tuple[list[int], int]:
        """Prompt tokens and their public prefix; 400 when too long or refused."""
        model = self.model
        # Past n_ctx tokens of the longest piece, the text cannot fit: refuse it before
        # tokenising, which costs time and memory in the text's length. (The longest piece
        # is measured on the first text over n_ctx bytes: shorter ones always pass.)
        size = request.conversation_bytes()
        if size > model.n_ctx and size > model.n_ctx * model.max_token_bytes:
            raise invalid(
                f"prompt is too long: {size} bytes cannot fit the model's "
                f"{model.n_ctx}-token context"
            )
        try:
            return model.render_public(request.conversation)
        except Exception as err:
            # Some chat templates refuse conversations (e.g. roles that do not alternate)
            # by raising; that is the request's fault, so it is a 400 with their reason.
            raise invalid(
                f"{field} cannot be rendered with the model's chat template: {err}"
            ) from err

    def forget(self, job: _ModelJob) -> None:
        """Drop ``job`` from the jobs `aclose` cancels (its worker calls this as it ends)."""
        with self._jobs_lock:
            self._jobs.discard(job)


class _ModelJob(AsyncClosing):
    """One request to the built-in model: a worker thread and the queue it fills.

    ``generation`` has not started (it takes the model's lock on its first step, in the
    worker, once ``ticket`` has the gate).
    """

    def __init__(self, backend: ModelBackend, generation: Generation, ticket: object) -> None:
        self._backend = backend
        self._generation = generation
        self._ticket = ticket
        self.input_tokens = len(generation.prompt_tokens)
        self.final: Final | None = None
        self._loop = asyncio.get_running_loop()
        self._items: asyncio.Queue[Any] = asyncio.Queue()
        self._cancel = threading.Event()
        self._started = False
        self._thread = threading.Thread(
            target=self._work, name="jupyter-complete-generation", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        """Tell the worker to stop (thread-safe, idempotent)."""
        self._cancel.set()

    # -- worker thread -----------------------------------------------------------------
    def _post(self, item: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody listens
            self._loop.call_soon_threadsafe(self._items.put_nowait, item)

    def _work(self) -> None:
        backend = self._backend
        gate = backend.gate
        try:
            if not gate.wait(self._ticket, cancelled=self._cancel.is_set):
                self._post(_CANCELLED)
                return
            try:
                outcome = self._generate()
            finally:
                gate.release()
            # Only now the end: whoever learns of it (the client, by its answer) finds the
            # model free.
            self._post(outcome)
        finally:
            backend.forget(self)

    def _generate(self) -> object:
        """Post the deltas; return what ends the job (`Final`, `_Failed`, `_CANCELLED`)."""
        if self._cancel.is_set():
            return _CANCELLED
        self._post(_STARTED)
        generation = self._generation
        try:
            with contextlib.closing(generation):  # frees the model's lock on every path
                for delta in generation:
                    if self._cancel.is_set():
                        return _CANCELLED
                    if delta:
                        self._post(delta)
            return final_of(generation, self.input_tokens)
        except Exception as err:  # a model failure: the client gets api_error
            log.exception("generation failed")
            return _Failed(err)

    # -- Job ---------------------------------------------------------------------------
    async def _next(self) -> object:
        item = await self._items.get()
        if isinstance(item, _Failed):
            raise BackendError(f"Internal server error ({type(item.error).__name__})")
        if item is _CANCELLED:
            raise BackendError("the generation was cancelled")
        return item

    async def wait(self) -> None:
        """Until the gate is ours (the worker has started generating)."""
        if not self._started:
            item = await self._next()
            assert item is _STARTED, item
            self._started = True

    def __aiter__(self) -> AsyncIterator[str]:
        return self._deltas()

    async def _deltas(self) -> AsyncIterator[str]:
        await self.wait()
        while True:
            item = await self._next()
            if isinstance(item, Final):
                self.final = item
                return
            assert isinstance(item, str)
            yield item

    async def aclose(self) -> None:
        """Cancel the job (the worker stops before its next token)."""
        self.cancel()


__all__ = ["ModelBackend", "final_of"]
