"""What real wires deliver: compression, byte-order marks, proxies, redirects, bombs, leaks.

Each test is one regression of the client's wire rules, run for both transports
(``/v1/complete`` and ``/v1/messages``) and, where both exist, streaming and not, against the
replay server (a real TCP server on loopback that sends the exact bytes a gateway or proxy
sends).
"""

from __future__ import annotations

import gc
import json
import socket
import struct
import threading
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from fixtures_replay import (
    LAST_CHUNK,
    Close,
    ReplayServer,
    Script,
    Wait,
    chunk,
    completion_event,
    final_event,
    head,
    json_script,
    sse,
)

from jupyter_complete import Client, errors
from jupyter_complete import _constants as C

PROMPT = "\n\nHuman: What is the capital of France?\n\nAssistant:"
APIS = ["complete", "messages"]
MiB = 1024 * 1024


# -- answers in either transport's words ------------------------------------------------------


def text_events(api: str, texts: list[str]) -> list[bytes]:
    """One event per text delta, then the final event(s), in ``api``'s protocol."""
    if api == "complete":
        return [completion_event(t) for t in texts] + [final_event()]
    start = sse(
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "m",
                "content": [],
                "stop_reason": None,
                "usage": {"input_tokens": 5, "output_tokens": 1},
            },
        },
    )
    deltas = [
        sse(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}},
        )
        for t in texts
    ]
    end = [
        sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 3},
            },
        ),
        sse("message_stop", {"type": "message_stop"}),
    ]
    return [start, *deltas, *end]


def without_end(api: str, events: list[bytes]) -> list[bytes]:
    """``events`` minus the final event(s): a stream that has not ended yet."""
    return events[:-1] if api == "complete" else events[:-2]


def whole_body(api: str, text: str) -> dict[str, Any]:
    if api == "complete":
        return {
            "type": "completion",
            "completion": text,
            "stop_reason": "stop_sequence",
            "model": "m",
        }
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 3},
    }


def compressor(coding: str) -> Any:
    return zlib.compressobj(wbits=31 if coding == "gzip" else 15)


def compressed_events(events: list[bytes], coding: str) -> list[bytes]:
    """Each event compressed and sync-flushed on its own, as a compressing gateway sends it."""
    z = compressor(coding)
    out = [z.compress(e) + z.flush(zlib.Z_SYNC_FLUSH) for e in events]
    out.append(z.flush())
    return out


def stream_script(
    pieces: list[bytes], *, chunked: bool = True, headers: dict[str, str] | None = None
) -> Script:
    steps: list[Any] = [head(200, headers, chunked=chunked)]
    steps += [chunk(p) if chunked else p for p in pieces if p]
    steps.append(LAST_CHUNK if chunked else Close())
    return Script(steps)


def make_client(replay: ReplayServer, api: str, **kw: Any) -> Client:
    kw.setdefault("max_retries", 0)
    return Client(base_url=replay.url, api_key="test-key", api=api, **kw)  # type: ignore[arg-type]


def run(client: Client, stream: bool) -> str:
    if stream:
        return (
            client.completions.create(prompt=PROMPT, model="m", stream=True)
            .get_final_completion()
            .completion
        )
    return client.completions.create(prompt=PROMPT, model="m").completion


# -- 1. compressed bodies -------------------------------------------------------------------


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
@pytest.mark.parametrize("api", APIS)
def test_a_compressed_event_stream_is_decoded(
    replay: ReplayServer, api: str, chunked: bool, coding: str
) -> None:
    pieces = compressed_events(text_events(api, [" Paris", " is the capital."]), coding)
    replay.enqueue(stream_script(pieces, chunked=chunked, headers={"content-encoding": coding}))
    assert run(make_client(replay, api), stream=True) == " Paris is the capital."
    assert replay.received[0].headers["accept-encoding"] == C.ACCEPT_ENCODING


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
@pytest.mark.parametrize("api", APIS)
def test_a_compressed_json_answer_is_decoded(replay: ReplayServer, api: str, coding: str) -> None:
    z = compressor(coding)
    raw = z.compress(json.dumps(whole_body(api, " Paris.")).encode()) + z.flush()
    replay.enqueue(
        Script(
            [
                head(
                    200,
                    {"content-encoding": coding},
                    content_type="application/json",
                    length=len(raw),
                )
                + raw
            ]
        )
    )
    assert run(make_client(replay, api), stream=False) == " Paris."


