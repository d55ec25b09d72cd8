"""The server's API layer without sockets: encoders and the exchange against a `Peer` double.

`jupyter_complete.local.api` never sees an HTTP object; the `Peer` interface is all it
writes to. Here a recording peer (which can be slow, or leave) and a scripted job stand in
for the HTTP layer and a backend, so the event shapes, the joining of text a slow reader
has not taken yet, and what happens when a client leaves are checked exactly. The same
paths run over real sockets in test_local_server.py and test_server_attacks.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from jupyter_complete.local.api import (
    BackendError,
    ClientGone,
    CompleteEncoder,
    Exchange,
    Final,
    MessagesEncoder,
    RequestLimits,
)
from jupyter_complete.local.api.encoders import complete_stop
from jupyter_complete.local.request import CompletionRequest, RequestRejected


class RecordingPeer:
    """Records the head and each body part; ``delay`` makes every send slow."""

    def __init__(self, delay: float = 0.0) -> None:
        self.left = asyncio.Event()
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.parts: list[bytes] = []
        self.ended = False
        self.delay = delay

    async def start(self, status: int, headers: Mapping[str, str]) -> None:
        self.status, self.headers = status, dict(headers)

    async def send(self, data: bytes, *, last: bool = False) -> None:
        if self.left.is_set():
            raise ClientGone
        if self.delay:
            await asyncio.sleep(self.delay)
        self.parts.append(data)
        self.ended = last

    def events(self) -> list[tuple[str | None, Any]]:
        out = []
        for part in self.parts:
            assert part.endswith(b"\n\n") and part.count(b"\n\n") == 1, part
            lines = part.decode().strip("\n").split("\n")
            name = lines[0][7:] if lines[0].startswith("event: ") else None
            data = lines[-1][6:]
            out.append((name, data if data == "[DONE]" else json.loads(data)))
        return out


class ScriptedJob:
    """Yields ``deltas`` (each after ``pause`` s), then ends with ``final`` or ``fail``."""

    def __init__(
        self,
        deltas: list[str],
        *,
        pause: float = 0.0,
        wait: float = 0.0,
        fail: BaseException | None = None,
    ) -> None:
        self.deltas, self.pause, self.wait_for, self.fail = deltas, pause, wait, fail
        self.input_tokens = 7
        self.final: Final | None = None
        self.closed = False
        self.produced = 0

    async def wait(self) -> None:
        await asyncio.sleep(self.wait_for)

    def __aiter__(self) -> AsyncIterator[str]:
        return self._run()

    async def _run(self) -> AsyncIterator[str]:
        for delta in self.deltas:
            await asyncio.sleep(self.pause)
            self.produced += 1
            yield delta
        if self.fail is not None:
            raise self.fail
        self.final = Final("max_tokens", None, 7, len(self.deltas))

    async def aclose(self) -> None:
        self.closed = True

    async def __aenter__(self) -> ScriptedJob:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def run(
    encoder: Any,
    job: ScriptedJob,
    peer: RecordingPeer,
    *,
    stream: bool = True,
    leave_after: float | None = None,
) -> str:
    async def main() -> str:
        exchange = Exchange(
            encoder, job, peer, request_id="req_x", stream=stream, ping_interval=0.05
        )
        if leave_after is not None:
            asyncio.get_running_loop().call_later(leave_after, peer.left.set)
        return await exchange.run()

    return asyncio.run(main())


def test_a_completion_stream_is_a_ping_then_one_event_per_delta_then_the_stop():
    peer = RecordingPeer()
    job = ScriptedJob(["Hel", "lo"], pause=0.01)
    assert run(CompleteEncoder("m", "2023-06-01"), job, peer) == "completed"
    assert peer.status == 200 and peer.headers["content-type"].startswith("text/event-stream")
    events = peer.events()
    assert events[0] == ("ping", {"type": "ping"})
    texts = [data["completion"] for name, data in events[1:-1]]
    assert "".join(texts) == "Hello" and all(name == "completion" for name, _ in events[1:])
    assert events[-1][1]["stop_reason"] == "max_tokens" and events[-1][1]["completion"] == ""
    assert peer.ended and job.closed


def test_a_slow_reader_gets_the_text_joined_and_never_slows_the_job():
    peer = RecordingPeer(delay=0.2)
    job = ScriptedJob([f"t{i} " for i in range(20)], pause=0.005)
    assert run(CompleteEncoder("m", "2023-06-01"), job, peer) == "completed"
    texts = [data["completion"] for name, data in peer.events() if name == "completion"]
    assert "".join(texts) == "".join(f"t{i} " for i in range(20))
    assert len(texts) < 20  # what piled up went out together


def test_legacy_events_are_cumulative_unnamed_and_end_in_done():
    peer = RecordingPeer()
    run(CompleteEncoder("m", "2023-01-01"), ScriptedJob(["a", "b"], pause=0.01), peer)
    events = peer.events()
    assert all(name is None for name, _ in events[1:])
    cumulative = [data["completion"] for _, data in events[1:-1]]
    assert cumulative[-1] == "ab" and cumulative[-2] == "ab"
    assert events[-1][1] == "[DONE]"


def test_a_messages_stream_has_the_api_s_event_order_and_usage():
    peer = RecordingPeer()
    run(MessagesEncoder("m", "2023-06-01", 7), ScriptedJob(["x", "y"]), peer)
    names = [name for name, _ in peer.events()]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    start = peer.events()[0][1]["message"]
    assert start["usage"] == {"input_tokens": 7, "output_tokens": 0}
    delta = peer.events()[-2][1]
    assert delta["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    assert delta["usage"] == {"output_tokens": 2}


def test_a_waiting_stream_is_pinged_until_its_turn():
    peer = RecordingPeer()
    run(CompleteEncoder("m", "2023-06-01"), ScriptedJob(["a"], wait=0.3), peer)
    pings = [name for name, _ in peer.events()].count("ping")
    assert pings >= 3


def test_a_client_that_leaves_stops_the_job_at_once():
    peer = RecordingPeer()
    job = ScriptedJob([f"t{i}" for i in range(1000)], pause=0.01)
    assert run(CompleteEncoder("m", "2023-06-01"), job, peer, leave_after=0.1) == "disconnected"
    assert job.closed and job.produced < 100


def test_a_non_streaming_client_that_leaves_while_queued_stops_too():
    peer = RecordingPeer()
    job = ScriptedJob(["a"], wait=10)
    outcome = run(CompleteEncoder("m", "2023-06-01"), job, peer, stream=False, leave_after=0.1)
    assert outcome == "disconnected" and job.closed and peer.status is None


def test_a_failure_mid_stream_is_an_api_error_event_after_the_text_so_far():
    peer = RecordingPeer()
    job = ScriptedJob(["part"], fail=BackendError("Internal server error (RuntimeError)"))
    assert run(CompleteEncoder("m", "2023-06-01"), job, peer) == "failed"
    name, data = peer.events()[-1]
    assert name == "error" and data["error"]["type"] == "api_error"
    assert peer.events()[-2][1]["completion"] == "part" and peer.ended


def test_a_failure_without_streaming_is_a_500_envelope():
    peer = RecordingPeer()
    job = ScriptedJob(["part"], fail=RuntimeError("llama_decode returned -1"))
    assert run(CompleteEncoder("m", "2023-06-01"), job, peer, stream=False) == "failed"
    assert peer.status == 500
    body = json.loads(peer.parts[0])
    assert body["error"] == {"type": "api_error", "message": "Internal server error (RuntimeError)"}
    assert body["request_id"] == "req_x"


def test_a_non_streaming_answer_is_one_completion_body_with_its_length():
    peer = RecordingPeer()
    run(CompleteEncoder("m", "2023-06-01"), ScriptedJob(["a", "b"]), peer, stream=False)
    body = json.loads(peer.parts[0])
    assert body["completion"] == "ab" and body["type"] == "completion"
    assert peer.headers["content-length"] == str(len(peer.parts[0]))


@pytest.mark.parametrize(
    ("final", "expected"),
    [
        (Final("end_turn", None, 1, 1), ("stop_sequence", "\n\nHuman:")),
        (Final("stop_sequence", "END", 1, 1), ("stop_sequence", "END")),
        (Final("max_tokens", None, 1, 1), ("max_tokens", None)),
    ],
)
def test_the_messages_stop_reasons_map_to_the_text_completions_ones(final, expected):
    assert complete_stop(final) == expected


def _request(**fields: Any) -> CompletionRequest:
    body = {"model": "m", "prompt": "\n\nHuman: hi\n\nAssistant:", "max_tokens_to_sample": 1}
    return CompletionRequest.from_dict({**body, **fields})


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"stop_sequences": ["s"] * 65}, "--max-stop-sequences"),
        ({"stop_sequences": ["x" * 4097]}, "--max-stop-sequence-chars"),
        ({"prompt": "\n\nHuman: " + "é" * 600_000 + "\n\nAssistant:"}, "--max-prompt-bytes"),
        (
            {"prompt": "\n\nHuman: a\n\nAssistant: b" * 1001 + "\n\nHuman: c\n\nAssistant:"},
            "--max-turns",
        ),
    ],
)
def test_each_request_limit_is_a_400_naming_its_flag(fields, words):
    with pytest.raises(RequestRejected) as info:
        RequestLimits().check(_request(**fields))
    assert info.value.status == 400 and words in info.value.message


def test_requests_within_the_limits_pass():
    RequestLimits().check(
        _request(stop_sequences=["s"] * 64, prompt="\n\nHuman: " + "x" * 500_000 + "\n\nAssistant:")
    )


def test_importing_the_package_and_loading_the_extension_import_no_server_stack():
    # With an endpoint configured (without one, %load_ext warms the built-in model up on a
    # background thread: tests/test_local_embedded.py).
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env["ANTHROPIC_BASE_URL"] = "http://127.0.0.1:9"
    code = (
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "import jupyter_complete, jupyter_complete.client, jupyter_complete.local\n"
        "InteractiveShell.instance().run_line_magic('load_ext', 'jupyter_complete')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules}\n"
        "             & {'uvicorn', 'starlette', 'h11', 'anyio', 'llama_cpp'}))\n"
    )
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "PYTHONPATH": str(repo)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
