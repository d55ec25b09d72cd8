"""``%%complete`` in a real ipykernel, driven through jupyter_client, against the replay server.

One kernel serves the whole module (it has a fake API key in its environment); each test
queues its own scripted stream on the shared replay server.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
from fixtures_kernel import FAKE_KEY, KernelHandle, kernel_env, running_kernel
from fixtures_replay import (
    LAST_CHUNK,
    Close,
    ReplayServer,
    Script,
    Sleep,
    Wait,
    chunk,
    completion_event,
    error_script,
    final_event,
    head,
    sse,
    sse_script,
)

pytestmark = pytest.mark.kernel


def cell(replay: ReplayServer, body: str, options: str = "") -> str:
    return f"%%complete --base-url {replay.url} {options}\n{body}"


def settle(kernel: KernelHandle, msg_id: str) -> list:
    """The sniffer's records for ``msg_id`` once it has seen the final idle status too."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        records = kernel.sniffer.for_parent(msg_id)
        if any(r.msg_type == "status" and b'"idle"' in r.raw for r in records):
            return records
        time.sleep(0.02)
    raise TimeoutError("the sniffer did not see the idle status")


def test_streamed_text_reaches_the_output_before_the_stream_ends(kernel, kreplay):
    held = threading.Event()
    kreplay.enqueue(
        Script(
            [
                head(chunked=True),
                chunk(completion_event(" First")),
                chunk(completion_event(" words")),
                Wait(held, 20),
                chunk(completion_event(" and the rest.")),
                chunk(final_event("stop_sequence")),
                LAST_CHUNK,
            ]
        )
    )
    run = kernel.start(cell(kreplay, "Say something."))
    first = run.wait_for(lambda m: m["msg_type"] == "stream" and "First" in m["content"]["text"])
    # The server is still holding the rest: this text was shown while the stream was open.
    assert not held.is_set()
    first_at = time.monotonic()
    held.set()
    run.finish()

    assert run.status == "ok", run.error_text
    assert run.stream_text() == " First words and the rest.\n"
    streams = run.of_type("stream")
    assert len(streams) >= 2 and streams[0] is first
    timed = zip(run.messages, run.times, strict=True)
    later = [t for m, t in timed if m["msg_type"] == "stream"][1:]
    assert all(t >= first_at for t in later)
    # The answer is appended: no message repeats text that was already sent.
    assert sum(len(m["content"]["text"]) for m in streams) == len(run.stream_text())


def _long_stream(n: int, *, paced: bool) -> tuple[Script, str]:
    words = [f" tok{i % 97}" for i in range(n)]
    steps: list = [head(chunked=True)]
    for i, word in enumerate(words):
        steps.append(chunk(completion_event(word)))
        if paced and i % 100 == 99:
            steps.append(Sleep(0.02))  # 50 bursts: a stream that lasts over a second
    steps += [chunk(final_event("max_tokens")), LAST_CHUNK]
    return Script(steps), "".join(words)


@pytest.mark.parametrize("paced", [False, True], ids=["burst", "paced"])
def test_a_5000_event_stream_stays_within_the_iopub_message_and_byte_budget(kernel, kreplay, paced):
    script, text = _long_stream(5000, paced=paced)
    kreplay.enqueue(script)
    run = kernel.execute(cell(kreplay, "Count."))
    assert run.status == "ok", run.error_text
    assert run.stream_text() == text + "\n"

    records = settle(kernel, run.msg_id)
    kinds = Counter(r.msg_type for r in records)
    streams = [r for r in records if r.msg_type == "stream"]
    started = min(r.received for r in records)
    duration = max(r.received for r in streams) - started
    total_bytes = sum(r.nbytes for r in records)
    text_bytes = len(text.encode())
    print(
        f"\n[{'paced' if paced else 'burst'}] 5000 events, {text_bytes} text bytes: "
        f"{len(records)} IOPub messages {dict(kinds)}, {total_bytes} bytes "
        f"({total_bytes / text_bytes:.2f}x text), {len(streams)} stream messages over "
        f"{duration:.2f} s ({len(streams) / max(duration, 1e-9):.1f}/s)"
    )
    # At most ~30 stream messages per second of streaming (+ the final flush).
    assert len(streams) <= 30 * duration + 2
    # Appended, not re-sent: about the text once plus per-message headers and the footer.
    assert total_bytes <= 2 * text_bytes + 8192