@pytest.mark.parametrize("header", ["gzip, identity", "identity, gzip", "x-gzip, identity"])
@pytest.mark.parametrize("stream", [True, False], ids=["streaming", "whole"])
def test_identity_listed_beside_a_real_coding_means_no_extra_coding(
    replay: ReplayServer, stream: bool, header: str
) -> None:
    # "identity" is the name for no coding; urllib3 decodes it inside a list as deflate,
    # which made a good gzip body look corrupt.
    if stream:
        pieces = compressed_events(text_events("complete", [" Paris."]), "gzip")
        replay.enqueue(stream_script(pieces, headers={"content-encoding": header}))
    else:
        z = compressor("gzip")
        raw = z.compress(json.dumps(whole_body("complete", " Paris.")).encode()) + z.flush()
        replay.enqueue(
            Script(
                [
                    head(
                        200,
                        {"content-encoding": header},
                        content_type="application/json",
                        length=len(raw),
                    )
                    + raw
                ]
            )
        )
    assert run(make_client(replay, "complete"), stream) == " Paris."


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
@pytest.mark.parametrize("api", APIS)
def test_each_gzip_event_reaches_the_caller_before_the_server_sends_the_next(
    replay: ReplayServer, api: str, chunked: bool
) -> None:
    # As the arrival test in test_streaming: the server holds the rest until the client has
    # reported the first text, so a client that waits for more compressed bytes deadlocks.
    events = text_events(api, [" first", " second"])
    split = events.index(next(e for e in events if b"first" in e)) + 1
    z = compressor("gzip")
    before = b"".join(z.compress(e) for e in events[:split]) + z.flush(zlib.Z_SYNC_FLUSH)
    after = b"".join(z.compress(e) for e in events[split:]) + z.flush()
    got_first = threading.Event()
    hold = Wait(got_first, timeout=5.0)
    steps: list[Any] = [
        head(200, {"content-encoding": "gzip"}, chunked=chunked),
        chunk(before) if chunked else before,
        hold,
        chunk(after) if chunked else after,
        LAST_CHUNK if chunked else Close(),
    ]
    replay.enqueue(Script(steps))
    seen = []
    with make_client(replay, api).completions.create(
        prompt=PROMPT, model="m", stream=True
    ) as stream:
        for text in stream.text_stream:
            seen.append(text)
            if text == " first":
                assert hold.satisfied is None  # the server still holds the second event
                got_first.set()
    assert seen == [" first", " second"]
    assert hold.satisfied is True


@pytest.fixture(scope="module")
def gzip_gigabyte() -> bytes:
    """About 1 MB of gzip that inflates to 1 GiB of one repeated completion event.

    One gzip member, built without deflating 1 GiB: after a full flush deflate starts afresh
    (RFC 1951 blocks refer to no earlier data), so every later copy of the event compresses
    to the same bytes. Then the final empty fixed-Huffman block (``03 00``) and the member's
    trailer, CRC-32 and size of all 1 GiB (RFC 1952 2.3.1).
    """
    one = completion_event("a" * (MiB - 100))
    z = compressor("gzip")
    first = z.compress(one) + z.flush(zlib.Z_FULL_FLUSH)
    again = z.compress(one) + z.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(1024):
        crc = zlib.crc32(one, crc)
    trailer = struct.pack("<II", crc, (1024 * len(one)) & 0xFFFFFFFF)
    return first + again * 1023 + b"\x03\x00" + trailer


@pytest.mark.parametrize("stream", [True, False], ids=["streaming", "whole"])
def test_a_small_gzip_body_that_inflates_to_a_gigabyte_stops_at_the_documented_limit(
    replay: ReplayServer, gzip_gigabyte: bytes, stream: bool
) -> None:
    assert len(gzip_gigabyte) < 8 * MiB
    ctype = "text/event-stream" if stream else "application/json"
    replay.enqueue(
        Script(
            [
                head(
                    200, {"content-encoding": "gzip"}, content_type=ctype, length=len(gzip_gigabyte)
                )
                + gzip_gigabyte
            ]
        )
    )
    with pytest.raises(errors.ResponseTooLargeError) as info:
        run(make_client(replay, "complete"), stream)
    assert info.value.limit == C.MAX_RESPONSE_BYTES
    assert "MAX_RESPONSE_BYTES" in str(info.value) and "64 MiB" in str(info.value)
    if stream:  # what arrived before the limit is kept, as for any other failure
        assert info.value.partial is not None
        assert 0 < len(info.value.partial.completion) <= C.MAX_RESPONSE_BYTES


