"""`Exchange`: one admitted request, from waiting its turn to the last event.

The exchange waits for its `Job` (pinging a streamed client meanwhile), reads the job's
text deltas and hands them to a `Peer`, the small interface the HTTP layer implements:
start one response, send bytes, and say when the client has left. It never sees an HTTP
object, so it runs as well against a test double as against a socket.

The job's text is read by its own task into a list the moment it arrives; the writer takes
whatever has piled up each time the client's socket can take more and sends it as one
event. So the generation never waits for a client: a slow reader gets fewer, larger events
(with 2023-01-01's cumulative events, fewer copies of the text), and the model is free as
soon as the text is generated. When the client leaves (`Peer.left`) everything stops at
once and the job is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Awaitable, Mapping
from typing import Literal, Protocol

from ..request import RequestRejected
from .backend import BackendError, Job
from .encoders import Encoder, error_body

log = logging.getLogger("jupyter_complete.local")

#: What became of an exchange (the server's `Stats` counts each).
Outcome = Literal["completed", "failed", "disconnected"]

SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}


class ClientGone(Exception):
    """The client has left; nothing more can be sent to it."""


class Peer(Protocol):
    """The HTTP side of one request, as the exchange sees it."""

    #: Set once the client has left (it closed or reset its connection).
    left: asyncio.Event

    async def start(self, status: int, headers: Mapping[str, str]) -> None:
        """Send the response head (the HTTP layer adds ``request-id``)."""

    async def send(self, data: bytes, *, last: bool = False) -> None:
        """Send part of the body (``last``: the end of it); `ClientGone` if it left.

        Waits while the client's socket cannot take more (flow control).
        """


@dataclasses.dataclass
class Exchange:
    """Run one admitted request (see the module docstring).

    Args:
        encoder: the endpoint's bodies and events for this answer.
        job: the admitted job (closed when the exchange ends, however it ends).
        peer: the HTTP side.
        request_id: the ``request-id`` the answer carries (for error envelopes).
        stream: answer with server-sent events rather than one JSON body.
        ping_interval: seconds between pings while a streamed request waits its turn.
    """

    encoder: Encoder
    job: Job
    peer: Peer
    _: dataclasses.KW_ONLY
    request_id: str
    stream: bool
    ping_interval: float

    async def run(self) -> Outcome:
        """Answer the request; what became of it."""
        work = asyncio.ensure_future(self._stream() if self.stream else self._single())
        left = asyncio.ensure_future(self.peer.left.wait())
        try:
            await asyncio.wait({work, left}, return_when=asyncio.FIRST_COMPLETED)
            if not work.done():
                return "disconnected"
            try:
                return work.result()
            except ClientGone:
                return "disconnected"
        finally:
            for task in (work, left):
                task.cancel()
            with contextlib.suppress(BaseException):
                await work
            await self.job.aclose()

    # -- one JSON body -----------------------------------------------------------------
    async def _single(self) -> Outcome:
        job = self.job
        try:
            await job.wait()
            text = "".join([delta async for delta in job])
            assert job.final is not None
        except RequestRejected as err:  # the backend's source refused (an upstream's 429 ...)
            body = json.dumps(error_body(err.error_type, err.message, self.request_id)).encode()
            await self._answer(err.status, body, err.headers)
            return "failed"
        except Exception as err:  # a model failure: 500 api_error, as the real API would
            message = _message(err)
            body = json.dumps(error_body("api_error", message, self.request_id)).encode()
            await self._answer(500, body)
            return "failed"
        await self._answer(200, json.dumps(self.encoder.body(text, job.final)).encode())
        return "completed"

    async def _answer(
        self, status: int, body: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        await self.peer.start(
            status,
            {
                **(headers or {}),
                "content-type": "application/json",
                "content-length": str(len(body)),
            },
        )
        await self.peer.send(body, last=True)

    # -- server-sent events ------------------------------------------------------------
    async def _stream(self) -> Outcome:
        peer, encoder, job = self.peer, self.encoder, self.job
        await peer.start(200, SSE_HEADERS)
        for event in encoder.opening():
            await peer.send(event)
        try:
            await self._wait_pinging(job.wait())
            for event in encoder.started():
                await peer.send(event)
            await self._relay()
        except ClientGone:
            raise
        except RequestRejected as err:  # the backend's source refused: its type, as an event
            await peer.send(encoder.error(err.error_type, err.message), last=True)
            return "failed"
        except Exception as err:  # a model failure mid-stream: the protocol's error event
            await peer.send(encoder.error("api_error", _message(err)), last=True)
            return "failed"
        assert job.final is not None
        events = encoder.closing(job.final)
        for i, event in enumerate(events):
            await peer.send(event, last=i == len(events) - 1)
        return "completed"

    async def _wait_pinging(self, waiting: Awaitable[None]) -> None:
        """Await ``waiting``, sending a ping every `ping_interval` seconds meanwhile.

        A ping keeps proxies from timing out, and is how a client that left is noticed.
        """
        task = asyncio.ensure_future(waiting)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.ping_interval)
                if done:
                    return task.result()
                await self.peer.send(self.encoder.ping())
        finally:
            task.cancel()

    async def _relay(self) -> None:
        """Send the job's text as it comes, joining what piled up while the client lagged."""
        pending: list[str] = []
        more = asyncio.Event()
        finished = False

        async def pump() -> None:
            nonlocal finished
            try:
                async for delta in self.job:
                    pending.append(delta)
                    more.set()
            finally:
                finished = True
                more.set()

        reader = asyncio.ensure_future(pump())
        try:
            while True:
                if not pending and not finished:
                    await more.wait()
                    more.clear()
                if pending:
                    text = "".join(pending)
                    pending.clear()
                    await self.peer.send(self.encoder.text(text))
                elif finished:
                    break
            await reader  # raises the job's failure, if any
        finally:
            reader.cancel()


def _message(err: BaseException) -> str:
    if isinstance(err, BackendError):
        return str(err)
    log.error("generation failed: %r", err)
    return f"Internal server error ({type(err).__name__})"


__all__ = ["SSE_HEADERS", "ClientGone", "Exchange", "Outcome", "Peer"]
