"""StreamRenderer coalescing and the footer / provenance helpers (no kernel needed)."""

from __future__ import annotations

import threading
import time

import pytest

from jupyter_complete.completion import Completion
from jupyter_complete.render import StreamRenderer, footer_bundle, footer_text, provenance, safe_url


class Recorder:
    """A write target that remembers each write, when it happened and on which thread."""

    def __init__(self, delay: float = 0.0) -> None:
        self.writes: list[tuple[float, str]] = []
        self.delay = delay

    def __call__(self, text: str) -> None:
        time.sleep(self.delay)
        self.writes.append((time.monotonic(), text))

    @property
    def text(self) -> str:
        return "".join(t for _, t in self.writes)


def test_every_character_is_written_once_and_in_order() -> None:
    out = Recorder()
    pieces = [f"{i}," for i in range(20_000)]
    with StreamRenderer(out, interval=0.01) as renderer:
        for piece in pieces:
            renderer.feed(piece)
    assert out.text == "".join(pieces)
    assert renderer.chars_written == len(out.text)
    assert renderer.writes == len(out.writes)


def test_a_fast_stream_is_coalesced_to_one_write_per_interval() -> None:
    out = Recorder()
    starts: list[float] = []

    def write(text: str) -> None:
        # The renderer paces the *starts* of writes: read the start it noted for this one
        # (set by the same writer thread just before calling us), so a writer thread that the
        # OS preempts between noting and writing does not look like a short gap.
        starts.append(renderer._last_write)
        out(text)

    renderer = StreamRenderer(write, interval=0.05)
    started = time.monotonic()
    while time.monotonic() - started < 0.5:
        renderer.feed("x")
        time.sleep(0.0005)
    renderer.close()
    duration = time.monotonic() - started
    # One write per 50 ms at most, plus the first (immediate) and the final flush.
    assert len(out.writes) <= duration / 0.05 + 2
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert all(gap >= 0.05 for gap in gaps[:-1]), gaps


def test_the_first_text_is_written_at_once() -> None:
    out = Recorder()
    renderer = StreamRenderer(out, interval=1.0)
    fed = time.monotonic()
    renderer.feed("hello")
    deadline = time.monotonic() + 2
    while not out.writes and time.monotonic() < deadline:
        time.sleep(0.001)
    assert out.writes and out.writes[0][0] - fed < 0.5  # not held for the 1 s interval
    renderer.close()


def test_text_queued_before_a_pause_is_shown_without_waiting_for_more() -> None:
    out = Recorder()
    renderer = StreamRenderer(out, interval=0.05)
    renderer.feed("a")
    time.sleep(0.01)
    renderer.feed("b")  # inside the interval: queued, not written yet
    time.sleep(0.3)  # the "server" goes quiet
    assert out.text == "ab"
    renderer.close()


def test_feed_never_waits_for_a_slow_output() -> None:
    out = Recorder(delay=0.2)
    renderer = StreamRenderer(out, interval=0.0)
    started = time.monotonic()
    for _ in range(100):
        renderer.feed("z")
    assert time.monotonic() - started < 0.5  # a waiting feed would take 100 x 0.2 s
    renderer.close()
    assert out.text == "z" * 100


def test_close_can_end_the_line_and_is_idempotent() -> None:
    out = Recorder()
    renderer = StreamRenderer(out)
    renderer.feed("no newline")
    renderer.close(end_line=True)
    renderer.close(end_line=True)
    assert out.text == "no newline\n"

    out2 = Recorder()
    renderer2 = StreamRenderer(out2)
    renderer2.feed("already\n")
    renderer2.close(end_line=True)
    assert out2.text == "already\n"

    nothing = Recorder()
    StreamRenderer(nothing).close(end_line=True)
    assert nothing.writes == []