def test_a_content_encoding_the_client_did_not_ask_for_is_a_clear_error(
    replay: ReplayServer,
) -> None:
    replay.enqueue(
        stream_script(text_events("complete", [" x"]), headers={"content-encoding": "compress"})
    )
    with pytest.raises(errors.APIResponseValidationError, match="compress") as info:
        run(make_client(replay, "complete"), stream=True)
    assert "gzip, deflate" in str(info.value)


# -- 2. a byte-order mark -------------------------------------------------------------------


@pytest.mark.parametrize("split_bom", [False, True], ids=["bom-whole", "bom-split"])
@pytest.mark.parametrize("api", APIS)
def test_a_byte_order_mark_before_the_first_event_keeps_that_event(
    replay: ReplayServer, api: str, split_bom: bool
) -> None:
    events = text_events(api, [" Paris", " is the capital."])
    first = b"\xef\xbb\xbf" + events[0]
    pieces = [first[:2], first[2:], *events[1:]] if split_bom else [first, *events[1:]]
    replay.enqueue(stream_script(pieces))
    final = (
        make_client(replay, api)
        .completions.create(prompt=PROMPT, model="m", stream=True)
        .get_final_completion()
    )
    assert final.completion == " Paris is the capital."
    if api == "messages":  # the first event is message_start: its id and usage are kept
        assert final.id == "msg_1" and final.usage == {"input_tokens": 5, "output_tokens": 3}


# -- 4. abandoned streams -------------------------------------------------------------------


def first_text_then_hold(api: str, never: threading.Event) -> Script:
    events = text_events(api, [" first", " never read"])
    split = events.index(next(e for e in events if b"first" in e)) + 1
    return Script(
        [
            head(200, chunked=True),
            *(chunk(e) for e in events[:split]),
            Wait(never, timeout=20),
            *(chunk(e) for e in events[split:]),
            LAST_CHUNK,
        ]
    )


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def abandon_via_text_stream(client: Client) -> str:
    for text in client.completions.create(prompt=PROMPT, model="m", stream=True).text_stream:
        return text
    return ""


def abandon_via_iterator(client: Client) -> str:
    stream = client.completions.create(prompt=PROMPT, model="m", stream=True)
    for event in stream:
        if event.completion:
            return event.completion
    return ""


def abandon_via_next(client: Client) -> str:
    stream = client.completions.create(prompt=PROMPT, model="m", stream=True)
    it = iter(stream)
    while True:
        event = next(it)
        if event.completion:
            return event.completion


@pytest.mark.parametrize(
    "abandon",
    [abandon_via_text_stream, abandon_via_iterator, abandon_via_next],
    ids=["text_stream", "for", "next"],
)
@pytest.mark.parametrize("api", APIS)
def test_an_abandoned_stream_releases_its_connection_by_reference_counting_alone(
    replay: ReplayServer, no_gc: None, api: str, abandon: Any
) -> None:
    never = threading.Event()
    replay.enqueue(first_text_then_hold(api, never))
    client = make_client(replay, api)
    assert abandon(client) == " first"
    # The server sends the rest, then waits for the client's FIN: a client that still holds
    # the connection never sends it. gc is disabled: only reference counting can close it.
    never.set()
    assert replay.wait_idle(5), "the abandoned stream kept its connection open"
    assert gc.isenabled() is False


@pytest.mark.parametrize("api", APIS)
def test_a_stream_that_is_still_referenced_stays_open_after_its_iterator_is_dropped(
    replay: ReplayServer, no_gc: None, api: str
) -> None:
    never = threading.Event()
    replay.enqueue(first_text_then_hold(api, never))
    client = make_client(replay, api)
    stream = client.completions.create(prompt=PROMPT, model="m", stream=True)
    next(t for t in stream.text_stream)
    assert not stream.closed
    never.set()
    assert stream.get_final_completion().completion == " first never read"
    del stream
    assert replay.wait_idle(5)


# -- 6. a proxy's answer read as ours -------------------------------------------------------