def test_output_name_and_underscore_completion_hold_the_text(kernel, kreplay):
    kreplay.enqueue(
        sse_script([completion_event(" Forty"), completion_event(" two."), final_event()])
    )
    run = kernel.execute(cell(kreplay, "The answer?", "-o answer"))
    assert run.status == "ok", run.error_text
    assert kernel.value("answer.completion") == " Forty two."
    assert kernel.value("_completion.completion") == " Forty two."
    assert kernel.value("answer is _completion") is True
    assert kernel.value("[answer.stop_reason, answer.model, answer.interrupted]") == [
        "stop_sequence",
        "replay-1",
        False,
    ]
    # The cell shows no Out[] value: the text is in the output area once.
    assert not run.of_type("execute_result")


def test_footer_metadata_records_model_parameters_stop_reason_and_timings(kernel, kreplay):
    kreplay.enqueue(sse_script([completion_event(" Brief."), final_event("max_tokens")]))
    run = kernel.execute(
        cell(
            kreplay,
            "Explain SSE.",
            '-m my-model -n 50 -t 0.25 -k 5 -p 0.9 -s "\\n\\nEND" --system "Be brief."',
        )
    )
    assert run.status == "ok", run.error_text
    body = kreplay.received[0].json
    assert body["model"] == "my-model"
    # prompt.build puts the system text on its own line before "\n\nHuman:".
    assert body["prompt"] == "Be brief.\n\nHuman: Explain SSE.\n\nAssistant:"
    assert (body["max_tokens_to_sample"], body["temperature"], body["top_k"], body["top_p"]) == (
        50,
        0.25,
        5,
        0.9,
    )
    assert body["stop_sequences"] == ["\n\nEND"]

    meta = run.completion_metadata()
    for name in ("max_tokens_to_sample", "temperature", "top_k", "top_p", "stop_sequences"):
        assert meta["params"][name] == body[name]
    assert meta["params"]["model"] == "my-model"
    assert meta["model"] == "replay-1"  # what the server says answered
    assert meta["stop_reason"] == "max_tokens"
    assert meta["interrupted"] is False
    assert meta["characters"] == len(" Brief.")
    assert 0 <= meta["time_to_first_token"] <= meta["elapsed"] < 30
    assert meta["request_id"] == "req_replay_1"
    assert meta["endpoint"] == kreplay.url
    assert meta["prompt"] == body["prompt"]
    assert (meta["system"], meta["format"], meta["raw"], meta["stream"]) == (
        "Be brief.",
        "text",
        False,
        True,
    )
    footer = next(m for m in run.displays() if "jupyter_complete" in m["content"]["metadata"])
    line = footer["content"]["data"]["text/plain"]
    assert line.startswith("replay-1 · max_tokens · 7 chars · first token ")
    assert " s · total " in line


