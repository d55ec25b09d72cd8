"""Secrets suite: a recognisable fake API key must appear nowhere a user or a file can see.

The key is set the way users set it (the environment, or ``api_key=``), requests really carry
it (each test checks the server received it, so a pass is not vacuous), and then every
surface is searched: reprs, error messages, plain and verbose tracebacks (IPython's verbose
mode prints the locals of every frame, including frames inside requests and urllib3), log
records at DEBUG, the magic's output, the panel's widget traffic and state, and a notebook
executed by nbclient and saved to disk.
"""

from __future__ import annotations

import json
import logging
import os
import pprint
import re
import subprocess
import sys
import textwrap
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from fixtures_faults import refused_url
from fixtures_replay import (
    ReplayServer,
    Reset,
    Script,
    Wait,
    completion_event,
    error_script,
    final_event,
    head,
    json_script,
    sse_script,
)

from jupyter_complete import Client, errors

pytestmark = pytest.mark.timeout(120)

KEY = "sk-ant-api03-FAKEKEY-DO-NOT-LEAK-1234"
#: The distinctive middle of the key: also catches a truncated or partly masked copy.
MARK = "FAKEKEY"
PROMPT = "\n\nHuman: hi\n\nAssistant:"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def assert_clean(where: str, *texts: object) -> None:
    for text in texts:
        assert MARK not in str(text), f"the key leaked into {where}: {str(text)[:200]}"


def ok_stream(text: str = " hello") -> Script:
    return sse_script([completion_event(text), final_event()])


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch, replay: ReplayServer) -> ReplayServer:
    """The key and the replay server in the environment, as a user would set them."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", replay.url)
    return replay


def key_was_sent(replay: ReplayServer) -> bool:
    return any(r.headers.get("x-api-key") == KEY for r in replay.received)


def library_traceback(err: BaseException) -> TracebackType | None:
    """``err``'s traceback from its first frame inside jupyter_complete.

    The frames above it are this test's own, whose locals (the replay server's record of the
    headers it received) hold the key by design.
    """
    tb = err.__traceback__
    while tb is not None and "jupyter_complete" not in tb.tb_frame.f_code.co_filename:
        tb = tb.tb_next
    return tb


def verbose_traceback(err: BaseException) -> str:
    """IPython's verbose traceback (``%xmode Verbose``): frames with their variables."""
    from IPython.core.ultratb import VerboseTB

    text = VerboseTB(color_scheme="NoColor", include_vars=True).text(
        type(err), err, library_traceback(err)
    )
    return ANSI.sub("", text)


def every_rendering(err: BaseException) -> dict[str, str]:
    """The ways an error reaches a screen or a log, chained causes included."""
    with_locals = traceback.TracebackException(
        type(err), err, library_traceback(err), capture_locals=True
    )
    return {
        "str": str(err),
        "repr": repr(err),
        "vars": pprint.pformat(vars(err)),
        "format_exception": "".join(traceback.format_exception(err)),
        "traceback with locals": "".join(with_locals.format()),
        "IPython verbose traceback": verbose_traceback(err),
    }


# -- the client and its objects --------------------------------------------------------------


def test_no_repr_str_or_attribute_dump_of_the_client_shows_the_key(keyed: ReplayServer) -> None:
    keyed.enqueue(ok_stream(), ok_stream())
    for client in (Client(), Client(api_key=KEY, base_url=keyed.url)):
        with client.completions.create(prompt=PROMPT, stream=True) as stream:
            final = stream.get_final_completion()
            assert_clean("the stream", repr(stream), pprint.pformat(vars(stream)))
        assert_clean("the completion", repr(final), json.dumps(final.to_dict()))
        assert_clean(
            "the client",
            repr(client),
            str(client),
            pprint.pformat(vars(client)),
            repr(client.completions),
            repr(client._key),
        )
        client.close()
    assert key_was_sent(keyed)


def test_a_client_that_inherits_the_key_from_the_environment_does_not_repeat_it(
    keyed: ReplayServer,
) -> None:
    client = Client()
    assert "api_key=set" in repr(client)
    assert_clean("repr", repr(client))


# -- errors and tracebacks ---------------------------------------------------------------------


def _fail_401(replay: ReplayServer) -> Client:
    replay.enqueue(error_script(401, "authentication_error", "invalid x-api-key"))
    return Client(api_key=KEY, base_url=replay.url, max_retries=0)


