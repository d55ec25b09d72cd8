"""Fault-injection helpers on top of the replay server, and a tally of the cases tried.

The replay server plays scripted raw bytes; this module adds what the fault, secrets and
server-input suites share: a client whose retry sleeps are recorded instead of slept, a run
helper that captures what the caller saw, a refused port, stream bodies whose event
boundaries are known (to compute the text a cut at any byte offset must leave), and the
checks every fault must pass. The tally is printed at the end of the pytest run, so the
number of fault cases and bad inputs tried is on record.
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fixtures_replay import LAST_CHUNK, ReplayServer, chunk, completion_event, final_event, head

from jupyter_complete import Client, errors

PROMPT = "\n\nHuman: hi\n\nAssistant:"

#: How many cases each suite tried in this run (printed in the terminal summary).
TALLY: Counter[str] = Counter()


class SleepRecorder:
    """Stands in for ``Client._sleep``: retries happen at once and their delays are kept."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def backoff_bounds(attempt: int) -> tuple[float, float]:
    """The jittered backoff range before retry ``attempt + 1`` (protocol.md 5.3)."""
    base = min(0.5 * 2**attempt, 8.0)
    return 0.75 * base, base


def assert_backoff(delays: list[float]) -> None:
    for attempt, delay in enumerate(delays):
        lo, hi = backoff_bounds(attempt)
        assert lo <= delay <= hi, f"retry {attempt + 1} waited {delay}, not in [{lo}, {hi}]"


@dataclass
class Outcome:
    """What the caller of one request saw."""

    error: errors.APIError | None
    #: The text handed to the caller, event by event, before the error (or all of it).
    seen: str
    elapsed: float
    result: str | None = None
    events: int = 0

    @property
    def partial(self) -> str | None:
        if self.error is None or self.error.partial is None:
            return None
        return self.error.partial.completion


def run(client: Client, *, stream: bool = True, **kwargs: Any) -> Outcome:
    """Make one request and record what came back, without letting an APIError escape."""
    seen: list[str] = []
    events = 0
    started = time.monotonic()
    try:
        if stream:
            with client.completions.create(prompt=PROMPT, stream=True, **kwargs) as s:
                for event in s:
                    events += 1
                    seen.append(event.completion)
            result = s.get_final_completion().completion
        else:
            result = client.completions.create(prompt=PROMPT, **kwargs).completion
            seen.append(result)
    except errors.APIError as err:
        return Outcome(err, "".join(seen), time.monotonic() - started, events=events)
    return Outcome(None, "".join(seen), time.monotonic() - started, result, events)


def assert_reported_well(err: BaseException, cls: type[errors.APIError]) -> None:
    """The right class, and one readable line that says what to do."""
    assert type(err) is cls, f"{type(err).__name__} raised, wanted {cls.__name__}: {err}"
    assert isinstance(err, errors.APIError)
    text = str(err)
    assert "\n" not in text and "\r" not in text, text
    assert err.hint and err.hint in text, f"no advice in {text!r}"
    # A huge body or event must not become a huge message.
    assert len(text) < 400, f"{len(text)} characters"


def idle_pooled(client: Client) -> int:
    """Connections sitting idle in the client's pool, ready for reuse (not leaks)."""
    session = client._session
    if session is None:
        return 0
    count = 0
    for adapter in session.adapters.values():
        for pool in adapter.poolmanager.pools._container.values():  # type: ignore[attr-defined]
            count += sum(
                1 for conn in list(pool.pool.queue) if conn is not None and conn.sock is not None
            )
    return count


def assert_no_connection_held(
    replay: ReplayServer, client: Client, *, close: bool = True, timeout: float = 5.0
) -> None:
    """Every connection the server still sees open is idle in the client's pool (and, with
    ``close``, closing the client closes them all): none is held by a dead stream or a
    failed request."""
    deadline = time.monotonic() + timeout
    while replay.open_connections != idle_pooled(client):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{replay.open_connections} connections open at the server, "
                f"{idle_pooled(client)} idle in the client's pool"
            )
        time.sleep(0.01)
    if not close:
        return
    client.close()
    assert replay.wait_idle(timeout), "closing the client left connections open"


def refused_url() -> str:
    """A loopback URL where nothing listens (the port was just bound, then released)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


@dataclass
class StreamBody:
    """A scripted stream's bytes with the offset where each event's blank line ends.

    ``response`` is the head followed by the body; ``ends[i]`` is the offset in ``response``
    just past event i's terminating blank line, so a cut at offset k must leave the caller
    with exactly the texts of the events whose end is <= k.
    """

    texts: list[str]
    response: bytes = b""
    ends: list[int] = field(default_factory=list)

    def text_before(self, cut: int) -> str:
        return "".join(t for t, end in zip(self.texts, self.ends, strict=False) if end <= cut)

    @property
    def final_end(self) -> int:
        """Where the final event (the one with the stop_reason) ends."""
        return self.ends[-1]


def stream_body(texts: list[str], *, chunked: bool, eol: str = "\n") -> StreamBody:
    """Build a stream of ``texts`` then a final event, framed as chunks or close-delimited."""
    body = StreamBody(texts + [""])
    out = bytearray(head(chunked=chunked))
    events = [completion_event(t, eol=eol) for t in texts] + [final_event(eol=eol)]
    for event in events:
        if chunked:
            framed = chunk(event)
            start = len(out) + framed.index(event)
            out += framed
        else:
            start = len(out)
            out += event
        # WHATWG: a CR alone ends a line, so the blank line that dispatches an event framed
        # with CRLF is complete at its CR; the LF after it adds nothing.
        body.ends.append(start + len(event) - (1 if event.endswith(b"\r\n") else 0))
    if chunked:
        out += LAST_CHUNK
    body.response = bytes(out)
    return body


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def fault_client(
    replay: ReplayServer, sleeps: SleepRecorder, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """A factory for clients of the replay server whose retry sleeps go to ``sleeps``."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.setattr(Client, "_sleep", lambda self, seconds: sleeps(seconds))
    made: list[Client] = []

    def make(**kwargs: Any) -> Client:
        kwargs.setdefault("api_key", "test-key")
        kwargs.setdefault("base_url", replay.url)
        client = Client(**kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def tally() -> Counter[str]:
    return TALLY


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TALLY:
        terminalreporter.write_sep("-", "cases tried")
        for name, count in sorted(TALLY.items()):
            terminalreporter.write_line(f"{name}: {count}")
