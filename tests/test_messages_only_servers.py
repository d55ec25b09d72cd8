"""Servers without ``/v1/complete``: ``auto`` switches once, ``complete`` names the cause.

Two kinds of server: crafted loopback servers answering ``/v1/complete`` with the exact 404
of llama.cpp's ``llama-server`` (its HTTP error handler: ``{"error": {"message": "File Not
Found", "type": "not_found_error", "code": 404}}``) and of FastAPI apps (vLLM, the LiteLLM
proxy, llama-cpp-python: ``{"detail": "Not Found"}``), then speaking Messages; and the REAL
llama-cpp-python OpenAI-compatible server (``python -m llama_cpp.server``) with the
SmolLM2 GGUF, which has neither endpoint: its 404 must still be read as "no such path".
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from fixtures_replay import ReplayServer, Script, head, json_script
from test_wire_inputs import PROMPT, make_client, stream_script, text_events, whole_body

from jupyter_complete import Client, errors

NOT_FOUND = {
    "llama-server": (
        "application/json; charset=utf-8",
        json.dumps(
            {"error": {"message": "File Not Found", "type": "not_found_error", "code": 404}}
        ).encode(),
    ),
    "fastapi (vLLM, LiteLLM)": ("application/json", b'{"detail":"Not Found"}'),
    "plain text": ("text/plain; charset=utf-8", b"404 page not found"),
}
SWITCH_NOTICE = "has no Text Completions endpoint"


def not_found(shape: str) -> Script:
    ctype, raw = NOT_FOUND[shape]
    return Script([head(404, content_type=ctype, length=len(raw)) + raw])


def answer(api: str, stream: bool, text: str) -> Script:
    if stream:
        return stream_script(text_events(api, [text]))
    return json_script(200, whole_body(api, text))


def ask(client: Client, stream: bool, model: str = "some-model") -> str:
    if stream:
        return (
            client.completions.create(prompt=PROMPT, model=model, stream=True)
            .get_final_completion()
            .completion
        )
    return client.completions.create(prompt=PROMPT, model=model).completion


@pytest.mark.parametrize("stream", [True, False], ids=["streaming", "whole"])
@pytest.mark.parametrize("shape", list(NOT_FOUND))
def test_auto_switches_once_when_the_server_has_no_complete_endpoint(
    replay: ReplayServer, capsys: pytest.CaptureFixture[str], shape: str, stream: bool
) -> None:
    replay.enqueue(
        not_found(shape),
        answer("messages", stream, " via messages"),
        answer("messages", stream, " again"),
    )
    client = make_client(replay, "auto")
    assert ask(client, stream) == " via messages"
    assert ask(client, stream, model="another-model") == " again"
    assert [r.path for r in replay.received] == ["/v1/complete", "/v1/messages", "/v1/messages"]
    err = capsys.readouterr().err
    assert err.count(SWITCH_NOTICE) == 1 and f"127.0.0.1:{replay.port}" in err
    assert client.complete_missing


@pytest.mark.parametrize("stream", [True, False], ids=["streaming", "whole"])
@pytest.mark.parametrize("shape", list(NOT_FOUND))
def test_complete_against_a_server_without_the_endpoint_names_the_cause_and_the_fix(
    replay: ReplayServer, shape: str, stream: bool
) -> None:
    replay.enqueue(not_found(shape))
    with pytest.raises(errors.NotFoundError) as info:
        ask(make_client(replay, "complete"), stream)
    text = str(info.value)
    assert "has no /v1/complete" in text and "--api messages" in text
    assert "Check the model name" not in text
    assert len(replay.received) == 1


@pytest.mark.parametrize("stream", [True, False], ids=["streaming", "whole"])
def test_a_404_about_the_model_is_not_read_as_a_missing_endpoint(
    replay: ReplayServer, stream: bool
) -> None:
    replay.enqueue(
        json_script(
            404,
            {
                "type": "error",
                "error": {"type": "not_found_error", "message": "model: claude-nope"},
            },
        )
    )
    client = make_client(replay, "auto")
    with pytest.raises(errors.NotFoundError) as info:
        ask(client, stream, model="claude-nope")
    assert "Check the model name" in str(info.value)
    assert not client.complete_missing and len(replay.received) == 1


def test_auto_against_a_server_with_neither_endpoint_says_both_are_missing(
    replay: ReplayServer, capsys: pytest.CaptureFixture[str]
) -> None:
    replay.enqueue(not_found("llama-server"), not_found("llama-server"))
    with pytest.raises(errors.NotFoundError) as info:
        ask(make_client(replay, "auto"), True)
    assert "has no /v1/messages" in str(info.value)
    assert capsys.readouterr().err.count(SWITCH_NOTICE) == 1


# -- the real llama-cpp-python server -------------------------------------------------------


@pytest.fixture(scope="module")
def llama_cpp_server() -> Iterator[str]:
    """``python -m llama_cpp.server`` on a free loopback port with the SmolLM2 GGUF."""
    pytest.importorskip("llama_cpp", reason="needs the [local] extra (llama-cpp-python)")
    for dep in ("uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings"):
        pytest.importorskip(dep, reason=f"llama_cpp.server needs {dep} (the test extra)")
    from jupyter_complete.local.weights import default_model_path

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(default_model_path()),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--n_ctx",
            "512",
            "--verbose",
            "False",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        url = None
        seen: list[str] = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            m = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", line)
            if m:
                url = m.group(1)
                break
        assert url, "llama_cpp.server did not start:\n" + "".join(seen[-20:])
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def real_client(url: str, api: str) -> Client:
    return Client(base_url=url, api_key="unused", api=api, max_retries=0)  # type: ignore[arg-type]


@pytest.mark.local
@pytest.mark.parametrize("stream", [True, False], ids=["streaming", "whole"])
def test_the_real_llama_cpp_python_server_404_is_read_as_a_missing_endpoint(
    llama_cpp_server: str, stream: bool
) -> None:
    with pytest.raises(errors.NotFoundError) as info:
        ask(real_client(llama_cpp_server, "complete"), stream)
    text = str(info.value)
    assert "has no /v1/complete" in text and "--api messages" in text
    assert "Check the model name" not in text


@pytest.mark.local
def test_auto_against_the_real_llama_cpp_python_server_switches_once_then_names_the_cause(
    llama_cpp_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # llama-cpp-python speaks OpenAI's protocol only: after the switch, /v1/messages is
    # missing too, and the error says so instead of blaming the model.
    client = real_client(llama_cpp_server, "auto")
    for _ in range(2):
        with pytest.raises(errors.NotFoundError) as info:
            ask(client, True)
        assert "has no /v1/messages" in str(info.value)
    assert capsys.readouterr().err.count(SWITCH_NOTICE) == 1