PROXY_ANSWERS = {
    "html-403": (
        403,
        "text/html",
        b"<html><head><title>403 Forbidden</title></head><body>"
        b"<h1>Forbidden</h1><p>Request blocked by corporate proxy.</p></body></html>",
    ),
    "litellm-400": (
        400,
        "application/json",
        json.dumps(
            {
                "error": {
                    "message": "Authentication Error, Invalid proxy server token passed.",
                    "type": "token_not_found_in_db",
                    "param": "key",
                    "code": "400",
                }
            }
        ).encode(),
    ),
    "text-400": (400, "text/plain", b"Bad Request: header too large"),
}


@pytest.mark.parametrize("stream", [True, False], ids=["streaming", "whole"])
@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("answer", list(PROXY_ANSWERS))
def test_a_proxys_own_error_names_the_server_that_answered_and_what_it_said(
    replay: ReplayServer, api: str, stream: bool, answer: str
) -> None:
    status, ctype, raw = PROXY_ANSWERS[answer]
    replay.enqueue(Script([head(status, content_type=ctype, length=len(raw)) + raw]))
    with pytest.raises(errors.APIStatusError) as info:
        run(make_client(replay, api), stream)
    text = str(info.value)
    assert f"127.0.0.1:{replay.port}" in text
    assert any(w in text for w in ("Forbidden", "Invalid proxy server token", "too large"))
    # No claim the response does not support:
    assert "Fix the prompt" not in text and "may not use this model" not in text
    assert info.value.status_code == status and "\n" not in text


@pytest.mark.parametrize("api", APIS)
def test_an_api_error_envelope_keeps_the_hint_for_its_type(replay: ReplayServer, api: str) -> None:
    replay.enqueue(
        json_script(
            400,
            {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": "temperature: range: 0..1"},
            },
        )
    )
    with pytest.raises(errors.BadRequestError, match="Fix the prompt or parameters"):
        run(make_client(replay, api), False)


@pytest.mark.parametrize("stream", [True, False], ids=["streaming", "whole"])
@pytest.mark.parametrize("api", APIS)
def test_an_api_error_envelope_after_a_byte_order_mark_is_still_read_as_one(
    replay: ReplayServer, api: str, stream: bool
) -> None:
    raw = (
        b"\xef\xbb\xbf"
        + json.dumps(
            {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": "temperature: range: 0..1"},
            }
        ).encode()
    )
    replay.enqueue(Script([head(400, content_type="application/json", length=len(raw)) + raw]))
    with pytest.raises(errors.BadRequestError) as info:
        run(make_client(replay, api), stream)
    assert info.value.type == "invalid_request_error"
    assert "Fix the prompt or parameters" in str(info.value)
    assert "\ufeff" not in str(info.value)


# -- 7. redirects ---------------------------------------------------------------------------


class Listener:
    """A TCP listener on another loopback address that records whoever connects."""

    def __init__(self, host: str = "127.0.0.2") -> None:
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.received: list[bytes] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(1)
            try:
                self.received.append(conn.recv(65536))
            except OSError:
                self.received.append(b"")
            conn.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def other_host() -> Iterator[Listener]:
    listener = Listener()
    yield listener
    listener.close()


@pytest.mark.parametrize("stream", [True, False], ids=["streaming", "whole"])
@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_host_is_not_followed_and_the_error_says_where(
    replay: ReplayServer, other_host: Listener, status: int, api: str, stream: bool
) -> None:
    path = "/v1/complete" if api == "complete" else "/v1/messages"
    location = f"{other_host.url}{path}?sig=SECRET123"
    replay.enqueue(
        Script([head(status, {"location": location}, content_type="text/plain", length=0)])
    )
    with pytest.raises(errors.APIStatusError) as info:
        run(make_client(replay, api), stream)
    text = str(info.value)
    assert info.value.status_code == status
    assert f"{other_host.url}{path}" in text and "not followed" in text
    assert "SECRET123" not in text
    assert f"use {other_host.url} as the base URL" in text
    threading.Event().wait(0.3)
    assert other_host.received == [], "the client connected to the host it was sent to"
    assert len(replay.received) == 1