def test_kernel_interrupt_keeps_partial_text_closes_the_connection_and_next_cell_works(
    kernel, kreplay
):
    held = threading.Event()
    kreplay.enqueue(
        Script(
            [
                head(chunked=True),
                chunk(completion_event(" Once upon")),
                chunk(completion_event(" a time")),
                Wait(held, 30),
                chunk(completion_event(" never sent")),
                chunk(final_event()),
                LAST_CHUNK,
            ]
        )
    )
    run = kernel.start(cell(kreplay, "Tell a story.", "-o story"))
    run.wait_for(lambda m: m["msg_type"] == "stream" and "a time" in m["content"]["text"])
    interrupted_at = time.monotonic()
    kernel.km.interrupt_kernel()
    run.finish(timeout=20)
    # The stream ended at once, without waiting for the held server.
    assert time.monotonic() - interrupted_at < 5
    assert not held.is_set()

    assert run.status == "error"
    assert run.reply["content"]["ename"] == "StreamInterrupted"
    assert run.stream_text() == " Once upon a time\n"
    assert run.error_text.strip() == (
        "KeyboardInterrupt: the stream was stopped; the 17 characters received are kept in "
        "_completion."
    )
    meta = run.completion_metadata()
    assert meta["interrupted"] is True and meta["characters"] == 17
    footer = next(m for m in run.displays() if "jupyter_complete" in m["content"]["metadata"])
    assert footer["content"]["data"]["text/plain"].startswith("[interrupted] · replay-1 · 17 chars")

    # The client closed its connection: releasing the server finds no one listening.
    held.set()
    assert kreplay.wait_idle(5)

    assert kernel.value("[story.completion, story.interrupted, story is _completion]") == [
        " Once upon a time",
        True,
        True,
    ]
    kreplay.enqueue(sse_script([completion_event(" Next."), final_event()]))
    after = kernel.execute(cell(kreplay, "Again."))
    assert after.status == "ok", after.error_text
    assert after.stream_text() == " Next.\n"


def test_an_interrupt_before_the_answer_starts_closes_the_request_and_stores_an_empty_result(
    kernel, kreplay
):
    held = threading.Event()
    kreplay.enqueue(Script([Wait(held, 30), head(chunked=True), chunk(final_event()), LAST_CHUNK]))
    run = kernel.start(cell(kreplay, "Slow to answer.", "--no-stream"))
    deadline = time.monotonic() + 10
    while not kreplay.received and time.monotonic() < deadline:
        time.sleep(0.01)  # the request reached the server, which now holds it
    time.sleep(0.1)
    kernel.km.interrupt_kernel()
    run.finish(timeout=20)
    assert run.status == "error"
    assert "the 0 characters received are kept" in run.error_text
    assert run.completion_metadata()["interrupted"] is True
    held.set()
    assert kreplay.wait_idle(5)
    assert kernel.value("[_completion.completion, _completion.interrupted]") == ["", True]


@pytest.mark.parametrize(
    ("options", "body", "message"),
    [
        ("-t 3", "hi", "--temperature/-t 3.0 is invalid: it must be a number from 0 to 1."),
        ("--temperature=1.5", "hi", "--temperature/-t 1.5 is invalid"),
        ("-t warm", "hi", "argument -t/--temperature: invalid float value: 'warm'"),
        ("-k -1", "hi", "--top-k/-k -1 is invalid: it must be an integer >= 0."),
        ("-p 1.5", "hi", "--top-p/-p 1.5 is invalid: it must be a number from 0 to 1."),
        ("-n 0", "hi", "--max-tokens/-n 0 is invalid: it must be an integer >= 1."),
        ("-s ''", "hi", "--stop/-s '' is invalid: it must be a list of non-empty strings."),
        ("--format html", "hi", "argument -f/--format: invalid choice: 'html'"),
        ("-o 2x", "hi", "-o/--output '2x' is not a valid Python variable name."),
        ("--frobnicate", "hi", "unrecognized arguments: --frobnicate"),
        # IPython itself rejects a cell magic with no body at all, before calling us.
        ("", "", "the cell body is empty"),
        ("", "   \n\n", "%%complete: the cell is empty."),
        ("stray words", "hi", "unexpected 'stray words' on the magic line"),
    ],
)
def test_a_bad_option_is_a_one_line_usage_error_and_sends_nothing(
    kernel, kreplay, options, body, message
):
    run = kernel.execute(cell(kreplay, body, options))
    assert run.status == "error"
    assert run.reply["content"]["ename"] == "UsageError"
    lines = [line for line in run.error_text.splitlines() if line.strip()]
    assert len(lines) == 1, run.error_text
    assert message in lines[0]
    assert "Traceback" not in run.error_text
    assert kreplay.received == []


def test_an_empty_line_magic_is_a_usage_error(kernel, kreplay):
    run = kernel.execute(f"%complete --base-url {kreplay.url} -t 0.5")
    assert run.status == "error"
    assert "%complete: no prompt." in run.error_text
    assert kreplay.received == []


