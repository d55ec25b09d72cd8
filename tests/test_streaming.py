"""Stream parsing: SSE bytes in any chunking -> the same Completion events, nothing lost."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
from fixtures_replay import (
    LAST_CHUNK,
    Close,
    ReplayServer,
    Script,
    Sleep,
    Wait,
    chunk,
    completion_event,
    final_event,
    head,
    sse,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_complete import Client, errors
from jupyter_complete.streaming import CompletionStream

PROMPT = "\n\nHuman: hi\n\nAssistant:"


class ChunkedRaw:
    """A urllib3-like body whose read1 hands out pre-cut chunks (for fast chunking tests)."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = list(chunks)

    def read1(self, _n: int, decode_content: bool = False) -> bytes:
        return self._chunks.pop(0) if self._chunks else b""

    def close(self) -> None:
        self._chunks = []


def stream_from_chunks(chunks: list[bytes]) -> CompletionStream:
    response = requests.Response()
    response.status_code = 200
    response.raw = ChunkedRaw(chunks)  # type: ignore[assignment]
    return CompletionStream(response, started=time.monotonic())


def deltas(chunks: list[bytes]) -> list[tuple[str, str | None]]:
    return [(e.completion, e.stop_reason) for e in stream_from_chunks(chunks)]


STREAM = (
    sse("ping", {"type": "ping"})
    + completion_event(" Hello", id="compl_1", stop=None, log_id="compl_1")
    + completion_event(" wörld ✓ 日本")
    + sse("ping", {"type": "ping"})
    + sse("content_block_whatever", {"x": 1})
    + completion_event("\u2028line sep")
    + final_event("stop_sequence")
)
EXPECTED = [
    (" Hello", None),
    (" wörld ✓ 日本", None),
    ("\u2028line sep", None),
    ("", "stop_sequence"),
]


def test_a_whole_stream_in_one_chunk_gives_every_delta_and_the_final_stop_reason() -> None:
    assert deltas([STREAM]) == EXPECTED


def test_a_stream_delivered_one_byte_at_a_time_gives_the_same_events() -> None:
    assert deltas([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


@pytest.mark.parametrize("eol", ["\r\n", "\r", "\n"])
def test_crlf_cr_and_lf_line_endings_all_parse(eol: str) -> None:
    raw = (
        completion_event(" a", eol=eol)
        + completion_event(" b", eol=eol)
        + final_event("max_tokens", eol=eol)
    )
    assert deltas([raw]) == [(" a", None), (" b", None), ("", "max_tokens")]
    assert deltas([raw[i : i + 3] for i in range(0, len(raw), 3)]) == [
        (" a", None),
        (" b", None),
        ("", "max_tokens"),
    ]


@settings(max_examples=150, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=40),
    eol=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_every_chunking_of_a_valid_stream_yields_the_same_events(cuts: list[int], eol: str) -> None:
    raw = STREAM.replace(b"\n", eol.encode())
    points = sorted({min(c, len(raw) - 1) for c in cuts})
    pieces = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True) if raw[a:b]]
    assert deltas(pieces) == EXPECTED


def test_utf8_characters_split_across_chunks_are_reassembled() -> None:
    raw = completion_event("日本語") + final_event()
    cut = raw.index("本".encode()) + 1  # inside the three-byte character
    assert "".join(d for d, _ in deltas([raw[:cut], raw[cut:]])) == "日本語"


