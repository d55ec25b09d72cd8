"""Fault suite: a misbehaving server on loopback, and what the caller gets each time.

Every fault is checked for the same things: the typed error; a one-line message that says
what to do; the partial text equal to everything the server sent before the fault; no wait
past the timeout (and pytest-timeout on every test); no retry once an event was sent; no
connection left open by an error path (the replay server sees every socket closed); and,
for retries, the delays chosen (Retry-After exactly, else backoff within its jitter).
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from fixtures_faults import (
    SleepRecorder,
    assert_backoff,
    assert_no_connection_held,
    assert_reported_well,
    refused_url,
    run,
    stream_body,
)
from fixtures_replay import (
    LAST_CHUNK,
    Close,
    ReplayServer,
    Reset,
    Script,
    Step,
    Wait,
    chunk,
    completion_event,
    error_script,
    final_event,
    head,
    json_script,
    sse,
    sse_script,
)

from jupyter_complete import errors

pytestmark = pytest.mark.timeout(30)

OK_BODY = {
    "type": "completion",
    "id": "compl_1",
    "completion": " fine",
    "model": "replay-1",
    "stop_reason": "stop_sequence",
}
NGINX_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.24.0</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
NGINX_413 = (
    b"<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n"
    b"<center><h1>413 Request Entity Too Large</h1></center>\r\n"
    b"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
#: Held by stalled scripts until the test has its error; set afterwards so the server's
#: thread finishes at once instead of sleeping out a long stall.
Release = Callable[[], None]


def html(status: int, page: bytes, headers: dict[str, str] | None = None) -> Script:
    return Script([head(status, headers, content_type="text/html", length=len(page)) + page])


def ok_stream(*texts: str) -> Script:
    return sse_script([completion_event(t) for t in texts] + [final_event()])


@dataclass
class Fault:
    """One scripted fault and everything the caller must observe."""

    scripts: Callable[[threading.Event], list[Script]]
    error: type[errors.APIError] | None
    #: Text the caller must end with: the partial text on error, the result on success.
    text: str
    requests: int
    stream: bool = True
    client: dict[str, Any] = field(default_factory=dict)
    #: "backoff", a list of exact delays, or None for "no retry sleeps at all".
    delays: str | list[float] | None = None
    #: Upper bound on the whole call, seconds.
    within: float = 5.0
    #: Lower bound: proves a stall was detected by the timeout, not by something else.
    at_least: float = 0.0
    advice: str = ""


def first_events_then(*steps: Step, chunked: bool = True) -> Script:
    """Two good events (" one", " two"), then the given steps."""
    events = [completion_event(" one"), completion_event(" two")]
    return Script([head(chunked=chunked), *[chunk(e) if chunked else e for e in events], *steps])


FAULTS: dict[str, Fault] = {
    "reset before headers, every attempt": Fault(
        lambda _: [Script([Reset()])] * 3, errors.APIConnectionError, "", 3, delays="backoff"
    ),
    "reset before headers, then success": Fault(
        lambda _: [Script([Reset()]), ok_stream(" fine")], None, " fine", 2, delays="backoff"
    ),
    "closed before headers, every attempt": Fault(
        lambda _: [Script([Close()])] * 3, errors.APIConnectionError, "", 3, delays="backoff"
    ),
    "not HTTP at all, every attempt": Fault(
        lambda _: [Script([b"SSH-2.0-OpenSSH_9.6\r\n", Close()])] * 3,
        errors.APIConnectionError,
        "",
        3,
        delays="backoff",
    ),
    "headers cut in half, then success": Fault(
        lambda _: [Script([head()[:20], Reset()]), ok_stream(" fine")],
        None,
        " fine",
        2,
        delays="backoff",
    ),
    "stall before headers past the read timeout, every attempt": Fault(
        lambda ev: [Script([Wait(ev)])] * 3,
        errors.APITimeoutError,
        "",
        3,
        client={"timeout": 0.3},
        delays="backoff",
        within=3 * 0.3 + 2,
        at_least=3 * 0.3,
        advice="timeout",
    ),
    "stall mid-stream past the read timeout": Fault(
        lambda ev: [first_events_then(Wait(ev), chunk(final_event()), LAST_CHUNK)],
        errors.APITimeoutError,
        " one two",
        1,
        client={"timeout": 0.3},
        within=0.3 + 2,
        at_least=0.3,
        advice="timeout",
    ),
    "stall inside an event past the read timeout": Fault(
        lambda ev: [first_events_then(chunk(completion_event(" three")[:12]), Wait(ev))],
        errors.APITimeoutError,
        " one two",
        1,
        client={"timeout": 0.3},
        within=0.3 + 2,
        at_least=0.3,
    ),
    "reset mid-stream": Fault(
        lambda _: [first_events_then(Reset())], errors.APIConnectionError, " one two", 1
    ),
    "clean close with no final event (close-delimited)": Fault(
        lambda _: [first_events_then(Close(), chunked=False)],
        errors.APIConnectionError,
        " one two",
        1,
    ),
    "last chunk with no final event (chunked)": Fault(
        lambda _: [first_events_then(LAST_CHUNK)], errors.APIConnectionError, " one two", 1
    ),
    "malformed JSON in an event": Fault(
        lambda _: [first_events_then(chunk(sse("completion", '{"completion": " thr')), LAST_CHUNK)],
        errors.APIResponseValidationError,
        " one two",
        1,
    ),
    "an event whose JSON is a list": Fault(
        lambda _: [first_events_then(chunk(sse("completion", "[1, 2]")), LAST_CHUNK)],
        errors.APIResponseValidationError,
        " one two",
        1,
    ),
    "an event that is not UTF-8 (Latin-1 bytes)": Fault(
        lambda _: [
            first_events_then(
                chunk(b'event: completion\ndata: {"completion": "caf\xe9"}\n\n'), LAST_CHUNK
            )
        ],
        errors.APIResponseValidationError,
        " one two",
        1,
    ),
    "error event with the full envelope": Fault(
        lambda _: [
            first_events_then(
                chunk(
                    sse(
                        "error",
                        {
                            "type": "error",
                            "error": {"type": "overloaded_error", "message": "Overloaded"},
                        },
                    )
                ),
                LAST_CHUNK,
            )
        ],
        errors.OverloadedError,
        " one two",
        1,
        advice="overloaded",
    ),
    "error event without the top-level type": Fault(
        lambda _: [
            first_events_then(
                chunk(sse("error", {"error": {"type": "api_error", "message": "Internal"}})),
                LAST_CHUNK,
            )
        ],
        errors.InternalServerError,
        " one two",
        1,
    ),
    "error event of an unknown type": Fault(
        lambda _: [
            first_events_then(
                chunk(
                    sse(
                        "error",
                        {"type": "error", "error": {"type": "brand_new_error", "message": "?"}},
                    )
                ),
                LAST_CHUNK,
            )
        ],
        errors.APIStatusError,
        " one two",
        1,
    ),
    "error event before any text is still not retried": Fault(
        lambda _: [
            sse_script(
                [
                    sse(
                        "error",
                        {
                            "type": "error",
                            "error": {"type": "overloaded_error", "message": "Overloaded"},
                        },
                    )
                ]
            ),
            ok_stream(" no"),
        ],
        errors.OverloadedError,
        "",
        1,
    ),
    "429 with retry-after, then success": Fault(
        lambda _: [
            error_script(429, "rate_limit_error", "slow down", {"retry-after": "7"}),
            ok_stream(" fine"),
        ],
        None,
        " fine",
        2,
        delays=[7.0],
    ),
    "429 with retry-after-ms, then success": Fault(
        lambda _: [
            error_script(429, "rate_limit_error", "slow down", {"retry-after-ms": "1250"}),
            ok_stream(" fine"),
        ],
        None,
        " fine",
        2,
        delays=[1.25],
    ),
    "429 with retry-after every time": Fault(
        lambda _: [error_script(429, "rate_limit_error", "slow down", {"retry-after": "2"})] * 3,
        errors.RateLimitError,
        "",
        3,
        delays=[2.0, 2.0],
        advice="wait",
    ),
    "429 with a retry-after beyond sixty seconds": Fault(
        lambda _: [error_script(429, "rate_limit_error", "slow down", {"retry-after": "3600"})] * 3,
        errors.RateLimitError,
        "",
        3,
        delays="backoff",
    ),
    "529 overloaded every time": Fault(
        lambda _: [error_script(529, "overloaded_error", "Overloaded")] * 3,
        errors.OverloadedError,
        "",
        3,
        delays="backoff",
        advice="overloaded",
    ),
    "529 with x-should-retry false": Fault(
        lambda _: [
            error_script(529, "overloaded_error", "Overloaded", {"x-should-retry": "false"})
        ],
        errors.OverloadedError,
        "",
        1,
    ),
    "500 then success": Fault(
        lambda _: [error_script(500, "api_error", "Internal server error"), ok_stream(" fine")],
        None,
        " fine",
        2,
        delays="backoff",
    ),
    "500 then success, not streaming": Fault(
        lambda _: [
            error_script(500, "api_error", "Internal server error"),
            json_script(200, OK_BODY),
        ],
        None,
        " fine",
        2,
        stream=False,
        delays="backoff",
    ),
    "401": Fault(
        lambda _: [error_script(401, "authentication_error", "invalid x-api-key")],
        errors.AuthenticationError,
        "",
        1,
        advice="ANTHROPIC_API_KEY",
    ),
    "400": Fault(
        lambda _: [
            error_script(400, "invalid_request_error", 'prompt must start with "\n\nHuman:" turn')
        ],
        errors.BadRequestError,
        "",
        1,
    ),
    "502 Bad Gateway HTML page from nginx": Fault(
        lambda _: [html(502, NGINX_502)] * 3,
        errors.InternalServerError,
        "",
        3,
        delays="backoff",
        advice="502 Bad Gateway",
    ),
    "413 HTML page from nginx": Fault(
        lambda _: [html(413, NGINX_413)], errors.RequestTooLargeError, "", 1, advice="Shorten"
    ),
    "503 plain text from a load balancer, then success": Fault(
        lambda _: [
            json_script(
                503,
                b"upstream connect error or disconnect/reset before "
                b"headers. reset reason: connection failure",
                content_type="text/plain",
            ),
            ok_stream(" fine"),
        ],
        None,
        " fine",
        2,
        delays="backoff",
    ),
    "an error status with an empty body": Fault(
        lambda _: [Script([head(500, length=0)])] * 3,
        errors.InternalServerError,
        "",
        3,
        delays="backoff",
    ),
    "non-streaming body cut short, every attempt": Fault(
        lambda _: (
            [
                Script(
                    [
                        head(200, content_type="application/json", length=200)
                        + b'{"completion": " fi',
                        Reset(),
                    ]
                )
            ]
            * 3
        ),
        errors.APIConnectionError,
        "",
        3,
        stream=False,
        delays="backoff",
    ),
    "non-streaming body that is not JSON": Fault(
        lambda _: [json_script(200, b"<html>captive portal</html>", content_type="text/html")],
        errors.APIResponseValidationError,
        "",
        1,
        stream=False,
    ),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_each_scripted_fault_raises_its_typed_error_keeping_all_text_sent_before_it(
    name: str,
    replay: ReplayServer,
    fault_client: Any,
    sleeps: SleepRecorder,
    tally: Counter[str],
) -> None:
    fault = FAULTS[name]
    release = threading.Event()
    replay.enqueue(*fault.scripts(release))
    client = fault_client(max_retries=2, **fault.client)
    try:
        out = run(client, stream=fault.stream)
    finally:
        release.set()
    tally["fault cases"] += 1

    assert out.elapsed <= fault.within, f"took {out.elapsed:.2f} s"
    assert out.elapsed >= fault.at_least
    assert len(replay.received) == fault.requests
    if fault.error is None:
        assert out.error is None, str(out.error)
        assert out.result == fault.text
    else:
        assert out.error is not None, "no error raised"
        assert_reported_well(out.error, fault.error)
        assert fault.advice.lower() in str(out.error).lower()
        # What the caller was handed before the error, and what the error keeps, are both
        # exactly what the server sent before the fault.
        assert out.seen == fault.text
        assert (out.partial or "") == fault.text
    assert_no_connection_held(replay, client)
    if fault.delays == "backoff":
        assert len(sleeps.delays) == fault.requests - 1
        assert_backoff(sleeps.delays)
    else:
        assert sleeps.delays == (fault.delays or [])


def test_connection_refused_is_retried_with_backoff_then_says_to_check_the_server(
    fault_client: Any, sleeps: SleepRecorder, tally: Counter[str]
) -> None:
    client = fault_client(base_url=refused_url(), max_retries=2)
    out = run(client)
    tally["fault cases"] += 1
    assert out.error is not None
    assert_reported_well(out.error, errors.APIConnectionError)
    assert "Connection refused" in str(out.error) and "server is running" in str(out.error)
    assert out.partial is None and out.seen == ""
    assert len(sleeps.delays) == 2
    assert_backoff(sleeps.delays)
    assert out.elapsed < 2


def test_a_full_accept_queue_times_out_on_connect_within_the_connect_timeout(
    fault_client: Any, sleeps: SleepRecorder, tally: Counter[str]
) -> None:
    # A listener that never accepts, its backlog filled: Linux drops further SYNs, so the
    # connect itself stalls, which is what a dead host looks like.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(listener.getsockname())
            fillers.append(s)
        time.sleep(0.05)
        port = listener.getsockname()[1]
        client = fault_client(
            base_url=f"http://127.0.0.1:{port}", max_retries=1, connect_timeout=0.3
        )
        out = run(client)
    finally:
        for s in fillers:
            s.close()
        listener.close()
    tally["fault cases"] += 1
    assert out.error is not None
    assert_reported_well(out.error, errors.APITimeoutError)
    assert len(sleeps.delays) == 1
    assert 2 * 0.3 <= out.elapsed < 2 * 0.3 + 2


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
@pytest.mark.parametrize("cut", [Reset, Close], ids=["reset", "close"])
@pytest.mark.parametrize("eol", ["\n", "\r\n"], ids=["LF", "CRLF"])
def test_a_stream_cut_at_any_byte_keeps_exactly_the_events_completed_before_the_cut(
    chunked: bool,
    cut: type[Reset] | type[Close],
    eol: str,
    replay: ReplayServer,
    fault_client: Any,
    sleeps: SleepRecorder,
    tally: Counter[str],
) -> None:
    # Multi-byte characters, so some cuts fall inside a character as well as inside an event.
    texts = [" Once", " upon", " a time ", "é", " 漢字", " 🐉 dragons", " baked", " bread."]
    body = stream_body(texts, chunked=chunked, eol=eol)
    rng = random.Random(7)  # seeded: a failure names an offset that reproduces
    start = len(head(chunked=chunked))
    # Every offset near an event boundary, plus random ones anywhere in the body.
    near = {e + d for e in body.ends for d in (-2, -1, 0, 1)}
    offsets = sorted({start, *near, *rng.sample(range(start, len(body.response)), 40)})
    offsets = [k for k in offsets if start <= k < len(body.response)]
    client = fault_client(max_retries=2)
    for k in offsets:
        replay.received.clear()
        replay.enqueue(Script([body.response[:k], cut()]))
        out = run(client)
        tally["fault cases"] += 1
        want = body.text_before(k)
        where = f"cut at byte {k} of {len(body.response)}"
        if k >= body.final_end:
            # The final event arrived: the answer is complete whatever happens next.
            assert out.error is None, f"{where}: {out.error}"
            assert out.result == want, where
        else:
            assert out.error is not None, where
            assert_reported_well(out.error, errors.APIConnectionError)
            assert out.seen == want, where
            assert out.partial == want, where
        assert len(replay.received) == 1, f"{where}: retried"
        assert_no_connection_held(replay, client, close=False)
    assert sleeps.delays == []


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
def test_a_five_megabyte_event_arrives_whole(
    chunked: bool, replay: ReplayServer, fault_client: Any, tally: Counter[str]
) -> None:
    # Multi-byte characters too, so chunk and read boundaries fall inside characters.
    big = ("bread é 漢字 🐉 " * (1 << 19))[: 5 << 20]
    replay.enqueue(
        sse_script(
            [completion_event(" start"), completion_event(big), final_event()], chunked=chunked
        )
    )
    out = run(fault_client())
    tally["fault cases"] += 1
    assert out.error is None, str(out.error)
    assert out.result == " start" + big
    assert out.events == 3


def test_a_five_megabyte_malformed_event_gives_a_short_message_and_keeps_earlier_text(
    replay: ReplayServer, fault_client: Any, tally: Counter[str]
) -> None:
    junk = '{"completion": "' + "x" * (5 << 20)  # never closed
    replay.enqueue(sse_script([completion_event(" start"), sse("completion", junk)]))
    client = fault_client()
    out = run(client)
    tally["fault cases"] += 1
    assert out.error is not None
    assert_reported_well(out.error, errors.APIResponseValidationError)
    assert out.partial == " start"
    assert_no_connection_held(replay, client)


def test_a_five_megabyte_event_cut_in_the_middle_keeps_only_the_events_before_it(
    replay: ReplayServer, fault_client: Any, tally: Counter[str]
) -> None:
    big = completion_event("y" * (5 << 20))
    replay.enqueue(
        Script(
            [
                head(chunked=True),
                chunk(completion_event(" start")),
                f"{len(big):x}\r\n".encode(),
                big[: len(big) // 2],
                Reset(),
            ]
        )
    )
    client = fault_client(max_retries=2)
    out = run(client)
    tally["fault cases"] += 1
    assert out.error is not None
    assert_reported_well(out.error, errors.APIConnectionError)
    assert out.partial == " start" and len(replay.received) == 1
    assert_no_connection_held(replay, client)


def test_a_stall_between_events_shorter_than_the_timeout_is_not_a_fault(
    replay: ReplayServer, fault_client: Any, tally: Counter[str]
) -> None:
    # The read timeout bounds silence between bytes, not the length of the whole answer.
    from fixtures_replay import Sleep

    steps: list[Step] = [head(chunked=True)]
    for i in range(6):
        steps += [chunk(completion_event(f" {i}")), Sleep(0.1)]
    steps += [chunk(final_event()), LAST_CHUNK]
    replay.enqueue(Script(steps))
    out = run(fault_client(timeout=0.3))
    tally["fault cases"] += 1
    assert out.error is None, str(out.error)
    assert out.result == " 0 1 2 3 4 5" and out.elapsed > 0.6


def test_a_client_used_after_faults_still_works(
    replay: ReplayServer, fault_client: Any, tally: Counter[str]
) -> None:
    # Faults must not poison the connection pool: a reset, a stall and an error status on
    # one client, then a normal answer on the same client.
    release = threading.Event()
    replay.enqueue(
        first_events_then(Reset()),
        first_events_then(Wait(release)),
        error_script(400, "invalid_request_error", "bad"),
        ok_stream(" after"),
        json_script(200, OK_BODY),
    )
    client = fault_client(timeout=0.3, max_retries=0)
    outcomes = [run(client) for _ in range(4)]
    release.set()
    outcomes.append(run(client, stream=False))
    tally["fault cases"] += 3
    assert [type(o.error).__name__ for o in outcomes[:3]] == [
        "APIConnectionError",
        "APITimeoutError",
        "BadRequestError",
    ]
    assert outcomes[3].result == " after" and outcomes[4].result == " fine"


# -- regressions: bugs this suite found in the core ------------------------------------------


def test_a_close_delimited_stream_closed_inside_a_multibyte_character_is_a_connection_error(
    replay: ReplayServer, fault_client: Any
) -> None:
    # sseclient decodes the unterminated block a close leaves; cut inside a character, that
    # raised a bare UnicodeDecodeError instead of the typed error with the partial text.
    event = completion_event(" 🐉 dragons")
    cut = event.index("🐉".encode()) + 2
    replay.enqueue(Script([head(chunked=False), completion_event(" a"), event[:cut], Close()]))
    out = run(fault_client())
    assert out.error is not None
    assert_reported_well(out.error, errors.APIConnectionError)
    assert out.partial == " a"


def test_an_event_that_is_not_utf8_is_a_validation_error_keeping_the_earlier_text(
    replay: ReplayServer, fault_client: Any
) -> None:
    replay.enqueue(
        sse_script(
            [completion_event(" a"), b'event: completion\ndata: {"completion": "caf\xe9"}\n\n']
        )
    )
    out = run(fault_client())
    assert out.error is not None
    assert_reported_well(out.error, errors.APIResponseValidationError)
    assert out.partial == " a"


def test_closing_the_client_closes_its_pooled_connections_while_an_error_is_still_held(
    replay: ReplayServer, fault_client: Any
) -> None:
    # A notebook keeps the last error (sys.last_value), whose traceback refers to the
    # response and so to urllib3's pool; urllib3 2 closes a pool's idle connections only
    # when the pool is garbage, so Client.close() left this one open.
    replay.enqueue(error_script(401, "authentication_error", "invalid x-api-key"))
    client = fault_client(max_retries=0)
    with pytest.raises(errors.AuthenticationError) as info:
        client.completions.create(prompt="\n\nHuman: hi\n\nAssistant:")
    assert replay.open_connections == 1  # idle in the pool, as keep-alive allows
    client.close()
    assert replay.wait_idle(2), "the connection outlived Client.close()"
    assert info.value.status_code == 401  # the error is still held here, on purpose