def test_the_line_magic_sends_the_rest_of_the_line(kernel, kreplay):
    kreplay.enqueue(sse_script([completion_event(" Blue."), final_event()]))
    kernel.execute("colour = 'blue'")
    run = kernel.execute(
        f"%complete --base-url {kreplay.url} -t 0 Why is the sky {{colour}}? Don't guess."
    )
    assert run.status == "ok", run.error_text
    assert run.stream_text() == " Blue.\n"
    body = kreplay.received[0].json
    assert body["prompt"] == "\n\nHuman: Why is the sky blue? Don't guess.\n\nAssistant:"
    assert body["temperature"] == 0


def test_a_server_error_mid_stream_keeps_the_partial_text_above_a_one_line_message(kernel, kreplay):
    kreplay.enqueue(
        sse_script(
            [
                completion_event(" Half an"),
                sse(
                    "error",
                    {
                        "type": "error",
                        "error": {"type": "overloaded_error", "message": "Overloaded"},
                    },
                ),
            ]
        )
    )
    run = kernel.execute(cell(kreplay, "Go on."))
    assert run.status == "error"
    assert run.stream_text() == " Half an\n"
    lines = [line for line in run.error_text.splitlines() if line.strip()]
    assert len(lines) == 1, run.error_text
    assert lines[0].startswith("OverloadedError: The server sent an error mid-stream")
    assert "(8 characters received were kept.)" in lines[0]
    assert kernel.value("[_completion.completion, _completion.stop_reason]") == [" Half an", None]


def test_a_connection_cut_keeps_the_partial_text(kernel, kreplay):
    kreplay.enqueue(Script([head(), completion_event(" Cut"), Close()]))
    run = kernel.execute(cell(kreplay, "Go."))
    assert run.status == "error"
    assert run.stream_text() == " Cut\n"
    assert run.error_text.strip().startswith("APIConnectionError: The stream ended before")


def test_show_traceback_config_switches_full_tracebacks_on_and_off(kernel, kreplay):
    kreplay.enqueue(error_script(401, "authentication_error", "invalid x-api-key"))
    one_line = kernel.execute(cell(kreplay, "hi"))
    assert one_line.error_text.strip() == (
        "AuthenticationError: 401 authentication_error: invalid x-api-key. Check "
        "ANTHROPIC_API_KEY (or the api_key argument). [request req_replay_1]"
    )
    kernel.execute("%config CompleteMagics.show_traceback = True")
    try:
        kreplay.enqueue(error_script(401, "authentication_error", "invalid x-api-key"))
        full = kernel.execute(cell(kreplay, "hi"))
        assert full.status == "error"
        assert "Traceback (most recent call last)" in full.error_text
        assert "client.py" in full.error_text
    finally:
        kernel.execute("%config CompleteMagics.show_traceback = False")
    kreplay.enqueue(error_script(401, "authentication_error", "invalid x-api-key"))
    again = kernel.execute(cell(kreplay, "hi"))
    assert "Traceback" not in again.error_text


def test_markdown_format_replaces_the_streamed_text_once_with_rendered_markdown(kernel, kreplay):
    words = ["# Title", "\n\n", "Some ", "*emphasis*", " and ", "`code`", "."]
    kreplay.enqueue(sse_script([completion_event(w) for w in words] + [final_event()]))
    run = kernel.execute(cell(kreplay, "Write markdown.", "--format markdown"))
    assert run.status == "ok", run.error_text
    kinds = [m["msg_type"] for m in run.messages]
    clears = run.of_type("clear_output")
    assert len(clears) == 1 and clears[0]["content"]["wait"] is True
    # Streamed first, then cleared and replaced by one Markdown display, then the footer.
    assert kinds.index("stream") < kinds.index("clear_output")
    rendered = [m for m in run.displays() if "text/markdown" in m["content"]["data"]]
    assert len(rendered) == 1
    assert rendered[0]["content"]["data"]["text/markdown"] == "".join(words)
    assert kinds.index("clear_output") < run.messages.index(rendered[0])
    assert run.completion_metadata()["format"] == "markdown"
    records = settle(kernel, run.msg_id)
    print(
        f"\n[markdown] {len(records)} IOPub messages, {sum(r.nbytes for r in records)} bytes "
        f"for {len(''.join(words))} characters"
    )


