"""What users type on the magic line and in prompts, in a real kernel (its input transformers
and its namespace are the real ones), for both transports, streaming and not.

* ``%complete ... ?``: IPython's help transformer must not eat a question.
* ``{name}`` interpolation reaches only names the user defined, never IPython's history
  (``In``, ``Out``, ``_i``, ...) or builtins, in the cell body and on the magic line alike.
"""

from __future__ import annotations

from typing import Any

import pytest
from fixtures_kernel import KernelHandle
from fixtures_replay import ReplayServer, json_script
from test_wire_inputs import stream_script, text_events, whole_body

MODES = [
    ("complete", ""),
    ("complete", "--no-stream"),
    ("messages", ""),
    ("messages", "--no-stream"),
]
MODE_IDS = ["complete-stream", "complete-whole", "messages-stream", "messages-whole"]


def enqueue_answer(replay: ReplayServer, api: str, stream: bool, text: str = " ok") -> None:
    replay.enqueue(
        stream_script(text_events(api, [text]))
        if stream
        else json_script(200, whole_body(api, text))
    )


def sent_text(body: dict[str, Any]) -> tuple[str, str]:
    """(system, user text) of a request in either transport."""
    if "messages" in body:
        return body.get("system", ""), body["messages"][0]["content"]
    prompt = body["prompt"]
    system, _, rest = prompt.partition("\n\nHuman: ")
    return system, rest.removesuffix("\n\nAssistant:")


def run_ok(kernel: KernelHandle, code: str) -> Any:
    run = kernel.execute(code, timeout=60)
    assert run.status == "ok", run.error_text
    return run


# -- 3. a question mark at the end of the line ----------------------------------------------


@pytest.mark.parametrize(("api", "opts"), MODES, ids=MODE_IDS)
@pytest.mark.parametrize(
    "line",
    [
        "%complete {opts} -t 0.7 What is a monad?",
        "%complete {opts} -t 0.7 What is a monad??",
        "x = 1\n%complete {opts} -t 0.7 What is a monad?",
        "%complete {opts} -t 0.7 What's 2+2, really?",
    ],
    ids=["?", "??", "second-line", "quote-and-operator"],
)
def test_a_line_magic_ending_in_a_question_mark_sends_the_question(
    kernel: KernelHandle, kreplay: ReplayServer, api: str, opts: str, line: str
) -> None:
    enqueue_answer(kreplay, api, not opts, " A monoid in the category of endofunctors.")
    code = line.format(opts=f"--base-url {kreplay.url} --api {api} {opts}".strip())
    run = run_ok(kernel, code)
    assert "not found" not in run.stream_text() + run.error_text
    assert len(kreplay.received) == 1, "the magic never ran (IPython took it for help)"
    body = kreplay.received[0].json
    question = code.rsplit("-t 0.7 ", 1)[1]
    assert sent_text(body)[1] == question and body["temperature"] == 0.7
    assert "endofunctors" in run.stream_text()


@pytest.mark.parametrize(("api", "opts"), MODES[::3], ids=MODE_IDS[::3])
@pytest.mark.parametrize(
    "line",
    [
        "%complete\t{opts} -t 0.7 What is a monad?",
        "%complete {opts} -t 0.7 What is \\\n  a monad?",
        "%complete {opts} \\\n -t 0.7 What is a monad?",
    ],
    ids=["tab-after-name", "continued-line", "continued-after-options"],
)
def test_a_question_on_a_tab_separated_or_continued_magic_line_arrives_whole(
    kernel: KernelHandle, kreplay: ReplayServer, api: str, opts: str, line: str
) -> None:
    enqueue_answer(kreplay, api, not opts)
    code = line.format(opts=f"--base-url {kreplay.url} --api {api} {opts}".strip())
    run = run_ok(kernel, code)
    assert "not found" not in run.stream_text() + run.error_text
    assert len(kreplay.received) == 1, "the magic never ran (IPython took it for help)"
    assert " ".join(sent_text(kreplay.received[0].json)[1].split()) == "What is a monad?"


def test_the_magic_name_followed_by_a_question_mark_still_shows_the_help(
    kernel: KernelHandle, kreplay: ReplayServer
) -> None:
    for code in ("%complete?", "%complete??"):
        run = run_ok(kernel, code)
        assert run.reply is not None
        pages = [p for p in run.reply["content"].get("payload", []) if p.get("source") == "page"]
        shown = "".join(str(p.get("data", {}).get("text/plain", "")) for p in pages)
        shown += run.stream_text()
        assert "Send a prompt to a /v1/complete endpoint" in shown, code
    assert kreplay.received == []


def test_a_question_mark_inside_a_string_is_left_to_python(
    kernel: KernelHandle, kreplay: ReplayServer
) -> None:
    run_ok(kernel, "s = '''\n%complete Why?\n'''")
    assert kernel.value("s") == "\n%complete Why?\n" and kreplay.received == []


