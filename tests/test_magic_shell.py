"""``%%complete`` in an in-process (terminal-style) IPython shell, against the replay server.

Fast checks of what the kernel tests do not need a kernel for: the prompt that goes on the
wire, option parsing, the manual, config wiring, terminal output and extension loading.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from fixtures_replay import ReplayServer, completion_event, final_event, sse, sse_script
from IPython import get_ipython
from IPython.core.error import UsageError
from IPython.testing.globalipapp import start_ipython

from jupyter_complete.errors import CompleteError
from jupyter_complete.magics import CompleteMagics, StreamInterrupted
from jupyter_complete.settings import CompletionSettings


@pytest.fixture(scope="module")
def ip() -> Iterator[Any]:
    # start_ipython() returns the shell only the first time in a process (another module's
    # tests may have started it): then the running one is the shell.
    shell = start_ipython() or get_ipython()
    with pytest.MonkeyPatch.context() as env:
        # These tests name their server: no warm-up of the built-in model at %load_ext.
        env.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
        shell.run_line_magic("load_ext", "jupyter_complete")
    yield shell
    shell.run_line_magic("unload_ext", "jupyter_complete")


@pytest.fixture
def send(ip: Any, replay: ReplayServer) -> Any:
    """Run a magic against the replay server; return the JSON body it received."""

    def run(line: str, cell: str | None = None, answer: str = " ok") -> dict[str, Any]:
        replay.enqueue(sse_script([completion_event(answer), final_event()]))
        before = len(replay.received)
        if cell is None:
            ip.run_line_magic("complete", f"--base-url {replay.url} {line}")
        else:
            ip.run_cell_magic("complete", f"--base-url {replay.url} {line}", cell)
        assert len(replay.received) == before + 1
        return dict(replay.received[-1].json)

    return run


def magics(ip: Any) -> CompleteMagics:
    m = ip.magics_manager.registry["CompleteMagics"]
    assert isinstance(m, CompleteMagics)
    return m


# -- the prompt on the wire ----------------------------------------------------------------


def test_a_plain_cell_is_wrapped_in_one_human_turn(send: Any) -> None:
    body = send("", "What is SSE?\n")
    assert body["prompt"] == "\n\nHuman: What is SSE?\n\nAssistant:"


def test_typed_turns_are_normalised_and_a_trailing_assistant_text_is_a_prefill(send: Any) -> None:
    body = send(
        "",
        "You are terse.\nHuman: Hi\nAssistant: Hello.\nHuman: Name a colour.\n"
        "Assistant: The colour is\n",
    )
    assert body["prompt"] == (
        "You are terse.\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: Name a colour."
        "\n\nAssistant: The colour is"
    )


def test_raw_sends_the_cell_exactly_as_written(send: Any) -> None:
    cell = "\n\nHuman:  spaced   out\n\nAssistant:\n"
    assert send("--raw", cell)["prompt"] == cell[:-1]  # minus the newline IPython adds


def test_names_from_the_namespace_are_interpolated_and_other_braces_survive(
    ip: Any, send: Any
) -> None:
    ip.user_ns.update(topic="rivers", n=3)
    cell = 'List {n} {topic}, then {unknown}, as {"a": {"b": 1}} and {{topic}}.'
    body = send("", cell)
    assert body["prompt"] == (
        '\n\nHuman: List 3 rivers, then {unknown}, as {"a": {"b": 1}} and {topic}.\n\nAssistant:'
    )
    assert send("--no-interpolate", cell)["prompt"] == f"\n\nHuman: {cell}\n\nAssistant:"


def test_the_system_prompt_comes_from_the_option_or_the_trait(ip: Any, send: Any) -> None:
    ip.user_ns["persona"] = "a pirate"
    assert send('--system "You are {persona}."', "Hi")["prompt"].startswith("You are a pirate.\n")
    magics(ip).system = "From config."
    try:
        assert send("", "Hi")["prompt"].startswith("From config.\n")
    finally:
        magics(ip).system = ""


def test_options_take_names_by_the_same_rule_as_the_body(ip: Any, send: Any) -> None:
    ip.user_ns.update(temp=0.35, name="m-from-var")
    body = send("-t {temp} -m {name}", "Hi {name}")
    assert (body["temperature"], body["model"]) == (0.35, "m-from-var")
    assert body["prompt"] == "\n\nHuman: Hi m-from-var\n\nAssistant:"
    # IPython's $name / {expr} expansion is not the rule: a builtin never leaks in.
    body = send('-m $name --system "at most {max} words"', "Hi")
    assert body["model"] == "$name"
    assert body["prompt"].startswith("at most {max} words\n")


def test_stop_sequences_repeat_and_understand_newline_escapes(send: Any) -> None:
    body = send(r'-s "\n\nEND" --stop=### -s "a\tb"', "Hi")
    assert body["stop_sequences"] == ["\n\nEND", "###", "a\tb"]


def test_the_line_magic_takes_the_rest_of_the_line_verbatim(send: Any) -> None:
    body = send('-t 0 --system "Be \'brief\'." it\'s "quoted" -x', None)
    assert body["temperature"] == 0
    assert body["prompt"] == "Be 'brief'.\n\nHuman: it's \"quoted\" -x\n\nAssistant:"
    assert send("-t 0 -- --not-an-option here", None)["prompt"] == (
        "\n\nHuman: --not-an-option here\n\nAssistant:"
    )


def test_long_and_short_options_mean_the_same(send: Any) -> None:
    short = send("-m a -n 9 -t 0.5 -k 3 -p 0.8 -s x", "Hi")
    long = send("--model a --max-tokens 9 --temperature 0.5 --top-k 3 --top-p 0.8 --stop x", "Hi")
    assert short == long


def test_api_messages_sends_the_same_request_to_the_messages_endpoint(
    ip: Any, replay: ReplayServer, capsys: pytest.CaptureFixture[str]
) -> None:
    replay.enqueue(
        sse_script(
            [
                sse(
                    "message_start",
                    {
                        "type": "message_start",
                        "message": {
                            "id": "msg_1",
                            "model": "replay-msg",
                            "usage": {"input_tokens": 5},
                        },
                    },
                ),
                sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": " Via messages."},
                    },
                ),
                sse(
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": "end_turn"},
                        "usage": {"output_tokens": 3},
                    },
                ),
                sse("message_stop", {"type": "message_stop"}),
            ]
        )
    )
    ip.run_cell_magic("complete", f"--base-url {replay.url} --api messages -t 0.1", "Hi")
    assert replay.received[-1].path == "/v1/messages"
    assert replay.received[-1].json["messages"] == [{"role": "user", "content": "Hi"}]
    completion = ip.user_ns["_completion"]
    assert (completion.completion, completion.model) == (" Via messages.", "replay-msg")
    assert completion.params["api"] == "messages"
    assert capsys.readouterr().out.startswith(" Via messages.\nreplay-msg · ")


# -- output in a terminal shell ---------------------------------------------------------------


def test_a_terminal_shell_prints_the_text_then_the_footer(
    send: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    send("--format markdown", "Hi", answer=" **bold**")
    out = capsys.readouterr().out
    # No Markdown renderer in a terminal: the streamed text stays, no clear codes.
    assert out.startswith(" **bold**\nreplay-1 · stop_sequence · 9 chars · first token ")
    assert "\x1b" not in out


def test_an_interrupt_before_any_text_still_stores_an_interrupted_completion(
    ip: Any,
    replay: ReplayServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = magics(ip)._get_client(replay.url)

    def interrupted(**kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(client.completions, "create", interrupted)
    with pytest.raises(StreamInterrupted, match="the 0 characters received"):
        ip.run_cell_magic("complete", f"--base-url {replay.url} --no-stream -o stopped", "Hi")
    assert ip.user_ns["stopped"].interrupted and ip.user_ns["stopped"].completion == ""
    assert "[interrupted]" in capsys.readouterr().out


# -- options, manual and config -------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "cell", "message"),
    [
        ("-t 3", "Hi", "--temperature/-t 3.0 is invalid: it must be a number from 0 to 1."),
        ("-k -1", "Hi", "--top-k/-k -1 is invalid"),
        ("--model ''", "Hi", "--model/-m '' is invalid"),
        ("--format html", "Hi", "invalid choice: 'html'"),
        ("", "  \n", "the cell is empty"),
        ("-o class", "Hi", "'class' is not a valid Python variable name"),
    ],
)
def test_bad_options_raise_usage_errors_before_anything_is_sent(
    ip: Any, replay: ReplayServer, line: str, cell: str, message: str
) -> None:
    with pytest.raises(UsageError, match=None) as info:
        ip.run_cell_magic("complete", f"--base-url {replay.url} {line}", cell)
    assert message in str(info.value)
    assert replay.received == []


def test_the_manual_has_every_option_with_its_trait_help_and_examples(ip: Any) -> None:
    doc = CompleteMagics.complete.__doc__ or ""
    for option in (
        "--model",
        "--max-tokens",
        "--temperature",
        "--top-k",
        "--top-p",
        "--stop",
        "--system",
        "--raw",
        "--no-stream",
        "--format",
        "--output",
        "--no-interpolate",
        "--base-url",
        "--api",
        "--panel",
        "-m",
        "-n",
        "-t",
        "-k",
        "-p",
        "-s",
        "-o",
    ):
        assert f"{option} " in doc or f"{option}," in doc, option
    assert "Examples::" in doc and "%%complete -t 0 -n 100 -o answer" in doc
    help_of = CompleteMagics.complete.parser.format_help  # type: ignore[attr-defined]
    flat = " ".join(help_of().split())
    for name in ("temperature", "top_k", "top_p", "model", "system"):
        trait_help = " ".join(CompletionSettings.class_traits()[name].help.split())
        assert trait_help in flat, name


def test_the_magic_inherits_the_settings_traits_and_their_defaults() -> None:
    settings = CompletionSettings.class_traits()
    traits = CompleteMagics.class_traits()
    for name, trait in settings.items():
        if trait.metadata.get("config"):
            assert traits[name].default_value == trait.default_value, name
            assert traits[name].metadata.get("config"), name
    for name in ("show_traceback", "base_url", "format", "stream", "interpolate", "timeout", "api"):
        assert traits[name].metadata.get("config"), name


def test_show_traceback_is_wired_to_the_error_class(ip: Any) -> None:
    m = magics(ip)
    m.show_traceback = True
    try:
        assert CompleteError.show_traceback is True
    finally:
        m.show_traceback = False
    assert CompleteError.show_traceback is False


def test_the_panel_option_opens_the_panel_with_prompt_client_and_settings(
    ip: Any, replay: ReplayServer
) -> None:
    panel_module = pytest.importorskip("jupyter_complete.widgets.panel")
    ip.run_cell_magic("complete", f"--base-url {replay.url} --panel -t 0.3 -o p", "Once upon")
    panel = ip.user_ns["p"]
    assert isinstance(panel, panel_module.Panel)
    assert panel.settings.temperature == 0.3
    assert replay.received == []  # the panel sends only when Run is pressed


def test_the_panel_option_without_the_panel_module_is_a_usage_error(
    ip: Any, replay: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "jupyter_complete.widgets.panel", None)
    with pytest.raises(UsageError, match="--panel is not available"):
        ip.run_cell_magic("complete", f"--base-url {replay.url} --panel", "Once upon")


def test_load_ext_imports_neither_the_client_nor_widgets_nor_the_local_model() -> None:
    # With an endpoint configured (without one, %load_ext warms the built-in model up on a
    # background thread: tests/test_local_embedded.py).
    env = {**os.environ, "ANTHROPIC_BASE_URL": "http://127.0.0.1:9"}
    env.pop("ANTHROPIC_API_KEY", None)
    code = (
        "import sys\n"
        "from IPython.testing.globalipapp import start_ipython\n"
        "ip = start_ipython()\n"
        "before = set(sys.modules)\n"
        "ip.run_line_magic('load_ext', 'jupyter_complete')\n"
        "new = set(sys.modules) - before\n"
        "heavy = {'requests', 'urllib3', 'sseclient', 'ipywidgets', 'llama_cpp', 'numpy',\n"
        "         'jupyter_complete.client', 'jupyter_complete.render'}\n"
        "print(sorted(new & heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"