def test_no_stream_shows_the_whole_answer_at_the_end(kernel, kreplay):
    body = json.dumps(
        {
            "type": "completion",
            "completion": " All at once.",
            "stop_reason": "stop_sequence",
            "model": "replay-1",
        }
    ).encode()
    kreplay.enqueue(Script([head(content_type="application/json", length=len(body)) + body]))
    run = kernel.execute(cell(kreplay, "hi", "--no-stream"))
    assert run.status == "ok", run.error_text
    assert run.stream_text() == " All at once.\n"
    assert "stream" not in kreplay.received[0].json
    assert run.completion_metadata()["stream"] is False


def test_the_client_is_reused_while_the_base_url_is_unchanged(kernel, kreplay):
    get_id = "id(get_ipython().magics_manager.registry['CompleteMagics']._client)"
    for _ in range(2):
        kreplay.enqueue(sse_script([completion_event(" ok"), final_event()]))
    kernel.execute(cell(kreplay, "one"))
    first = kernel.value(get_id)
    kernel.execute(f"%config CompleteMagics.base_url = {kreplay.url!r}")
    try:
        run = kernel.execute("%%complete\ntwo")  # same URL, now from the trait
        assert run.status == "ok", run.error_text
        assert kernel.value(get_id) == first
        other = ReplayServer()
        try:
            other.enqueue(sse_script([completion_event(" elsewhere"), final_event()]))
            run = kernel.execute(cell(other, "three"))
            assert run.stream_text() == " elsewhere\n"
            assert kernel.value(get_id) != first
        finally:
            other.close()
    finally:
        kernel.execute("%config CompleteMagics.base_url = ''")


def test_config_traits_are_the_defaults_and_options_override_them(kernel, kreplay):
    kernel.execute(
        "%config CompleteMagics.temperature = 0.2\n"
        "%config CompleteMagics.max_tokens = 77\n"
        "%config CompleteMagics.model = 'cfg-model'\n"
        "%config CompleteMagics.stop_sequences = ['###']"
    )
    try:
        for _ in range(2):
            kreplay.enqueue(sse_script([completion_event(" ok"), final_event()]))
        kernel.execute(cell(kreplay, "hi"))
        kernel.execute(cell(kreplay, "hi", "-t 0.9 -m other"))
        first, second = (r.json for r in kreplay.received)
        assert (first["temperature"], first["max_tokens_to_sample"], first["model"]) == (
            0.2,
            77,
            "cfg-model",
        )
        assert first["stop_sequences"] == ["###"]
        assert (second["temperature"], second["max_tokens_to_sample"], second["model"]) == (
            0.9,
            77,
            "other",
        )
        # The trait's range guards %config too: IPython logs the error, the value stays.
        bad = kernel.execute("%config CompleteMagics.temperature = 3")
        assert "should not be greater than 1.0" in bad.stream_text("stderr")
        assert (
            kernel.value("get_ipython().magics_manager.registry['CompleteMagics'].temperature")
            == 0.2
        )
    finally:
        kernel.execute(
            "%config CompleteMagics.temperature = 1.0\n"
            "%config CompleteMagics.max_tokens = 256\n"
            "%config CompleteMagics.model = ''\n"
            "%config CompleteMagics.stop_sequences = []"
        )


