"""`EventStreamParser` against the WHATWG event-stream rules, case by case from the standard.

Source: https://html.spec.whatwg.org/multipage/server-sent-events.html, sections 9.2.5 (the
``text/event-stream`` grammar) and 9.2.6 (interpreting an event stream). The examples marked
"spec example" are the standard's own; the others each test one sentence of 9.2.6, quoted.
Each case is also fed in every split into two pieces and one byte at a time: the rules
are about the stream, not about how it is chunked.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_complete.sse import EventStreamLimitError, EventStreamParser

Ev = tuple[str, str, str]  # (type, data, last event id)


def parse(*chunks: bytes, errors: str = "replace") -> tuple[list[Ev], EventStreamParser]:
    parser = EventStreamParser(errors=errors)
    out: list[Ev] = []
    for c in chunks:
        out += [(e.event, e.data, e.id) for e in parser.feed(c)]
    return out, parser


def events(raw: bytes) -> list[Ev]:
    """The events of ``raw`` fed whole, checked equal for every 2-split and bytewise feed."""
    whole, _ = parse(raw)
    for cut in range(1, len(raw)):
        assert parse(raw[:cut], raw[cut:])[0] == whole, f"split at {cut}"
    assert parse(*(raw[i : i + 1] for i in range(len(raw))))[0] == whole
    return whole


CASES: list[tuple[str, bytes, list[Ev]]] = [
    # spec example: "data: YHOO" / "data: +2" / "data: 10" is one message joined by LF.
    (
        "multi-line data joins with LF",
        b"data: YHOO\ndata: +2\ndata: 10\n\n",
        [("message", "YHOO\n+2\n10", "")],
    ),
    # spec example: comment, id, "id" with no colon clears the id, two leading spaces.
    (
        "spec example with ids",
        b": test stream\n\ndata: first event\nid: 1\n\ndata:second event"
        b"\nid\n\ndata:  third event\n\n",
        [
            ("message", "first event", "1"),
            ("message", "second event", ""),
            ("message", " third event", ""),
        ],
    ),
    # spec example: "data" alone is a data field with an empty value; the unterminated final
    # block ("data:" without a blank line after it) is never dispatched.
    (
        "empty data fields and an unterminated end",
        b"data\n\ndata\ndata\n\ndata:",
        [("message", "", ""), ("message", "\n", "")],
    ),
    # spec example: "data:test" and "data: test" are the same (one leading space dropped).
    (
        "one optional space after the colon",
        b"data:test\n\ndata: test\n\n",
        [("message", "test", ""), ("message", "test", "")],
    ),
    # "If the line starts with a U+003A COLON character (:) Ignore the line."
    ("comment lines are ignored", b":\n: ping\ndata: x\n:: y\n\n", [("message", "x", "")]),
    # "set the event type buffer to the field value"; reset after dispatch.
    (
        "event names the type, then resets",
        b"event: completion\ndata: a\n\ndata: b\n\n",
        [("completion", "a", ""), ("message", "b", "")],
    ),
    # "If the data buffer is an empty string, set the data buffer and the event type buffer
    # to the empty string and return." (no event for a block without data)
    (
        "a block without data dispatches nothing and resets the type",
        b"event: ping\n\ndata: after\n\n",
        [("message", "after", "")],
    ),
    # "If the field name is "id": If the field value does not contain U+0000 NULL, then set
    # the last event ID buffer to the field value. Otherwise, ignore the field."
    (
        "an id with NUL is ignored",
        b"id: 7\ndata: a\n\nid: 8\x009\ndata: b\n\n",
        [("message", "a", "7"), ("message", "b", "7")],
    ),
    # The last event ID persists across events until set again.
    (
        "the id is sticky",
        b"id: 3\ndata: a\n\ndata: b\n\nid:\ndata: c\n\n",
        [("message", "a", "3"), ("message", "b", "3"), ("message", "c", "")],
    ),
    # "Otherwise: The field is ignored." (unknown names; names are case-sensitive)
    (
        "unknown and differently-cased fields are ignored",
        b"Data: no\nfoo: bar\nDATA: no\ndata: yes\n\n",
        [("message", "yes", "")],
    ),
    # Only the first colon separates name from value.
    (
        "colons after the first belong to the value",
        b"data: a: b:c\n\n",
        [("message", "a: b:c", "")],
    ),
    # "a single U+000A LINE FEED (LF) character not preceded by a U+000D CARRIAGE RETURN (CR)
    # character, and a single U+000D CARRIAGE RETURN (CR) character not followed by a U+000A
    # LINE FEED (LF) character being the ways in which a line can end" (plus CRLF).
    ("CR line ends", b"data: a\rdata: b\r\r", [("message", "a\nb", "")]),
    ("CRLF line ends", b"data: a\r\ndata: b\r\n\r\n", [("message", "a\nb", "")]),
    ("mixed line ends", b"data: a\r\ndata: b\rdata: c\n\r\n", [("message", "a\nb\nc", "")]),
    # CR then LF is one line end, CR CR is two (so it dispatches).
    (
        "CR CR is a blank line",
        b"data: a\r\rdata: b\n\n",
        [("message", "a", ""), ("message", "b", "")],
    ),
    # "The UTF-8 decode algorithm strips one leading UTF-8 Byte Order Mark (BOM), if any."
    ("a leading BOM is stripped", b"\xef\xbb\xbfdata: a\n\n", [("message", "a", "")]),
    # Only one: a second BOM is part of the first field name, which is then unknown.
    (
        "only one BOM is stripped",
        b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\ndata: b\n\n",
        [("message", "b", "")],
    ),
    # A BOM later in the stream is text like any other.
    ("a BOM inside a value is kept", b"data: \xef\xbb\xbfa\n\n", [("message", "\ufeffa", "")]),
    # Bytes that are not UTF-8 decode to U+FFFD under the spec's decoder.
    ("invalid UTF-8 becomes U+FFFD", b"data: caf\xe9\n\n", [("message", "caf\ufffd", "")]),
    # "Once the end of the file is reached, any pending data must be discarded."
    (
        "a final block without its blank line is discarded",
        b"data: a\n\ndata: b\n",
        [("message", "a", "")],
    ),
]


@pytest.mark.parametrize(
    ("raw", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_the_parser_follows_the_whatwg_rules_in_any_chunking(
    raw: bytes, expected: list[Ev]
) -> None:
    assert events(raw) == expected


def test_a_cr_at_the_end_of_one_chunk_and_lf_at_the_start_of_the_next_end_one_line() -> None:
    got, _ = parse(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n")
    assert got == [("message", "a\nb", "")]


def test_retry_sets_the_reconnection_time_only_for_ascii_digits() -> None:
    # "If the field value consists of only ASCII digits, then interpret the field value as
    # an integer in base ten, and set the event stream's reconnection time to that integer.
    # Otherwise, ignore the field."
    _, parser = parse(b"retry: 2500\n\n")
    assert parser.retry == 2500
    for bad in (
        b"retry: 25x\n\n",
        b"retry: -1\n\n",
        b"retry: \xd9\xa3\n\n",
        b"retry:\n\n",
        b"retry:  5\n\n",
    ):
        _, parser = parse(b"retry: 100\n\n" + bad)
        assert parser.retry == 100, bad


def test_pending_says_whether_an_unterminated_block_is_held() -> None:
    _, parser = parse(b"data: a\n\n")
    assert not parser.pending
    _, parser = parse(b"data: a\n\ndata: b\n")
    assert parser.pending
    _, parser = parse(b"data: a\n\ndat")
    assert parser.pending


def test_strict_decoding_raises_on_bytes_that_are_not_utf8() -> None:
    with pytest.raises(UnicodeDecodeError):
        parse(b"data: caf\xe9\n\n", errors="strict")


def test_a_line_longer_than_the_limit_raises_before_its_end_arrives() -> None:
    parser = EventStreamParser(max_line=1000, max_event=10_000)
    parser.feed(b"data: " + b"x" * 900)
    with pytest.raises(EventStreamLimitError) as info:
        parser.feed(b"x" * 200)
    assert info.value.what == "event stream line" and info.value.limit == 1000


def test_an_event_whose_data_lines_add_up_past_the_limit_raises() -> None:
    parser = EventStreamParser(max_line=1000, max_event=2000)
    with pytest.raises(EventStreamLimitError) as info:
        parser.feed(
            b"data: "
            + b"y" * 900
            + b"\n"
            + b"data: "
            + b"y" * 900
            + b"\n"
            + b"data: "
            + b"y" * 900
            + b"\n"
        )
    assert info.value.what == "event"


@pytest.mark.parametrize(
    "bad",
    [
        b"data: " + b"z" * 200 + b"\n\n",
        b"data: caf\xe9\n\n",
        b"data: a\r" + b"data: " + b"z" * 200 + b"\r\r",
    ],
    ids=["line-too-long", "not-utf8", "cr-line-too-long"],
)
def test_events_completed_before_a_failing_line_are_kept_in_completed(bad: bytes) -> None:
    parser = EventStreamParser(max_line=100, max_event=1000, errors="strict")
    with pytest.raises((EventStreamLimitError, UnicodeDecodeError)):
        parser.feed(b"data: one\n\nevent: two\ndata: 2\n\n" + bad)
    assert [(e.event, e.data) for e in parser.completed] == [("message", "one"), ("two", "2")]


def test_many_small_events_and_lines_stay_under_the_limits() -> None:
    parser = EventStreamParser(max_line=100, max_event=100)
    got = parser.feed(b"data: 0123456789\n\n" * 1000)
    assert len(got) == 1000


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [b"data: a", b"data:", b"data", b"event: x", b"id: 1", b": c", b"", b"retry: 5", b"foo"]
        ),
        max_size=12,
    ),
    st.sampled_from([b"\n", b"\r", b"\r\n"]),
    st.integers(1, 7),
)
def test_every_line_ending_and_chunk_size_gives_the_same_events(
    lines: list[bytes], eol: bytes, size: int
) -> None:
    raw = eol.join(lines) + eol
    whole, _ = parse(raw.replace(eol, b"\n"))
    assert parse(*(raw[i : i + size] for i in range(0, len(raw), size)))[0] == whole
