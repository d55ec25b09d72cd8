"""Fixtures for the panel's tests: a replay server that can hold a stream open until the client
closes it, widget comm traffic recorded without a kernel, and paced SSE scripts.

Usage::

    def test_x(holding_replay, comm_recorder):
        holding_replay.enqueue(paced_script(["Hello", " world"], hold=True))
        ...
        holding_replay.peer_closed.wait(5)       # the server saw the client's close
        comm_recorder.bytes()                    # what the widgets would have sent
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import comm
import pytest
from comm.base_comm import BaseComm
from fixtures_replay import (
    LAST_CHUNK,
    ReplayServer,
    Script,
    Sleep,
    Step,
    chunk,
    completion_event,
    final_event,
    head,
)


@dataclass
class HoldUntilClosed:
    """Send nothing more and wait until the client closes the connection (a stalled stream)."""

    timeout: float = 30.0


class HoldingReplayServer(ReplayServer):
    """A `ReplayServer` that also plays `HoldUntilClosed`, recording when the client hung up.

    ``holding`` is set once a script reaches its hold (the server is mid-stream, waiting);
    ``peer_closed`` once the client's close (EOF) arrived *during* that hold. Nothing but the
    client can end the hold early, so ``peer_closed`` set means the client closed first.
    """

    def __post_init__(self) -> None:
        self.holding = threading.Event()
        self.peer_closed = threading.Event()
        super().__post_init__()

    def _play(self, conn: socket.socket, script: Script) -> bool:
        steps: list[Any] = list(script.steps)
        if not any(isinstance(s, HoldUntilClosed) for s in steps):
            return super()._play(conn, script)
        for step in steps:
            if isinstance(step, HoldUntilClosed):
                self.holding.set()
                conn.settimeout(step.timeout)
                try:
                    while conn.recv(65536):
                        pass
                    self.peer_closed.set()
                except OSError:
                    pass  # timeout or reset: the hold ended without a clean close
                return False
            if isinstance(step, bytes):
                conn.sendall(step)
            else:
                super()._play(conn, Script([step]))
        return True


@pytest.fixture
def holding_replay() -> Iterator[HoldingReplayServer]:
    """A `HoldingReplayServer` on 127.0.0.1."""
    server = HoldingReplayServer()
    yield server
    server.close()


def paced_script(
    texts: list[str],
    *,
    delay: float = 0.0,
    hold: bool = False,
    stop_reason: str = "stop_sequence",
) -> Script:
    """A chunked SSE stream of ``texts`` (one completion event each, ``delay`` s apart).

    With ``hold`` the final event is never sent: the server holds the stream open until the
    client closes it.
    """
    steps: list[Step | HoldUntilClosed] = [head(200, chunked=True)]
    for text in texts:
        steps.append(chunk(completion_event(text)))
        if delay:
            steps.append(Sleep(delay))
    if hold:
        steps.append(HoldUntilClosed())
    else:
        steps += [chunk(final_event(stop_reason)), LAST_CHUNK]
    return Script(steps)  # type: ignore[arg-type]  # HoldingReplayServer plays the extra step


@dataclass
class Sent:
    """One comm message a widget sent."""

    msg_type: str
    method: str | None
    nbytes: int
    data: dict[str, Any]


@dataclass
class CommRecorder:
    """Every comm message widgets publish, with the size of its JSON payload."""

    sent: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, msg_type: str, data: dict[str, Any] | None, buffers: Any) -> None:
        data = data or {}
        nbytes = len(json.dumps(data, default=str).encode()) + sum(len(b) for b in (buffers or []))
        with self.lock:
            self.sent.append(Sent(msg_type, data.get("method"), nbytes, data))

    def mark(self) -> int:
        """A position to measure from (`bytes(since=...)`)."""
        with self.lock:
            return len(self.sent)

    def since(self, start: int = 0) -> list[Sent]:
        with self.lock:
            return list(self.sent[start:])

    def bytes(self, since: int = 0) -> int:
        """Payload bytes of the messages recorded after position ``since``."""
        return sum(s.nbytes for s in self.since(since))


@pytest.fixture
def comm_recorder(monkeypatch: pytest.MonkeyPatch) -> CommRecorder:
    """Make widgets created in the test publish into a `CommRecorder` instead of nowhere.

    Without a kernel, ipywidgets' comms are ``comm.DummyComm`` objects that drop every
    message; this swaps in one that measures each message (as JSON, like the wire payload).
    """
    recorder = CommRecorder()

    class RecordingComm(BaseComm):  # type: ignore[misc]
        def publish_msg(
            self,
            msg_type: str,
            data: dict[str, Any] | None = None,
            metadata: Any = None,
            buffers: Any = None,
            **keys: Any,
        ) -> None:
            recorder.record(msg_type, data, buffers)

    monkeypatch.setattr(comm, "create_comm", lambda *a, **kw: RecordingComm(*a, **kw))
    return recorder


def wait_until(predicate: Any, timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until true (a failure detector, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return bool(predicate())