def test_the_api_key_never_appears_in_any_iopub_message(kernel, kreplay):
    since = len(kernel.sniffer.records)
    kreplay.enqueue(
        sse_script([completion_event(" fine"), final_event()]),
        error_script(401, "authentication_error", "invalid x-api-key"),
        sse_script(
            [
                completion_event(" partial"),
                sse("error", {"error": {"type": "api_error", "message": "boom"}}),
            ]
        ),
    )
    cells = [
        cell(kreplay, "hi"),
        cell(kreplay, "hi"),
        cell(kreplay, "hi"),
        "%complete --base-url http://127.0.0.1:9 unreachable",
        "%config CompleteMagics",
        "print(repr(_completion))",
        "print(get_ipython().magics_manager.registry['CompleteMagics']._client)",
        "%%complete?",
    ]
    runs = [kernel.execute(code) for code in cells]
    kreplay.enqueue(error_script(401, "authentication_error", "invalid x-api-key"))
    # Full tracebacks with every frame's variables shown: still no key.
    kernel.execute("%config CompleteMagics.show_traceback = True\n%xmode Verbose")
    try:
        runs.append(kernel.execute(cell(kreplay, "hi")))
        runs.append(kernel.execute("%complete --base-url http://127.0.0.1:9 unreachable"))
    finally:
        kernel.execute("%config CompleteMagics.show_traceback = False\n%xmode Context")
    # The key was really in play: the server received it.
    assert kreplay.received[0].headers["x-api-key"] == FAKE_KEY
    assert "Traceback" in runs[-1].error_text  # the full tracebacks were shown too
    settle(kernel, runs[-1].msg_id)
    wire = b"".join(r.raw for r in kernel.sniffer.records[since:])
    assert len(wire) > 10_000
    assert FAKE_KEY.encode() not in wire
    assert FAKE_KEY[-12:].encode() not in wire
    for run in runs:
        assert FAKE_KEY not in json.dumps([m["content"] for m in run.messages])


def test_unload_and_reload_leave_one_working_magic(kernel, kreplay):
    count = "sum(type(c).__name__ == 'CompleteMagics' for c in get_ipython().configurables)"
    try:
        kernel.execute("%unload_ext jupyter_complete")
        gone = kernel.execute("%complete hi")
        assert gone.status == "error" and "not found" in gone.error_text
        assert kernel.value(count) == 0
        kernel.execute("%load_ext jupyter_complete")
        kernel.execute("%reload_ext jupyter_complete")
        assert kernel.value(count) == 1
    finally:
        kernel.execute("%load_ext jupyter_complete")
    kreplay.enqueue(sse_script([completion_event(" back"), final_event()]))
    run = kernel.execute(cell(kreplay, "hi"))
    assert run.stream_text() == " back\n"


def test_ipython_config_sets_the_magic_defaults_and_loads_the_extension(tmp_path, kreplay):
    profile = tmp_path / "profile_default"
    profile.mkdir()
    (profile / "ipython_config.py").write_text(
        "c.InteractiveShellApp.extensions = ['jupyter_complete']\n"
        f"c.CompleteMagics.base_url = {kreplay.url!r}\n"
        "c.CompleteMagics.temperature = 0.3\n"
        "c.CompleteMagics.max_tokens = 12\n"
        "c.CompleteMagics.format = 'markdown'\n"
    )
    kreplay.enqueue(sse_script([completion_event(" *configured*"), final_event()]))
    with running_kernel(kernel_env({"IPYTHONDIR": str(tmp_path)})) as configured:
        run = configured.execute("%%complete\nHi")
    assert run.status == "ok", run.error_text
    body = kreplay.received[0].json
    assert (body["temperature"], body["max_tokens_to_sample"]) == (0.3, 12)
    assert run.completion_metadata()["format"] == "markdown"


def test_the_panel_option_displays_the_panel_widget(kernel, kreplay):
    pytest.importorskip("jupyter_complete.widgets.panel")
    run = kernel.execute(cell(kreplay, "Once upon a time", "--panel -t 0.4 -o p"))
    assert run.status == "ok", run.error_text
    views = [
        m
        for m in run.displays()
        if "application/vnd.jupyter.widget-view+json" in m["content"]["data"]
    ]
    assert len(views) == 1
    assert kernel.value("[type(p).__name__, p.settings.temperature]") == ["Panel", 0.4]
    assert kreplay.received == []