def _fail_refused(replay: ReplayServer) -> Client:
    return Client(api_key=KEY, base_url=refused_url(), max_retries=0)


def _fail_stall(replay: ReplayServer) -> Client:
    # Headers never come: a read timeout raised from inside urllib3, request headers in scope.
    gate = threading.Event()
    replay.enqueue(Script([Wait(gate, timeout=2)]))
    return Client(api_key=KEY, base_url=replay.url, max_retries=0, timeout=0.3)


def _fail_reset(replay: ReplayServer) -> Client:
    replay.enqueue(Script([head(chunked=False), completion_event(" partial"), Reset()]))
    return Client(api_key=KEY, base_url=replay.url, max_retries=0)


def _fail_reset_before_headers(replay: ReplayServer) -> Client:
    replay.enqueue(Script([Reset()]))
    return Client(api_key=KEY, base_url=replay.url, max_retries=0)


FAILURES: dict[str, Callable[[ReplayServer], Client]] = {
    "401 from the server": _fail_401,
    "connection refused": _fail_refused,
    "read timeout before headers": _fail_stall,
    "reset before headers": _fail_reset_before_headers,
    "reset mid-stream": _fail_reset,
}


@pytest.mark.parametrize("name", list(FAILURES))
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "no-stream"])
def test_an_error_and_its_tracebacks_plain_or_verbose_never_show_the_key(
    name: str,
    stream: bool,
    replay: ReplayServer,
    tally: Any,
) -> None:
    client = FAILURES[name](replay)
    with pytest.raises(errors.APIError) as info:
        if stream:
            client.completions.create(prompt=PROMPT, stream=True).get_final_completion()
        else:
            client.completions.create(prompt=PROMPT)
    tally["secret surfaces checked"] += 1
    for where, text in every_rendering(info.value).items():
        assert_clean(f"{where} of {type(info.value).__name__}", text)
    # The renderings did include the frames' variables (else they prove nothing).
    rendered = every_rendering(info.value)
    assert re.search(r"\bself ?= ?<", rendered["IPython verbose traceback"])
    assert "self = <jupyter_complete" in rendered["traceback with locals"]
    if name != "connection refused":
        assert key_was_sent(replay)
    client.close()


def test_an_error_raised_inside_the_user_s_own_except_block_shows_no_key_either(
    replay: ReplayServer,
) -> None:
    # The traceback.format_exc() a user prints in their own handler.
    client = _fail_refused(replay)
    try:
        client.completions.create(prompt=PROMPT)
    except errors.APIConnectionError:
        text = traceback.format_exc()
    assert "APIConnectionError" in text
    assert_clean("format_exc", text)


# -- logging -----------------------------------------------------------------------------------


def test_debug_logging_of_every_library_involved_never_records_the_key(
    replay: ReplayServer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Client, "_sleep", lambda self, seconds: None)
    caplog.set_level(logging.DEBUG)  # the root logger: jupyter_complete, urllib3, everything
    replay.enqueue(
        ok_stream(),
        error_script(500, "api_error", "boom"),
        ok_stream(),
        error_script(401, "authentication_error", "invalid x-api-key"),
    )
    client = Client(api_key=KEY, base_url=replay.url, max_retries=1)
    client.completions.create(prompt=PROMPT, stream=True).get_final_completion()
    client.completions.create(prompt=PROMPT, stream=True).get_final_completion()
    with pytest.raises(errors.AuthenticationError):
        client.completions.create(prompt=PROMPT)
    with pytest.raises(errors.APIConnectionError):
        Client(api_key=KEY, base_url=refused_url(), max_retries=0).completions.create(prompt=PROMPT)
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in caplog.records:
        assert_clean(
            f"log record from {record.name}",
            formatter.format(record),
            repr(record.args),
            repr(record.__dict__),
        )
    names = {r.name for r in caplog.records}
    assert any(n.startswith("jupyter_complete.") for n in names)  # getLogger(__name__)
    assert any(n.startswith("urllib3") for n in names)
    assert key_was_sent(replay)