@pytest.mark.parametrize(
    "location",
    ["http://127.0.0.1:99999/v1/complete", "http://127.0.0.1:port/v1/complete", "http://[::1/x"],
    ids=["port-out-of-range", "port-not-a-number", "broken-ipv6"],
)
def test_a_redirect_to_a_location_that_is_not_a_valid_url_is_still_a_redirect_error(
    replay: ReplayServer, location: str
) -> None:
    # The Location header is whatever the server sent; parsing it must not turn the
    # redirect error into a bare ValueError from urllib.parse.
    replay.enqueue(Script([head(302, {"location": location}, content_type="text/plain", length=0)]))
    with pytest.raises(errors.APIStatusError) as info:
        run(make_client(replay, "complete"), False)
    text = str(info.value)
    assert info.value.status_code == 302 and "not followed" in text
    assert "not a valid URL" in text and "\n" not in text


# -- 8. sizes -------------------------------------------------------------------------------


def test_a_json_body_larger_than_the_limit_stops_being_read_at_the_limit(
    replay: ReplayServer,
) -> None:
    declared = 512 * MiB
    sent = b'{"completion": "' + b"a" * (C.MAX_RESPONSE_BYTES + MiB)
    replay.enqueue(
        Script([head(200, content_type="application/json", length=declared), sent, Close()])
    )
    with pytest.raises(errors.ResponseTooLargeError) as info:
        run(make_client(replay, "complete"), False)
    assert info.value.setting == "MAX_RESPONSE_BYTES" and "response body" in str(info.value)


@pytest.mark.parametrize("api", APIS)
def test_an_event_line_that_never_ends_stops_at_the_line_limit_keeping_the_text(
    replay: ReplayServer, api: str
) -> None:
    events = text_events(api, [" kept"])
    endless = b"data: " + b"x" * (C.MAX_EVENT_BYTES + MiB)
    replay.enqueue(stream_script([*without_end(api, events), endless], chunked=False))
    with pytest.raises(errors.ResponseTooLargeError) as info:
        run(make_client(replay, api), True)
    assert info.value.setting == "MAX_EVENT_BYTES" and "line" in str(info.value)
    assert info.value.partial is not None and info.value.partial.completion == " kept"