def test_error_event_without_top_level_type_raises_the_class_of_its_error_type() -> None:
    raw = completion_event(" Hello") + sse(
        "error", {"error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    stream = stream_from_chunks([raw])
    with pytest.raises(errors.OverloadedError) as info:
        list(stream)
    assert info.value.partial is not None and info.value.partial.completion == " Hello"
    assert info.value.type == "overloaded_error" and info.value.status_code == 529


def test_error_event_with_the_full_envelope_raises_the_class_of_its_error_type() -> None:
    raw = sse(
        "error", {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    )
    with pytest.raises(errors.RateLimitError, match="slow down"):
        list(stream_from_chunks([raw]))


def test_a_stream_that_ends_without_a_stop_reason_raises_with_the_partial_text() -> None:
    raw = completion_event(" one") + completion_event(" two")
    with pytest.raises(errors.APIConnectionError, match="before its final event") as info:
        list(stream_from_chunks([raw]))
    assert info.value.partial is not None and info.value.partial.completion == " one two"


def test_a_stream_cut_inside_an_event_is_a_connection_error_not_a_json_error() -> None:
    raw = completion_event(" kept") + completion_event(" lost")[:-10]
    with pytest.raises(errors.APIConnectionError) as info:
        list(stream_from_chunks([raw]))
    assert info.value.partial is not None and info.value.partial.completion == " kept"


def test_malformed_json_in_an_event_raises_a_validation_error_keeping_text() -> None:
    raw = completion_event(" ok") + b"event: completion\ndata: {not json\n\n"
    with pytest.raises(errors.APIResponseValidationError) as info:
        list(stream_from_chunks([raw]))
    assert info.value.partial is not None and info.value.partial.completion == " ok"
    assert "\n" not in str(info.value)


def test_text_stream_yields_only_non_empty_deltas_and_final_completion_joins_them() -> None:
    stream = stream_from_chunks([STREAM])
    assert list(stream.text_stream) == [" Hello", " wörld ✓ 日本", "\u2028line sep"]
    final = stream.get_final_completion()
    assert final.completion == " Hello wörld ✓ 日本\u2028line sep"
    assert final.stop_reason == "stop_sequence" and final.id == "compl_1"


def test_events_after_the_final_stop_reason_are_not_read() -> None:
    raw = completion_event(" a") + final_event() + completion_event(" ghost")
    assert deltas([raw]) == [(" a", None), ("", "stop_sequence")]


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
def test_each_event_reaches_the_caller_before_the_server_sends_the_next(
    replay: ReplayServer, chunked: bool
) -> None:
    # The server holds the second event until the client has reported the first, so a
    # client that buffers (waits for more bytes) would deadlock until the Wait times out.
    got_first = threading.Event()
    hold = Wait(got_first, timeout=5.0)
    first, second = completion_event(" first"), completion_event(" second") + final_event()
    steps = [
        head(chunked=chunked),
        chunk(first) if chunked else first,
        hold,
        chunk(second) if chunked else second,
        LAST_CHUNK if chunked else Close(),
    ]
    replay.enqueue(Script(steps))
    client = Client(base_url=replay.url, api_key="k", max_retries=0)
    seen: list[str] = []
    with client.completions.create(prompt=PROMPT, stream=True) as stream:
        for event in stream:
            seen.append(event.completion)
            if event.completion == " first":
                assert hold.satisfied is None  # the server is still holding event two
                got_first.set()
    assert seen == [" first", " second", ""]
    assert hold.satisfied is True


def test_events_trickled_byte_by_byte_over_a_socket_arrive_intact(
    replay: ReplayServer,
) -> None:
    body = completion_event(" sløw") + final_event()
    steps: list[bytes | Sleep | Close] = [head(chunked=False)]
    for i in range(len(body)):
        steps += [body[i : i + 1], Sleep(0.0005)]
    replay.enqueue(Script([*steps, Close()]))
    client = Client(base_url=replay.url, api_key="k", max_retries=0)
    final = client.completions.create(prompt=PROMPT, stream=True).get_final_completion()
    assert final.completion == " sløw" and final.stop_reason == "stop_sequence"


def test_breaking_out_of_the_loop_closes_the_connection(replay: ReplayServer) -> None:
    never = threading.Event()
    replay.enqueue(
        Script(
            [head(chunked=True), chunk(completion_event(" a")), Wait(never, timeout=10), LAST_CHUNK]
        )
    )
    client = Client(base_url=replay.url, api_key="k", max_retries=0)
    stream = client.completions.create(prompt=PROMPT, stream=True)
    for _ in stream:
        break
    stream.close()
    assert stream.closed
    never.set()
    assert replay.wait_idle()


def test_an_abandoned_stream_is_closed_by_garbage_collection(replay: ReplayServer) -> None:
    import gc

    never = threading.Event()
    replay.enqueue(
        Script(
            [head(chunked=True), chunk(completion_event(" a")), Wait(never, timeout=10), LAST_CHUNK]
        )
    )
    client = Client(base_url=replay.url, api_key="k", max_retries=0)
    stream = client.completions.create(prompt=PROMPT, stream=True)
    next(iter(stream))
    del stream
    gc.collect()
    never.set()
    assert replay.wait_idle()


def test_a_stalled_stream_raises_a_timeout_carrying_the_partial_text(
    replay: ReplayServer,
) -> None:
    never = threading.Event()
    replay.enqueue(
        Script(
            [head(chunked=True), chunk(completion_event(" before stall")), Wait(never, timeout=5)]
        )
    )
    client = Client(base_url=replay.url, api_key="k", max_retries=0, timeout=0.3)
    with pytest.raises(errors.APITimeoutError) as info:
        client.completions.create(prompt=PROMPT, stream=True).get_final_completion()
    never.set()
    assert info.value.partial is not None
    assert info.value.partial.completion == " before stall"


def test_sse_comment_lines_and_multi_line_data_are_handled() -> None:
    payload = json.dumps({"completion": " x", "stop_reason": None})
    raw = b": keep-alive comment\n" + b"event: completion\ndata: " + payload.encode() + b"\n\n"
    raw += final_event()
    assert deltas([raw]) == [(" x", None), ("", "stop_sequence")]