def test_jupyter_complete_log_debug_output_on_stderr_has_no_key(replay: ReplayServer) -> None:
    replay.enqueue(ok_stream(), error_script(401, "authentication_error", "invalid x-api-key"))
    script = textwrap.dedent(f"""
        import traceback
        from jupyter_complete import Client, errors
        client = Client(max_retries=0)
        print(client)
        print(client.completions.create(prompt={PROMPT!r}, stream=True).get_final_completion())
        try:
            client.completions.create(prompt={PROMPT!r})
        except errors.APIError as err:
            print(err)
            traceback.print_exc()
    """)
    env = {
        **os.environ,
        "JUPYTER_COMPLETE_LOG": "debug",
        "ANTHROPIC_API_KEY": KEY,
        "ANTHROPIC_BASE_URL": replay.url,
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "DEBUG:jupyter_complete.client:POST" in done.stderr  # the debug log really was on
    assert "AuthenticationError" in done.stderr
    assert_clean("stdout", done.stdout)
    assert_clean("stderr", done.stderr)
    assert key_was_sent(replay)


# -- the magic in an IPython shell ---------------------------------------------------------------


@pytest.fixture
def shell(keyed: ReplayServer) -> Iterator[Any]:
    import IPython
    from IPython.testing.globalipapp import start_ipython

    ip = start_ipython() or IPython.get_ipython()  # it returns the shell only once
    ip.run_line_magic("load_ext", "jupyter_complete")
    mode = ip.InteractiveTB.mode
    yield ip
    ip.run_line_magic("xmode", mode)
    ip.run_line_magic("config", "CompleteMagics.show_traceback = False")
    magics = ip.magics_manager.registry.get("CompleteMagics")
    if magics is not None:
        magics.close()


def run_cell(ip: Any, source: str) -> str:
    """Run a cell as a front end would; everything it printed or displayed, as text."""
    from IPython.utils.capture import capture_output

    with capture_output() as captured:
        ip.run_cell(source, store_history=False)
    shown = [
        json.dumps(o.data, default=str) + json.dumps(o.metadata, default=str)
        for o in captured.outputs
    ]
    return ANSI.sub("", captured.stdout + captured.stderr + "".join(shown))


@pytest.mark.parametrize("verbose", [False, True], ids=["one-line errors", "verbose tracebacks"])
def test_the_magic_shows_no_key_in_answers_errors_or_tracebacks(
    shell: Any,
    keyed: ReplayServer,
    verbose: bool,
    tally: Any,
) -> None:
    if verbose:
        shell.run_line_magic("xmode", "Verbose")
        shell.run_line_magic("config", "CompleteMagics.show_traceback = True")
    keyed.enqueue(
        ok_stream(" streamed"),
        json_script(
            200, {"completion": " whole", "stop_reason": "stop_sequence", "model": "replay-1"}
        ),
        error_script(401, "authentication_error", "invalid x-api-key"),
        Script([head(chunked=False), completion_event(" cut"), Reset()]),
    )
    outputs = {
        "a streamed answer": run_cell(shell, "%%complete\nSay hi"),
        "a whole answer": run_cell(shell, "%%complete --no-stream -o answer\nSay hi"),
        "a 401": run_cell(shell, "%%complete\nSay hi"),
        "a cut stream": run_cell(shell, "%%complete\nSay hi"),
        "a refused connection": run_cell(shell, f"%%complete --base-url {refused_url()}\nhi"),
        "%config": run_cell(shell, "%config CompleteMagics"),
        "the stored completion": run_cell(shell, "print(repr(_completion), answer.to_dict())"),
        "the manual": run_cell(shell, "%complete?"),
    }
    tally["secret surfaces checked"] += len(outputs)
    assert "streamed" in outputs["a streamed answer"]
    assert "AuthenticationError" in outputs["a 401"]
    if verbose:
        # IPython's own verbose traceback, frames and their variables: what a leak would ride
        # on (before the errors.py fix, IPython >= 8 printed "Unexpected exception formatting
        # exception" and a plain traceback instead, so this check proved nothing).
        for where in ("a 401", "a cut stream", "a refused connection"):
            assert "Unexpected exception formatting" not in outputs[where]
            assert re.search(r"\bself ?= ?<jupyter_complete", outputs[where]), outputs[where]
    for where, text in outputs.items():
        assert_clean(f"the output of {where}", text)
    assert key_was_sent(keyed)


# -- the panel -----------------------------------------------------------------------------------


def widget_tree_state(root: Any) -> str:
    """Every widget's full state under ``root`` (what a saved widget view would hold)."""
    import ipywidgets

    seen: set[str] = set()
    out: list[str] = []
    todo = [root]
    while todo:
        w = todo.pop()
        if not isinstance(w, ipywidgets.Widget) or w.model_id in seen:
            continue
        seen.add(w.model_id)
        state = w.get_state()
        out.append(json.dumps(state, default=str))
        todo.extend(getattr(w, "children", ()) or ())
        todo.extend(v for v in state.values() if isinstance(v, ipywidgets.Widget))
    return "\n".join(out)


def test_the_panel_shows_no_key_in_its_widgets_traffic_history_or_errors(
    keyed: ReplayServer,
    comm_recorder: Any,
    tally: Any,
) -> None:
    pytest.importorskip("ipywidgets")
    from jupyter_complete import Panel

    keyed.enqueue(
        ok_stream(" from the panel"), error_script(401, "authentication_error", "invalid x-api-key")
    )
    panel = Panel("Say hi")  # the key comes from the environment
    surfaces: dict[str, str] = {}
    panel.run()
    assert panel.wait(30)
    assert "from the panel" in panel.text
    panel.run()
    assert panel.wait(30)
    surfaces["the 401 shown"] = panel.error.value
    assert "401" in surfaces["the 401 shown"] or "Authentication" in surfaces["the 401 shown"]
    refused = Panel("Say hi", client=Client(base_url=refused_url(), max_retries=0))
    refused.run()
    assert refused.wait(30)
    surfaces["the refused connection shown"] = refused.error.value
    for p in (panel, refused):
        surfaces[f"repr {p!r}"] = repr(p)
        surfaces["history"] = json.dumps(p.history, default=str)
        surfaces["widget state"] = widget_tree_state(p.widget)
        surfaces["mime bundle"] = json.dumps(p._repr_mimebundle_(), default=str)
    surfaces["comm traffic"] = json.dumps([s.data for s in comm_recorder.sent], default=str)
    tally["secret surfaces checked"] += len(surfaces)
    for where, text in surfaces.items():
        assert_clean(f"the panel's {where}", text)
    assert comm_recorder.sent, "no widget traffic was recorded"
    assert key_was_sent(keyed)
    panel.close()
    refused.close()


# -- a notebook, executed and saved ----------------------------------------------------------------


@pytest.mark.kernel
def test_an_executed_and_saved_notebook_holds_no_key(
    replay: ReplayServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    # The kernel inherits the environment: the key is there as a user would have it.
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", replay.url)
    monkeypatch.delenv("JUPYTER_COMPLETE_RAISE_ERRORS", raising=False)
    replay.enqueue(
        ok_stream(" notebook answer"),
        error_script(401, "authentication_error", "invalid x-api-key"),
        Script([head(chunked=False), completion_event(" cut"), Reset()]),
    )
    cells = [
        "%load_ext jupyter_complete",
        "%%complete -o answer\nSay hi",
        "%%complete\nSay hi again",
        "%xmode Verbose\n%config CompleteMagics.show_traceback = True",
        "%%complete\nAnd once more",
        f"%%complete --base-url {refused_url()}\nNobody home",
        "answer",
        "%config CompleteMagics",
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbclient.NotebookClient(
        nb, timeout=60, kernel_name="python3", allow_errors=True, startup_timeout=90
    ).execute()
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, str(path))
    saved = path.read_text()
    # The notebook really ran: the answer, the 401 and verbose tracebacks (frames with their
    # variables) are in it.
    plain = re.sub(r"\\u001b\[[0-9;]*m", "", saved)
    assert "notebook answer" in plain and "AuthenticationError" in plain, plain[-3000:]
    assert "Unexpected exception formatting" not in plain
    assert re.search(r"\bself ?= ?<jupyter_complete", plain), plain[-3000:]
    assert key_was_sent(replay)
    assert_clean("the saved notebook", saved)


@pytest.mark.parametrize("where", ["user:s3cr3t-in-url@", "?token=s3cr3t-in-url"])
def test_connection_errors_name_the_endpoint_without_credentials_from_the_base_url(
    where: str,
) -> None:
    refused = refused_url()
    base = refused.replace("://", f"://{where}") if where.endswith("@") else refused + "/" + where
    client = Client(base_url=base, api_key="k", max_retries=0)
    calls: list[Callable[[], Any]] = [
        client.models.list,
        lambda: client.completions.create(prompt=PROMPT, max_tokens_to_sample=5, model="m"),
    ]
    for call in calls:
        with pytest.raises(errors.APIConnectionError) as caught:
            call()
        assert "s3cr3t-in-url" not in str(caught.value)
        assert "Could not connect to http://127.0.0.1:" in str(caught.value)
