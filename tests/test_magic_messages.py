"""``%%complete --api messages|auto`` in a real kernel, streaming from the built-in local server.

The server runs in the test process with the real model and requires the kernel's (fake) API
key; it refuses Text Completions for one model name, as the real API does for newer models,
so ``--api auto`` really meets the refusal and switches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fixtures_kernel import FAKE_KEY, Execution, KernelHandle
from fixtures_local import COUNT_PREFILL, COUNT_QUESTION

pytestmark = pytest.mark.local

NEW_MODEL = "claude-new"
NOTICE = "using the Messages API"
#: A cell whose answer runs to any max tokens on every build (see fixtures_local.COUNT_PROMPT).
COUNT_CELL = f"Human: {COUNT_QUESTION}\nAssistant: {COUNT_PREFILL}"


@pytest.fixture(scope="module")
def server(local_model: Any) -> Iterator[Any]:
    """The local server, keyed with the kernel's key, refusing NEW_MODEL on /v1/complete."""
    from jupyter_complete.local import serve

    with serve(
        "127.0.0.1", 0, local_model, FAKE_KEY, refuse_complete_models=[NEW_MODEL]
    ) as running:
        yield running


def run_cell(kernel: KernelHandle, server: Any, options: str, body: str) -> Execution:
    run = kernel.execute(f"%%complete --base-url {server.url} {options}\n{body}", timeout=180)
    assert run.status == "ok", run.error_text
    return run


def test_the_messages_transport_streams_into_the_output(server, kernel):
    run = run_cell(kernel, server, "--api messages -n 120 -t 0 -o reply", COUNT_CELL)
    text = run.stream_text()
    pieces = [m for m in run.of_type("stream") if m["content"]["name"] == "stdout"]
    # 120 tokens take over a second: the renderer sends several pieces as they arrive.
    assert len(pieces) >= 2, pieces
    assert text.strip()
    meta = run.completion_metadata()
    assert meta["params"]["api"] == "messages"
    assert meta["stop_reason"] == "max_tokens"
    reply = kernel.value("[reply.id, reply.completion, reply.usage]")
    assert reply[0].startswith("msg_")
    assert reply[1] == text.rstrip("\n")
    assert reply[2]["input_tokens"] > 0 and reply[2]["output_tokens"] == 120
    assert NOTICE not in run.stream_text("stderr")


def test_auto_switches_a_refused_model_once_with_a_one_line_notice(server, kernel):
    before = server.stats["rejected"]
    options = f"--api auto -m {NEW_MODEL} -n 12 -t 0 -o reply"
    first = run_cell(kernel, server, options, "What is the capital of France?")
    first_id = kernel.value("reply.id")
    second = run_cell(kernel, server, options, "Name a colour.")
    second_id = kernel.value("reply.id")
    assert first.stream_text().strip() and second.stream_text().strip()
    notices = [
        line
        for run in (first, second)
        for line in run.stream_text("stderr").splitlines()
        if NOTICE in line
    ]
    assert notices == [
        f"jupyter_complete: {NEW_MODEL} does not support Text Completions; "
        "using the Messages API for it from now on."
    ]
    assert NOTICE in first.stream_text("stderr")
    assert first_id.startswith("msg_") and second_id.startswith("msg_")
    # Only the first cell asked /v1/complete; the second went to /v1/messages directly.
    assert server.stats["rejected"] == before + 1
    # The saved output records the transport that answered, not the mode that chose it.
    assert first.completion_metadata()["params"]["api"] == "messages"


def test_auto_leaves_a_model_that_is_not_refused_on_text_completions(server, kernel):
    run = run_cell(kernel, server, "--api auto -n 4 -t 0 -o reply", "Say hi.")
    assert run.stream_text().strip()
    assert kernel.value("reply.id").startswith("compl_")
    assert NOTICE not in run.stream_text("stderr")
