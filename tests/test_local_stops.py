"""StopMatcher: stop sequences cut the text, and no piece of one is ever sent early."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from jupyter_complete.local.stops import StopMatcher

HUMAN = "\n\nHuman:"


def _run(matcher: StopMatcher, pieces: list[str]) -> str:
    out = []
    for piece in pieces:
        out.append(matcher.feed(piece))
        if matcher.matched is not None:
            return "".join(out)
    out.append(matcher.flush())
    return "".join(out)


def test_text_without_stops_passes_through_at_once():
    m = StopMatcher([HUMAN])
    assert m.feed("Hello") == "Hello"
    assert m.feed(" world") == " world"


def test_a_possible_start_of_a_stop_is_held_back_until_decided():
    m = StopMatcher([HUMAN])
    assert m.feed("Hi\n") == "Hi"
    assert m.pending == "\n"
    assert m.feed("\nHum") == ""
    assert m.feed("ble") == "\n\nHumble"
    assert m.pending == ""


def test_a_stop_split_across_pieces_is_found_and_excluded():
    m = StopMatcher([HUMAN])
    assert _run(m, ["Sure", ".\n", "\nHu", "man:", " more"]) == "Sure."
    assert m.matched == HUMAN


def test_the_earliest_of_several_stops_wins():
    m = StopMatcher(["END", "STOP"])
    assert m.feed("a STOP b END") == "a "
    assert m.matched == "STOP"


def test_at_one_position_the_longer_stop_is_reported():
    m = StopMatcher(["ab", "abc"])
    assert m.feed("xxabc") == "xx"
    assert m.matched == "abc"


def test_flush_releases_held_text_when_generation_ends_without_a_stop():
    m = StopMatcher(["END"])
    assert m.feed("the EN") == "the "
    assert m.flush() == "EN"
    assert m.matched is None


def test_nothing_is_returned_after_a_match():
    m = StopMatcher(["x"])
    m.feed("ax")
    assert m.feed("more") == ""
    assert m.flush() == ""


def test_empty_stop_sequences_are_ignored():
    m = StopMatcher(["", HUMAN])
    assert m.stops == (HUMAN,)


@given(
    text=st.text(alphabet="ab\nHumn: ", max_size=60),
    cuts=st.lists(st.integers(0, 60), max_size=10),
    stops=st.lists(st.text(alphabet="ab\nHumn:", min_size=1, max_size=5), min_size=1, max_size=3),
)
def test_streamed_output_equals_the_text_cut_at_its_first_stop(text, cuts, stops):
    bounds = sorted({c for c in cuts if c < len(text)} | {0, len(text)})
    pieces = [text[a:b] for a, b in pairwise(bounds)]
    m = StopMatcher(stops)
    sent = []
    for piece in pieces:
        sent.append(m.feed(piece))
        # what was sent so far never contains a stop sequence
        assert not any(s in "".join(sent) for s in m.stops)
        if m.matched:
            break
    sent.append(m.flush())
    hits = [text.find(s) for s in m.stops if s in text]
    expected = text[: min(hits)] if hits else text
    assert "".join(sent) == expected