def test_an_event_of_many_data_lines_stops_at_the_event_limit(replay: ReplayServer) -> None:
    line = b"data: " + b"y" * MiB + b"\n"
    big = b"event: completion\n" + line * (C.MAX_EVENT_BYTES // MiB + 1)
    replay.enqueue(stream_script([big], chunked=True))
    with pytest.raises(errors.ResponseTooLargeError) as info:
        run(make_client(replay, "complete"), True)
    assert info.value.setting == "MAX_EVENT_BYTES" and "event" in str(info.value)


def test_an_error_body_is_read_only_up_to_its_limit_and_still_reported(
    replay: ReplayServer,
) -> None:
    page = b"<html>" + b"Service Unavailable " * (C.MAX_ERROR_BODY_BYTES // 10)
    replay.enqueue(
        Script([head(403, content_type="text/html", length=len(page) * 100), page, Close()])
    )
    with pytest.raises(errors.PermissionDeniedError, match="Service Unavailable"):
        run(make_client(replay, "complete"), False)


# -- 9. errors that hide or leak ------------------------------------------------------------


OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


@pytest.mark.parametrize("stream", [True, False], ids=["streaming", "whole"])
@pytest.mark.parametrize("api", APIS)
def test_an_error_envelope_with_status_200_is_an_error(
    replay: ReplayServer, api: str, stream: bool
) -> None:
    replay.enqueue(json_script(200, OVERLOADED))
    with pytest.raises(errors.OverloadedError, match="Overloaded") as info:
        run(make_client(replay, api), stream)
    assert info.value.type == "overloaded_error"


@pytest.mark.parametrize("api", APIS)
def test_text_that_arrived_in_the_same_read_as_a_bad_event_is_kept(
    replay: ReplayServer, api: str
) -> None:
    # One write: whole good events, then an event that is not UTF-8. The good text was
    # received before the bad bytes, so it must be in the error's partial.
    events = text_events(api, [" kept"])
    good = events[: events.index(next(e for e in events if b"kept" in e)) + 1]
    bad = b'event: completion\ndata: {"completion": "\xff\xfe"}\n\n'
    replay.enqueue(Script([head(200, chunked=True), chunk(b"".join(good) + bad), LAST_CHUNK]))
    with pytest.raises(errors.APIResponseValidationError, match="not UTF-8") as info:
        run(make_client(replay, api), True)
    assert info.value.partial is not None and info.value.partial.completion == " kept"


@pytest.mark.parametrize("api", APIS)
def test_an_error_envelope_inside_a_data_event_is_an_error(replay: ReplayServer, api: str) -> None:
    name = "completion" if api == "complete" else "content_block_delta"
    events = text_events(api, [" kept"])
    replay.enqueue(stream_script([*without_end(api, events), sse(name, OVERLOADED)]))
    with pytest.raises(errors.OverloadedError) as info:
        run(make_client(replay, api), True)
    assert info.value.partial is not None and info.value.partial.completion == " kept"


@pytest.mark.parametrize("api", APIS)
def test_an_error_envelope_in_an_event_with_no_event_name_is_an_error(
    replay: ReplayServer, api: str
) -> None:
    # OpenAI-style gateways (LiteLLM) report a mid-stream failure as a bare "data:" line,
    # which the event-stream rules dispatch as type "message".
    events = text_events(api, [" kept"])
    bare = b"data: " + json.dumps(OVERLOADED).encode() + b"\n\n"
    replay.enqueue(stream_script([*without_end(api, events), bare]))
    with pytest.raises(errors.OverloadedError) as info:
        run(make_client(replay, api), True)
    assert info.value.partial is not None and info.value.partial.completion == " kept"


@pytest.mark.parametrize("api", APIS)
def test_a_whole_json_answer_sent_for_a_stream_request_is_read(
    replay: ReplayServer, api: str
) -> None:
    replay.enqueue(json_script(200, whole_body(api, " all at once")))
    assert run(make_client(replay, api), True) == " all at once"


SECRETS = ("hunter2", "TOKEN42", "alice")


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, (secret, text)


@pytest.mark.parametrize("stream", [True, False], ids=["streaming", "whole"])
@pytest.mark.parametrize("api", APIS)
def test_credentials_in_the_base_url_never_show_and_the_path_goes_before_the_query(
    replay: ReplayServer, api: str, stream: bool
) -> None:
    base = f"http://alice:hunter2@127.0.0.1:{replay.port}/gateway?token=TOKEN42"
    replay.enqueue(
        json_script(200, whole_body(api, " ok"))
        if not stream
        else stream_script(text_events(api, [" ok"])),
        json_script(
            429, {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
        ),
        Script([head(502, content_type="text/html", length=20) + b"<h1>Bad gw</h1>" + b" " * 5]),
    )
    client = Client(base_url=base, api_key="k", api=api, max_retries=0)  # type: ignore[arg-type]
    assert run(client, stream) == " ok"
    path = "/v1/complete" if api == "complete" else "/v1/messages"
    sent = replay.received[0]
    assert sent.path == f"/gateway{path}?token=TOKEN42"
    assert sent.headers["authorization"].startswith("Basic ")
    assert sent.headers["x-api-key"] == "k"
    texts = [repr(client), client.display_url]
    for _ in range(2):
        with pytest.raises(errors.APIStatusError) as info:
            run(client, stream)
        texts += [str(info.value), repr(info.value), info.value.message]
    closed = Client(
        base_url="http://alice:hunter2@127.0.0.1:1/x?token=TOKEN42", api_key="k", max_retries=0
    )
    with pytest.raises(errors.APIConnectionError) as conn:
        closed.completions.create(prompt=PROMPT)
    chain: list[str] = []
    e: BaseException | None = conn.value
    while e is not None:
        chain.append(str(e))
        e = e.__cause__ or e.__context__
    texts += [str(conn.value), repr(closed), *chain]
    assert_no_secret(*texts)
    assert f"127.0.0.1:{replay.port}/gateway" in client.display_url


@pytest.mark.parametrize(
    "base",
    [
        "http://alice:hunter2@127.0.0.1:99999/x?token=TOKEN42",
        "http://alice:hunter2@127.0.0.1:abc/x?token=TOKEN42",
        "http://alice:hunter2@[::1/x?token=TOKEN42",
    ],
    ids=["port-out-of-range", "port-not-a-number", "broken-ipv6"],
)
def test_a_base_url_with_a_bad_port_or_host_is_a_one_line_parameter_error(base: str) -> None:
    with pytest.raises(errors.InvalidParameterError) as info:
        Client(base_url=base, api_key="k", max_retries=0).completions.create(prompt=PROMPT)
    text = str(info.value)
    assert info.value.param == "base_url" and "\n" not in text
    assert_no_secret(text, repr(info.value))
