"""What the panel sends to the front end: coalesced updates, bytes linear in the text.

Three measurements, from the most controlled to the most real:

1. The text view alone, fed fixed 40-character batches, recording every comm message the
   widgets publish (no kernel: ipywidgets' comm is swapped for a recorder).
2. A whole panel run against a paced replay stream, recorded the same way.
3. A whole panel run in a real ipykernel, counting the bytes of every IOPub message on the
   wire with an independent ZeroMQ subscriber (fixtures_kernel.IOPubSniffer).

Each compares a short stream with one four times longer. Linear growth gives a ratio near 4;
the usual ``Output.append_stdout`` per batch re-sends all the text each time and gives ~16.
The numbers are printed (``pytest -s``) for the record.
"""

from __future__ import annotations

import json
import time
from typing import Any

import ipywidgets as widgets
import pytest
from fixtures_kernel import KernelHandle, running_kernel
from fixtures_panel import CommRecorder, paced_script
from fixtures_replay import ReplayServer

from jupyter_complete import Client
from jupyter_complete.widgets._textview import HARD
from jupyter_complete.widgets.panel import Panel, StreamView
from jupyter_complete.widgets.panel._runner import UPDATE_INTERVAL


def sample_text(n: int) -> str:
    """``n`` characters of words, with a line end every twelve words."""
    words: list[str] = []
    size = i = 0
    while size < n:
        word = f"word{i}" + ("\n" if i % 12 == 11 else " ")
        words.append(word)
        size += len(word)
        i += 1
    return "".join(words)[:n]


def pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def test_the_text_view_sends_bytes_linear_in_the_text(comm_recorder: CommRecorder) -> None:
    results: dict[str, dict[int, int]] = {"view": {}, "append_stdout": {}}
    for n in (4000, 16000):
        text = sample_text(n)
        view = StreamView()
        mark = comm_recorder.mark()
        for piece in pieces(text, 40):
            view.append(piece)
        results["view"][n] = comm_recorder.bytes(mark)
        assert view.text == text
        out = widgets.Output()
        mark = comm_recorder.mark()
        for piece in pieces(text, 40):
            out.append_stdout(piece)
        results["append_stdout"][n] = comm_recorder.bytes(mark)
    ours = results["view"][16000] / results["view"][4000]
    naive = results["append_stdout"][16000] / results["append_stdout"][4000]
    print(f"\ntext view, 40-char batches: {results} ratio ours {ours:.2f}, naive {naive:.2f}")
    assert 3.5 < ours < 4.8
    assert naive > 14
    # And per character: a small constant (the tail is re-sent, but never past HARD chars).
    assert results["view"][16000] / 16000 < 20


def test_no_update_re_sends_more_than_a_bounded_tail(comm_recorder: CommRecorder) -> None:
    view = StreamView()
    mark = comm_recorder.mark()
    for piece in pieces(sample_text(20000).replace("\n", " "), 7):  # one endless line
        view.append(piece)
    sizes = [
        len(s.data["state"]["value"])
        for s in comm_recorder.since(mark)
        if s.method == "update" and "value" in s.data.get("state", {})
    ]
    assert max(sizes) < HARD + 200  # escaped tail plus the <pre> wrapper
    assert view.segments > 20000 / HARD


def run_and_measure(
    server: ReplayServer, recorder: CommRecorder, texts: list[str], delay: float
) -> tuple[Panel, list[Any], float]:
    server.enqueue(paced_script(texts, delay=delay))
    panel = Panel("Tell me.", client=Client(base_url=server.url, api_key="k", max_retries=0))
    mark = recorder.mark()
    started = time.monotonic()
    panel.run_button.click()
    assert panel.wait(30)
    duration = time.monotonic() - started
    assert panel.state == "done" and panel.text == "".join(texts)
    sent = recorder.since(mark)
    panel.close()
    return panel, sent, duration


def test_a_panel_run_coalesces_updates_and_sends_bytes_linear_in_the_text(
    replay: ReplayServer, comm_recorder: CommRecorder
) -> None:
    measured = {}
    for n in (2000, 8000):
        texts = pieces(sample_text(n), 20)
        _, sent, duration = run_and_measure(replay, comm_recorder, texts, delay=0.005)
        tail_updates = [
            s
            for s in sent
            if s.method == "update"
            and "jc-stream-text" in str(s.data.get("state", {}).get("value", ""))
        ]
        # At most one text update per interval, plus the first one and the last.
        assert len(tail_updates) <= duration / UPDATE_INTERVAL + 3, (len(tail_updates), duration)
        assert len(tail_updates) < len(texts) / 3
        measured[n] = (sum(s.nbytes for s in sent), len(sent), duration)
    ratio = measured[8000][0] / measured[2000][0]
    print(f"\npanel run (bytes, messages, seconds): {measured} ratio {ratio:.2f}")
    assert ratio < 6


