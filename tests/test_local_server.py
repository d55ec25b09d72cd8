"""The built-in local server over real HTTP on loopback, with the real 135M model.

Driven by our own client (`jupyter_complete.Client`) and, where the wire itself is the
point (chunk framing, headers, raw error bodies), by `requests` and plain sockets.
The official SDK as a peer client is in test_sdk_peer.py.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from itertools import pairwise
from typing import Any

import pytest
import requests
from fixtures_local import (
    COUNT_PROMPT,
    LOCAL_API_KEY,
    LONG_PROMPT,
    SHORT_PROMPT,
    assert_clear_greedy_path,
    assert_stream_fails_keeping_text,
    cold,
    wait_for,
)

from jupyter_complete import Client, errors
from jupyter_complete._constants import LOCAL_MODEL_NAME
from jupyter_complete.prompt import parse

pytestmark = pytest.mark.local

HEADERS = {"x-api-key": LOCAL_API_KEY, "anthropic-version": "2023-06-01"}


def _body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-2.1",
        "prompt": SHORT_PROMPT,
        "max_tokens_to_sample": 4,
        "temperature": 0,
    }
    body.update(overrides)
    return body


def _post(
    server: Any,
    body: Any,
    headers: dict[str, str] | None = None,
    path: str = "/v1/complete",
    **kwargs: Any,
) -> requests.Response:
    return requests.post(
        server.url + path,
        json=body,
        headers=HEADERS if headers is None else headers,
        timeout=30,
        **kwargs,
    )


def _error(response: requests.Response) -> tuple[int, str, str]:
    data = response.json()
    assert data["type"] == "error"
    assert data["request_id"] == response.headers["request-id"]
    return response.status_code, data["error"]["type"], data["error"]["message"]


def _read_chunks(sock: socket.socket) -> tuple[bytes, list[bytes]]:
    """Read one chunked HTTP response from a raw socket: (head, [chunk payloads])."""
    f = sock.makefile("rb")
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += f.readline()
    chunks = []
    while True:
        size = int(f.readline().strip(), 16)
        if size == 0:
            f.readline()
            return head, chunks
        chunks.append(f.read(size))
        assert f.read(2) == b"\r\n"


def _raw_request(
    server: Any, body: dict[str, Any], headers: dict[str, str] | None = None
) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    payload = json.dumps(body).encode()
    lines = [
        "POST /v1/complete HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
    ]
    lines += [f"{k}: {v}" for k, v in (HEADERS if headers is None else headers).items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
    return sock


# -- answers -------------------------------------------------------------------------------


def test_a_completion_has_text_a_stop_reason_and_the_local_model_name(local_client):
    c = local_client.completions.create(
        model="claude-2.1", prompt=SHORT_PROMPT, max_tokens_to_sample=8, temperature=0
    )
    assert c.completion
    assert c.stop_reason in ("stop_sequence", "max_tokens")
    assert c.model == LOCAL_MODEL_NAME
    assert c.id.startswith("compl_")
    assert c.request_id.startswith("req_")


def test_any_requested_model_name_is_accepted(local_client):
    for name in ("claude-instant-1.2", "my-own-name", "SmolLM2-135M-Instruct"):
        c = local_client.completions.create(
            model=name, prompt=SHORT_PROMPT, max_tokens_to_sample=1, temperature=0
        )
        assert c.model == LOCAL_MODEL_NAME


def test_streaming_delivers_deltas_and_a_final_event_with_the_stop_reason(local_client):
    with local_client.completions.create(
        prompt=SHORT_PROMPT, max_tokens_to_sample=8, temperature=0, stream=True
    ) as stream:
        events = list(stream)
    assert len(events) >= 2
    assert all(e.stop_reason is None for e in events[:-1])
    assert events[-1].stop_reason in ("stop_sequence", "max_tokens")
    assert events[-1].completion == ""
    assert "".join(e.completion for e in events)
    assert all(e.model == LOCAL_MODEL_NAME for e in events)


def test_temperature_zero_gives_the_same_text_twice(local_client, local_model):
    texts = []
    for _ in range(2):
        cold(local_model)  # the same evaluation both times (see `cold`)
        texts.append(
            local_client.completions.create(
                prompt=LONG_PROMPT, max_tokens_to_sample=12, temperature=0
            ).completion
        )
    assert texts[0] and texts[0] == texts[1]


def test_streamed_and_whole_answers_agree_at_temperature_zero(local_client, local_model):
    cold(local_model)
    whole = local_client.completions.create(
        prompt=LONG_PROMPT, max_tokens_to_sample=12, temperature=0
    )
    cold(local_model)
    with local_client.completions.create(
        prompt=LONG_PROMPT, max_tokens_to_sample=12, temperature=0, stream=True
    ) as stream:
        streamed = stream.get_final_completion()
    assert streamed.completion == whole.completion
    assert streamed.stop_reason == whole.stop_reason


def test_max_tokens_to_sample_is_honoured_with_stop_reason_max_tokens(local_client, local_model):
    c = local_client.completions.create(prompt=COUNT_PROMPT, max_tokens_to_sample=5, temperature=0)
    assert c.stop_reason == "max_tokens", f"COUNT_PROMPT runs to any limit, but: {c!r}"
    assert c.stop is None
    # Re-tokenizing the text can merge tokens, never add: at most 5.
    assert 1 <= len(local_model.tokenize(c.completion)) <= 5


def test_a_stop_sequence_stops_the_text_and_is_excluded(local_client, local_model):
    cold(local_model)
    free = local_client.completions.create(
        prompt=COUNT_PROMPT, max_tokens_to_sample=20, temperature=0
    ).completion
    words = free.split()
    assert len(words) >= 4, free
    stop = " " + words[3]
    expected = free[: free.index(stop)]
    for stream in (False, True):
        cold(local_model)  # the same greedy path as `free` (see `cold`)
        c = local_client.completions.create(
            prompt=COUNT_PROMPT,
            max_tokens_to_sample=20,
            temperature=0,
            stop_sequences=[stop],
            stream=stream,
        )
        if stream:
            c = c.get_final_completion()
        assert c.completion == expected
        assert c.stop_reason == "stop_sequence"
        assert c.stop == stop


def test_a_stop_sequence_spanning_tokens_is_never_partly_sent(local_client, local_model):
    cold(local_model)
    free = local_client.completions.create(
        prompt=COUNT_PROMPT, max_tokens_to_sample=20, temperature=0
    ).completion
    # Two words and the space between them: several tokens.
    words = free.split()
    assert len(words) >= 4, free
    stop = f"{words[2]} {words[3]}"
    cold(local_model)
    with local_client.completions.create(
        prompt=COUNT_PROMPT,
        max_tokens_to_sample=20,
        temperature=0,
        stop_sequences=[stop],
        stream=True,
    ) as stream:
        deltas = [e.completion for e in stream]
    text = "".join(deltas)
    assert text == free[: free.index(stop)]
    assert words[2] not in text.split()[-1:] or not text.endswith(words[2])


def test_sampling_at_temperature_one_varies(local_client):
    texts = {
        local_client.completions.create(
            prompt=LONG_PROMPT, max_tokens_to_sample=8, temperature=1.0
        ).completion
        for _ in range(4)
    }
    assert len(texts) > 1


def test_top_k_one_is_greedy_even_at_temperature_one(local_client, local_model):
    cold(local_model)
    greedy = local_client.completions.create(
        prompt=LONG_PROMPT, max_tokens_to_sample=8, temperature=0
    ).completion
    cold(local_model)
    top1 = local_client.completions.create(
        prompt=LONG_PROMPT, max_tokens_to_sample=8, temperature=1.0, top_k=1
    ).completion
    assert top1 == greedy


def test_a_prefill_is_continued_and_not_repeated(local_client):
    prompt = "\n\nHuman: Name a colour.\n\nAssistant: My favourite colour is"
    c = local_client.completions.create(prompt=prompt, max_tokens_to_sample=4, temperature=0)
    assert c.completion
    assert not c.completion.lstrip().startswith("My favourite colour is")


def test_responses_and_stream_events_validate_against_the_published_schema(
    local_server, spec_validator
):
    r = _post(local_server, _body())
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    spec_validator(r.json(), "CompletionResponse")
    r = _post(local_server, _body(stream=True), stream=True)
    events = [block for block in r.text.split("\n\n") if block.startswith("event: completion")]
    assert events
    for block in events:
        spec_validator(json.loads(block.split("data: ", 1)[1]), "CompletionResponse")


# -- the wire ------------------------------------------------------------------------------


def test_each_event_is_its_own_http_chunk_starting_with_a_ping(local_server):
    with _raw_request(
        local_server, _body(prompt=COUNT_PROMPT, stream=True, max_tokens_to_sample=6)
    ) as sock:
        head, chunks = _read_chunks(sock)
    assert head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding: chunked" in head.lower()
    assert b"text/event-stream" in head
    events = [c.decode() for c in chunks]
    assert all(e.count("\n\n") == 1 and e.endswith("\n\n") for e in events), events
    assert events[0] == 'event: ping\ndata: {"type": "ping"}\n\n'
    assert all(e.startswith("event: completion\n") for e in events[1:])
    final = json.loads(events[-1].split("data: ", 1)[1])
    assert final["completion"] == "" and final["stop_reason"] == "max_tokens"


def test_events_arrive_while_the_model_is_still_generating(local_server):
    # Each token's event is sent the moment it is sampled: the first completion event
    # arrives long before the last.
    r = _post(
        local_server, _body(prompt=COUNT_PROMPT, max_tokens_to_sample=30, stream=True), stream=True
    )
    arrivals = []
    for line in r.iter_lines():
        if line.startswith(b"event: completion"):
            arrivals.append(time.monotonic())
    assert len(arrivals) >= 10
    assert arrivals[-1] - arrivals[0] > 0.1


def test_every_response_carries_a_request_id(local_server):
    ok = _post(local_server, _body(max_tokens_to_sample=1))
    bad = _post(local_server, _body(foo=1))
    missing = _post(local_server, _body(), path="/v1/nope")
    ids = [r.headers["request-id"] for r in (ok, bad, missing)]
    assert all(i.startswith("req_") for i in ids)
    assert len(set(ids)) == 3


def test_one_connection_serves_several_requests(local_server):
    with requests.Session() as s:
        for body in (_body(foo=1), _body(max_tokens_to_sample=1), _body(temperature=3)):
            s.post(local_server.url + "/v1/complete", json=body, headers=HEADERS, timeout=30)
        r = s.post(
            local_server.url + "/v1/complete",
            json=_body(max_tokens_to_sample=1),
            headers=HEADERS,
            timeout=30,
        )
    assert r.status_code == 200


def test_the_legacy_version_streams_cumulative_unnamed_events_and_done(local_server):
    r = _post(
        local_server,
        _body(prompt=COUNT_PROMPT, stream=True, max_tokens_to_sample=4),
        headers={**HEADERS, "anthropic-version": "2023-01-01"},
        stream=True,
    )
    blocks = [b for b in r.text.split("\n\n") if b.startswith("data: ")]
    assert blocks[-1] == "data: [DONE]"
    texts = [json.loads(b[6:])["completion"] for b in blocks[:-1]]
    assert all(b.startswith(a) for a, b in pairwise(texts))
    assert json.loads(blocks[-2][6:])["stop_reason"] == "max_tokens"


# -- errors --------------------------------------------------------------------------------


def test_a_bad_key_is_401_authentication_error(local_server):
    with (
        Client(base_url=local_server.url, api_key="wrong", max_retries=0) as client,
        pytest.raises(errors.AuthenticationError) as info,
    ):
        client.completions.create(prompt=SHORT_PROMPT, max_tokens_to_sample=1)
    assert info.value.status_code == 401
    assert "invalid x-api-key" in str(info.value)
    assert _error(_post(local_server, _body(), headers={**HEADERS, "x-api-key": "no"})) == (
        401,
        "authentication_error",
        "invalid x-api-key",
    )


def test_a_missing_key_is_401_with_the_api_message(local_server):
    r = _post(local_server, _body(), headers={"anthropic-version": "2023-06-01"})
    assert _error(r) == (401, "authentication_error", "x-api-key header is required")


def test_a_bearer_token_is_accepted_instead_of_x_api_key(local_server):
    r = _post(
        local_server,
        _body(max_tokens_to_sample=1),
        headers={"authorization": f"Bearer {LOCAL_API_KEY}", "anthropic-version": "2023-06-01"},
    )
    assert r.status_code == 200


def test_a_missing_anthropic_version_is_400_with_the_exact_message(local_server, spec_validator):
    r = _post(local_server, _body(), headers={"x-api-key": LOCAL_API_KEY})
    assert _error(r) == (400, "invalid_request_error", "anthropic-version: header is required")
    spec_validator(r.json(), "ErrorResponse")


def test_an_unknown_version_is_400(local_server):
    r = _post(local_server, _body(), headers={**HEADERS, "anthropic-version": "2023-10-01"})
    assert _error(r) == (
        400,
        "invalid_request_error",
        'anthropic-version: "2023-10-01" is not a valid version',
    )


def test_an_unknown_body_field_is_400(local_server, spec_validator):
    r = _post(local_server, _body(foo=1))
    assert _error(r) == (400, "invalid_request_error", "foo: Extra inputs are not permitted")
    spec_validator(r.json(), "ErrorResponse")


def test_an_out_of_range_temperature_is_400(local_server):
    assert _error(_post(local_server, _body(temperature=1.5))) == (
        400,
        "invalid_request_error",
        "temperature: range: 0..1",
    )


def test_a_prompt_without_a_human_turn_is_400_with_the_api_message(local_client):
    with pytest.raises(errors.BadRequestError) as info:
        local_client.completions.create(prompt="Hello, world", max_tokens_to_sample=1)
    assert 'prompt must start with "\\n\\nHuman:" turn after an optional system prompt' in (
        info.value.message
    )


def test_a_prompt_longer_than_the_context_is_400(local_server, local_model):
    prompt = "\n\nHuman: " + "hello " * (local_model.n_ctx + 10) + "\n\nAssistant:"
    status, etype, message = _error(_post(local_server, _body(prompt=prompt)))
    assert (status, etype) == (400, "invalid_request_error")
    assert message.startswith("prompt is too long: ")
    assert message.endswith(f" > {local_model.n_ctx - 1} maximum")


def test_a_streamed_request_that_is_wrong_gets_a_plain_json_error(local_server):
    r = _post(local_server, _body(stream=True, temperature=2), stream=True)
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"]["message"] == "temperature: range: 0..1"


def test_another_path_is_404_not_found_error(local_server):
    assert _error(_post(local_server, _body(), path="/v1/completions"))[:2] == (
        404,
        "not_found_error",
    )
    with (
        Client(
            base_url=local_server.url + "/elsewhere", api_key=LOCAL_API_KEY, max_retries=0
        ) as client,
        pytest.raises(errors.NotFoundError),
    ):
        client.completions.create(prompt=SHORT_PROMPT, max_tokens_to_sample=1)


def test_a_wrong_method_is_405_with_an_envelope(local_server):
    r = requests.get(local_server.url + "/v1/complete", headers=HEADERS, timeout=10)
    assert _error(r)[:2] == (405, "invalid_request_error")
    assert r.headers["allow"] == "POST"
    r = requests.delete(local_server.url + "/v1/complete", timeout=10)
    assert r.status_code == 405


def test_a_body_past_the_limit_is_413_request_too_large(local_model):
    from jupyter_complete.local import serve

    with serve(model=local_model, api_key="k", max_body_bytes=2048) as server:
        big = _body(prompt="\n\nHuman: " + "x" * 5000 + "\n\nAssistant:")
        r = _post(server, big, headers={**HEADERS, "x-api-key": "k"})
        assert _error(r) == (
            413,
            "request_too_large",
            "Request exceeds the maximum allowed number of bytes.",
        )
        with Client(base_url=server.url, api_key="k", max_retries=0) as client:
            with pytest.raises(errors.RequestTooLargeError):
                client.completions.create(prompt=big["prompt"], max_tokens_to_sample=1)
            # and the server still answers normal requests
            assert client.completions.create(prompt=SHORT_PROMPT, max_tokens_to_sample=1)


# -- disconnects, queueing, binding --------------------------------------------------------


def test_a_streaming_client_that_disconnects_frees_the_model(local_server, local_client):
    before = local_server.stats["disconnected"]
    stream = local_client.completions.create(
        prompt=COUNT_PROMPT, max_tokens_to_sample=1000, temperature=0, stream=True
    )
    next(iter(stream))
    stream.close()
    started = time.monotonic()
    assert wait_for(lambda: local_server.stats["disconnected"] > before)
    assert wait_for(lambda: not local_server.gate.busy)
    # 1000 tokens would take over 10 s; the model was free at once.
    assert time.monotonic() - started < 3
    c = local_client.completions.create(prompt=SHORT_PROMPT, max_tokens_to_sample=2)
    assert c.completion


def test_a_waiting_non_streaming_client_that_disconnects_stops_its_generation(local_server):
    before = local_server.stats["disconnected"]
    sock = _raw_request(local_server, _body(prompt=COUNT_PROMPT, max_tokens_to_sample=1000))
    time.sleep(0.3)  # generating now; nothing has been written back yet
    # The client goes away with a reset (as a killed process or a timed-out socket with
    # SO_LINGER 0 does). A plain close() sends only a FIN, which on the wire is the same
    # as a half-close after the request, and a half-closed client must still get its
    # answer (test_server_attacks); that one is noticed when the answer is written.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    assert wait_for(lambda: local_server.stats["disconnected"] > before, timeout=3)
    assert wait_for(lambda: not local_server.gate.busy, timeout=3)


def test_concurrent_clients_all_finish_or_get_529(local_model):
    from jupyter_complete.local import serve

    # The clients' greedy texts are compared, each evaluated on whatever the last one left in
    # the cache: a prompt with no near tie on its greedy path makes them equal on every build.
    assert_clear_greedy_path(local_model, local_model.apply_chat_template(parse(COUNT_PROMPT)), 6)

    results: list[Any] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def one(stream: bool) -> None:
        try:
            with Client(base_url=server.url, api_key="k", max_retries=0) as client:
                start.wait(timeout=30)  # all six at once, so the queue really fills
                c = client.completions.create(
                    prompt=COUNT_PROMPT, max_tokens_to_sample=6, temperature=0, stream=stream
                )
                text = c.get_final_completion().completion if stream else c.completion
            outcome: Any = text
        except errors.OverloadedError as err:
            outcome = err
        with lock:
            results.append(outcome)

    with serve(model=local_model, api_key="k", max_queue=1) as server:
        # Hold the gate as a running generation would, so the six clients meet a busy model
        # however the machine schedules them: one queues, the other five are turned away.
        held = server.gate.admit()
        assert held is not None and server.gate.wait(held)
        threads = [threading.Thread(target=one, args=(i % 2 == 0,)) for i in range(6)]
        for t in threads:
            t.start()
        assert wait_for(lambda: server.stats.snapshot()["overloaded"] == 5, timeout=30)
        assert server.gate.waiting == 1
        server.gate.release()
        for t in threads:
            t.join(timeout=60)
        stats = server.stats.snapshot()
    finished = [r for r in results if isinstance(r, str)]
    overloaded = [r for r in results if isinstance(r, errors.OverloadedError)]
    assert len(results) == 6
    assert len(finished) + len(overloaded) == 6
    assert finished and all(finished)
    assert len(set(finished)) == 1  # the same greedy text for everyone who got through
    assert overloaded, "max_queue=1 with 6 clients must turn some away"
    err = overloaded[0]
    assert err.status_code == 529 and err.type == "overloaded_error"
    assert err.headers.get("x-should-retry") == "true"
    assert stats["overloaded"] == len(overloaded)


def test_a_529_is_retried_by_our_client_when_it_may_retry(local_model):
    from jupyter_complete.local import serve

    with serve(model=local_model, api_key="k", max_queue=0) as server:
        # Hold the gate as a running generation would, and end that "generation" while the
        # client waits to retry: the retry succeeds however slowly the machine generates.
        held = server.gate.admit()
        assert held is not None and server.gate.wait(held)
        with Client(base_url=server.url, api_key="k", max_retries=3) as client:
            real_sleep = client._sleep

            def sleep_while_the_gate_frees(seconds: float) -> None:
                server.gate.release()
                real_sleep(seconds)

            client._sleep = sleep_while_the_gate_frees  # type: ignore[method-assign]
            c = client.completions.create(prompt=SHORT_PROMPT, max_tokens_to_sample=2)
    assert c.completion
    assert server.stats["overloaded"] >= 1


def test_binding_beyond_loopback_without_a_key_is_refused(local_model):
    from jupyter_complete.local import serve

    for host in ("0.0.0.0", ""):
        with pytest.raises(ValueError, match="API key"):
            serve(host, 0, local_model)
    with serve("0.0.0.0", 0, local_model, api_key="k") as server:
        assert server.requires_key
        r = _post(server, _body(max_tokens_to_sample=1), headers={**HEADERS, "x-api-key": "k"})
        assert r.status_code == 200


def test_a_loopback_server_without_a_key_accepts_any_key(local_model):
    from jupyter_complete.local import serve

    with serve("127.0.0.1", 0, local_model) as server:
        r = _post(
            server, _body(max_tokens_to_sample=1), headers={"anthropic-version": "2023-06-01"}
        )
        assert r.status_code == 200


def test_closing_the_server_stops_a_running_stream(local_model):
    from jupyter_complete.local import serve

    server = serve(model=local_model, api_key="k")
    with Client(base_url=server.url, api_key="k", max_retries=0) as client:
        stream = client.completions.create(
            prompt=COUNT_PROMPT, max_tokens_to_sample=1000, stream=True
        )
        next(iter(stream))
        started = time.monotonic()
        server.close()
        with pytest.raises(errors.APIConnectionError):
            stream.get_final_completion()
    assert time.monotonic() - started < 5
    assert not server.gate.busy


def test_a_queued_streaming_client_that_leaves_gives_up_its_place(local_model):
    from jupyter_complete.local import serve

    with serve(model=local_model, api_key="k", max_queue=2, ping_interval=0.05) as server:
        keyed = {**HEADERS, "x-api-key": "k"}
        running = _raw_request(
            server, _body(prompt=COUNT_PROMPT, max_tokens_to_sample=150, stream=True), headers=keyed
        )
        assert wait_for(lambda: server.gate.busy)
        queued = _raw_request(server, _body(stream=True), headers=keyed)
        head = queued.recv(4096)
        assert head.startswith(b"HTTP/1.1 200")  # admitted: headers and a ping while it waits
        assert wait_for(lambda: server.gate.waiting == 1)
        queued.close()
        assert wait_for(lambda: server.gate.waiting == 0, timeout=3)
        assert server.gate.busy  # the running generation goes on
        running.close()
        assert wait_for(lambda: server.stats["disconnected"] == 2)


def test_a_model_failure_mid_stream_is_an_error_event_with_the_text_so_far(
    failing_server, monkeypatch
):
    server, calls = failing_server
    with Client(base_url=server.url, api_key=LOCAL_API_KEY, max_retries=0) as client:
        assert_stream_fails_keeping_text(client)
        calls.clear()
        with pytest.raises(errors.InternalServerError) as info:
            client.completions.create(prompt=LONG_PROMPT, max_tokens_to_sample=20)
        assert info.value.status_code == 500
        # counted once the handler is done, which can be just after the client has its answer
        assert wait_for(lambda: server.stats["failed"] == 2)
        monkeypatch.undo()
        assert client.completions.create(prompt=SHORT_PROMPT, max_tokens_to_sample=2)


def test_an_unparseable_request_line_gets_a_status_line_and_an_envelope(local_server):
    host, port = local_server.url.removeprefix("http://").split(":")
    for line in (b"HELLO\r\n\r\n", b"POST /v1/complete HTTP/2.0\r\n\r\n"):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(line)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 4") or head.startswith(b"HTTP/1.1 5"), answer[:80]
        assert json.loads(body)["type"] == "error"


def test_a_burst_of_fifty_connections_is_answered_not_reset(local_model):
    from jupyter_complete.local import serve

    statuses: list[object] = []
    connect_times: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(50)

    def one() -> None:
        start.wait(timeout=30)
        began = time.monotonic()
        try:
            with _raw_request(
                server, _body(max_tokens_to_sample=1), headers={**HEADERS, "x-api-key": "k"}
            ) as sock:
                connected = time.monotonic() - began
                outcome: object = int(sock.makefile("rb").readline().split()[1])
        except OSError as err:
            outcome, connected = err, 0.0
        with lock:
            statuses.append(outcome)
            connect_times.append(connected)

    with serve(model=local_model, api_key="k", max_queue=4) as server:
        threads = [threading.Thread(target=one) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert len(statuses) == 50
    assert all(s in (200, 529) for s in statuses), [s for s in statuses if s not in (200, 529)]
    assert statuses.count(200) >= 1
    # A full accept backlog makes the kernel drop SYNs, which the client resends after a
    # second (or gets reset): every connection must have been taken at once.
    assert max(connect_times) < 0.9, sorted(connect_times)[-5:]