# -- 10. interpolation reaches only the user's names -----------------------------------------


IPYTHON_NAMES = [
    "In",
    "Out",
    "_",
    "__",
    "___",
    "_i",
    "_ii",
    "_i1",
    "_1",
    "_oh",
    "_dh",
    "_ih",
    "exit",
    "quit",
    "get_ipython",
    "__name__",
    "__builtins__",
    "max",
    "open",
]


@pytest.mark.parametrize(("api", "opts"), MODES, ids=MODE_IDS)
def test_ipython_history_and_builtins_are_never_interpolated(
    kernel: KernelHandle, kreplay: ReplayServer, api: str, opts: str
) -> None:
    run_ok(kernel, "secret_cell = 'sk-ant-pasted-key'")
    run_ok(kernel, "1 + 1")  # fills Out, _ and _N
    run_ok(kernel, "topic = 'rivers'")
    enqueue_answer(kreplay, api, not opts)
    names = " ".join("{" + n + "}" for n in IPYTHON_NAMES)
    run_ok(
        kernel,
        f"%%complete --base-url {kreplay.url} --api {api} {opts} "
        f'--system "sys {{topic}} {names}"\nAbout {{topic}}: {names}',
    )
    system, text = sent_text(kreplay.received[0].json)
    assert text == f"About rivers: {names}"
    assert system == f"sys rivers {names}"
    assert "sk-ant-pasted-key" not in kreplay.received[0].body.decode()


@pytest.mark.parametrize(("api", "opts"), MODES, ids=MODE_IDS)
def test_ipythons_own_values_are_sent_once_the_user_names_them(
    kernel: KernelHandle, kreplay: ReplayServer, api: str, opts: str
) -> None:
    run_ok(kernel, "earlier = 'print(42)'")
    run_ok(kernel, "previous_cell = _i")  # asking for IPython's own: bind it to a name
    run_ok(kernel, "_ = 'mine'")  # a user's own binding of an IPython name is theirs
    enqueue_answer(kreplay, api, not opts)
    run_ok(
        kernel,
        f"%%complete --base-url {kreplay.url} --api {api} {opts}\n"
        "Explain {previous_cell} and {_}",
    )
    assert sent_text(kreplay.received[0].json)[1] == "Explain earlier = 'print(42)' and mine"
    run_ok(kernel, "del _")


# -- Also: one interpolation rule for the magic line and the body --------------------------


@pytest.mark.parametrize(("api", "opts"), MODES, ids=MODE_IDS)
def test_options_follow_the_same_interpolation_rule_as_the_body(
    kernel: KernelHandle, kreplay: ReplayServer, api: str, opts: str
) -> None:
    run_ok(kernel, "n_words = 5\ntemp = 0.25")
    enqueue_answer(kreplay, api, not opts)
    run_ok(
        kernel,
        f"%%complete --base-url {kreplay.url} --api {api} {opts} -t {{temp}} "
        '--system "at most {max} words, {n_words} at best, $n_words, {{n_words}}"'
        "\nat most {max} words, {n_words} at best, $n_words, {{n_words}}",
    )
    body = kreplay.received[0].json
    system, text = sent_text(body)
    expected = "at most {max} words, 5 at best, $n_words, {n_words}"
    assert (system, text) == (expected, expected)
    assert body["temperature"] == 0.25


def test_no_interpolate_leaves_the_options_as_typed_too(
    kernel: KernelHandle, kreplay: ReplayServer
) -> None:
    run_ok(kernel, "n_words = 5")
    enqueue_answer(kreplay, "complete", True)
    run_ok(
        kernel,
        f'%%complete --base-url {kreplay.url} --no-interp --system "{{n_words}}"\n{{n_words}}',
    )
    assert sent_text(kreplay.received[0].json) == ("{n_words}", "{n_words}")


def test_a_question_in_the_cell_that_loads_the_extension_is_reported_not_lost(
    kernel: KernelHandle, kreplay: ReplayServer
) -> None:
    # IPython rewrites the whole cell before %load_ext runs: that line already became help.
    # It cannot be saved, so the extension says what happened instead of nothing.
    run_ok(kernel, "%unload_ext jupyter_complete")
    try:
        run = run_ok(
            kernel,
            f"%load_ext jupyter_complete\n%complete --base-url {kreplay.url} What is a monad?",
        )
        assert "read by IPython as a help request" in run.stream_text("stderr")
        assert "run that line again" in run.stream_text("stderr")
        assert kreplay.received == []
    finally:
        run_ok(kernel, "%load_ext jupyter_complete")
    enqueue_answer(kreplay, "complete", True)
    run = run_ok(kernel, f"%complete --base-url {kreplay.url} What is a monad?")
    assert "help request" not in run.stream_text("stderr") and len(kreplay.received) == 1