# -- in a real kernel ---------------------------------------------------------------------

# Creating the widgets is measured apart: it costs the same for any answer.
_PANEL_SETUP = """
from jupyter_complete import Client
from jupyter_complete.widgets.panel import Panel
_p = Panel("Tell me.", client=Client(base_url={url!r}, api_key="k", max_retries=0))
"""
_PANEL_RUN = """
_p.run()
assert _p.wait(60) and _p.state == "done", (_p.state, _p.error.value)
"""

# The usual way, for comparison: the same coalescing, into Output.append_stdout.
_NAIVE_SETUP = """
import ipywidgets as _w
from jupyter_complete import Client
from jupyter_complete.render import StreamRenderer
_o = _w.Output()
_c = Client(base_url={url!r}, api_key="k", max_retries=0)
"""
_NAIVE_RUN = """
with _c.completions.create(prompt="\\n\\nHuman: Tell me.\\n\\nAssistant:", stream=True) as _s:
    _r = StreamRenderer(write=_o.append_stdout, interval=0.035)
    for _e in _s:
        _r.feed(_e.completion)
    _r.close()
"""


def iopub_bytes(kernel: KernelHandle, code: str) -> tuple[int, int]:
    """Run ``code``; the IOPub bytes and messages it caused, measured on the wire."""
    start = len(kernel.sniffer.records)
    run = kernel.execute(code)
    assert run.status == "ok", run.error_text
    # Everything sent before the next cell's first message has reached the sniffer by then
    # (one socket, in order).
    sync = kernel.execute("pass")
    deadline = time.monotonic() + 10
    while not kernel.sniffer.for_parent(sync.msg_id) and time.monotonic() < deadline:
        time.sleep(0.01)
    records = list(kernel.sniffer.records)
    end = next(i for i, r in enumerate(records) if r.parent_id == sync.msg_id)
    window = [r for r in records[start:end] if r.msg_type not in ("status", "execute_input")]
    return sum(r.nbytes for r in window), len(window)


@pytest.fixture(scope="module")
def panel_kernel() -> Any:
    from fixtures_kernel import kernel_env

    with running_kernel(kernel_env()) as handle:
        # Import once, so the measured cells do not include first-import costs.
        run = handle.execute(
            "import ipywidgets, jupyter_complete.widgets.panel, jupyter_complete.render"
        )
        assert run.status == "ok", run.error_text
        yield handle


def test_in_a_real_kernel_iopub_bytes_grow_linearly_unlike_append_stdout(
    replay: ReplayServer, panel_kernel: KernelHandle
) -> None:
    results: dict[str, dict[int, tuple[int, int]]] = {"panel": {}, "append_stdout": {}}
    for n in (2000, 8000):
        texts = pieces(sample_text(n), 20)
        for name, code in (
            ("panel", (_PANEL_SETUP, _PANEL_RUN)),
            ("append_stdout", (_NAIVE_SETUP, _NAIVE_RUN)),
        ):
            setup = panel_kernel.execute(code[0].format(url=replay.url))
            assert setup.status == "ok", setup.error_text
            replay.enqueue(paced_script(texts, delay=0.005))
            nbytes, count = iopub_bytes(panel_kernel, code[1])
            results[name][n] = (nbytes, count)

    # How many updates a stream gets depends on how long it takes, which a busy machine
    # stretches; what does not depend on the clock is what one update carries. Appending
    # keeps a message's size flat as the text grows 4x; re-sending the whole text makes
    # it grow with the text (so the bytes grow as n * updates, quadratically in time).
    def per_message(name: str, n: int) -> float:
        nbytes, count = results[name][n]
        return nbytes / count

    ours = per_message("panel", 8000) / per_message("panel", 2000)
    naive = per_message("append_stdout", 8000) / per_message("append_stdout", 2000)
    print(
        f"\nIOPub (bytes, messages): {json.dumps(results)} growth of bytes per message "
        f"(4x the text): panel {ours:.2f}, append_stdout {naive:.2f}"
    )
    assert ours < 1.6
    assert naive > 2