def test_a_failing_write_is_raised_by_close() -> None:
    def broken(text: str) -> None:
        raise OSError("output closed")

    renderer = StreamRenderer(broken)
    renderer.feed("x")
    deadline = time.monotonic() + 2
    while (
        renderer._thread is not None
        and renderer._thread.is_alive()
        and (time.monotonic() < deadline)
    ):
        time.sleep(0.01)
    with pytest.raises(OSError, match="output closed"):
        renderer.feed("y")  # the stream learns of the failure on its next delta
    with pytest.raises(OSError, match="output closed"):
        renderer.close()


def test_writes_happen_on_one_writer_thread_not_the_feeding_one() -> None:
    threads: set[str] = set()
    renderer = StreamRenderer(lambda text: threads.add(threading.current_thread().name))
    renderer.feed("x")
    renderer.close()
    assert threads == {"jupyter_complete-render"}


def test_the_default_writer_writes_and_flushes_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    with StreamRenderer() as renderer:
        renderer.feed("to stdout")
    assert capsys.readouterr().out == "to stdout"


def _completion(**kw: object) -> Completion:
    base: dict[str, object] = dict(
        completion="x" * 1234,
        stop_reason="stop_sequence",
        model="claude-2.1",
        elapsed=2.04,
        time_to_first_token=0.31,
        request_id="req_1",
        params={"model": "claude-2.1", "temperature": 0.5, "max_tokens_to_sample": 300},
    )
    base.update(kw)
    return Completion(**base)  # type: ignore[arg-type]


def test_the_footer_gives_model_stop_reason_length_and_timings() -> None:
    assert footer_text(_completion()) == (
        "claude-2.1 · stop_sequence · 1,234 chars · first token 0.31 s · total 2.04 s"
    )


def test_the_footer_shows_token_counts_when_the_server_gives_them() -> None:
    c = _completion(usage={"input_tokens": 12, "output_tokens": 1500})
    assert footer_text(c) == (
        "claude-2.1 · stop_sequence · 1,234 chars · 12 in / 1,500 out tokens · "
        "first token 0.31 s · total 2.04 s"
    )


def test_an_interrupted_footer_says_so_and_has_no_stop_reason() -> None:
    c = _completion(stop_reason=None, interrupted=True, completion="abc")
    assert footer_text(c) == (
        "[interrupted] · claude-2.1 · 3 chars · first token 0.31 s · total 2.04 s"
    )


def test_the_footer_falls_back_to_the_requested_model_and_escapes_html() -> None:
    c = _completion(model=None, params={"model": "<m&m>"}, time_to_first_token=None)
    bundle = footer_bundle(c)
    assert bundle["text/plain"].startswith("<m&m> · stop_sequence")
    assert "&lt;m&amp;m&gt;" in bundle["text/html"]


def test_provenance_records_parameters_timings_and_the_prompt_but_not_the_text() -> None:
    record = provenance(
        _completion(),
        prompt="\n\nHuman: hi\n\nAssistant:",
        endpoint="https://user:secret@example.com:8443/v1?key=abc",
        format="text",
    )
    assert record["params"]["temperature"] == 0.5
    assert (record["stop_reason"], record["characters"], record["request_id"]) == (
        "stop_sequence",
        1234,
        "req_1",
    )
    assert (record["elapsed"], record["time_to_first_token"]) == (2.04, 0.31)
    assert record["prompt"] == "\n\nHuman: hi\n\nAssistant:"
    assert record["endpoint"] == "https://example.com:8443/v1"
    assert record["format"] == "text"
    assert "x" * 100 not in repr(record)


def test_a_long_prompt_is_recorded_by_length_and_hash_only() -> None:
    record = provenance(_completion(), prompt="p" * 10_000)
    assert "prompt" not in record
    assert record["prompt_chars"] == 10_000 and len(record["prompt_sha256"]) == 64


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("https://u:p@gw.example/proxy/anthropic?token=t#x", "https://gw.example/proxy/anthropic"),
        ("http://[::1]:9000/", "http://[::1]:9000/"),
    ],
)
def test_safe_url_drops_credentials_query_and_fragment(url: str, safe: str) -> None:
    assert safe_url(url) == safe
