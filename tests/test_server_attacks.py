"""The local server tried as an attacker would, on loopback: each case of issue 12.

A server shared by a class must not let a stranger (no key) or one key holder cost it
unbounded memory, threads, descriptors or model time, nor read it through DNS rebinding.
Every case runs against a real server over real sockets, bounded in count and time (a few
MiB where the old server was shown to take GiB: the property is the same). Memory and
thread figures before and after are in tests/benchmarks/bench_server_attacks.py.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import pytest
from fixtures_attacks import (
    ATTACK_KEY,
    assert_envelope,
    connect,
    exchange,
    head,
    post,
    read,
    wait_until,
)

pytest.importorskip("llama_cpp", reason="needs the [local] extra (llama-cpp-python)")

pytestmark = [pytest.mark.local, pytest.mark.timeout(300)]

PROMPT = "\n\nHuman: Say one word.\n\nAssistant:"
LONG_PROMPT = "\n\nHuman: Write a long story about a dragon who learns to bake bread.\n\nAssistant:"
VALID: dict[str, Any] = {"model": "local", "prompt": PROMPT, "max_tokens_to_sample": 1}


def chunked(body: bytes) -> bytes:
    return b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"


# -- bodies: framing, size, and the key before any of them ---------------------------------


@pytest.mark.parametrize("size", [b"-1", b"+61", b"0_61", b"0x61", b" 61"])
def test_a_chunk_size_that_is_not_plain_hex_is_a_400_and_the_connection_is_closed(
    attack_server: Any,
    size: bytes,
) -> None:
    data = head(extra={"transfer-encoding": "chunked"}) + size + b"\r\n" + b"a" * 0x61 + b"\r\n"
    with connect(attack_server.port) as sock:
        sock.sendall(data)
        answer = read(sock)
        # It is not read any further: what follows cannot reach a parser.
        with pytest.raises(OSError):
            for _ in range(64):
                sock.sendall(b"x" * (1 << 20))
    assert_envelope(answer, 400, "invalid_request_error", "Invalid HTTP request")
    assert answer.closed


def test_a_stranger_s_endless_chunked_body_is_refused_before_it_is_read(
    attack_server: Any,
) -> None:
    # The 1 GiB case, bounded: the server answers 401 from the head and stops
    # reading after its small drain allowance, so what the sender can push is bounded.
    with connect(attack_server.port) as sock:
        sock.sendall(head(key=None, extra={"transfer-encoding": "chunked"}) + b"-1\r\n")
        answer = read(sock, check_close=0)
        pushed = 0
        with pytest.raises(OSError):
            while pushed < 256 << 20:
                sock.sendall(b"y" * (1 << 20))
                pushed += 1 << 20
    # 401 for the missing key, or 400 for the chunk size when it came in the same read as
    # the head (h11 parses on before the app runs): refused either way, nothing buffered.
    if answer.status == 401:
        assert_envelope(answer, 401, "authentication_error", "x-api-key header is required")
    else:
        assert_envelope(answer, 400, "invalid_request_error", "chunk")
    assert pushed < 64 << 20, f"the server kept reading: {pushed >> 20} MiB"


def test_the_key_is_checked_before_a_body_is_read(attack_server: Any) -> None:
    # A 32 MiB body is announced but never sent: the 401 comes from the head alone.
    for key in (None, "wrong"):
        with connect(attack_server.port) as sock:
            sock.sendall(head(key=key, length=32 << 20))
            answer = read(sock, timeout=10, check_close=0)
        assert_envelope(answer, 401, "authentication_error")


def test_thirty_strangers_sending_big_bodies_are_all_refused_without_reading_them(
    attack_server: Any,
) -> None:
    socks = [connect(attack_server.port) for _ in range(30)]
    try:
        for sock in socks:
            sock.sendall(head(key=None, length=32 << 20) + b" " * (256 << 10))
        answers = [read(sock, timeout=20, check_close=0) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    for answer in answers:
        assert_envelope(answer, 401, "authentication_error")


def test_a_head_that_never_ends_is_cut_at_the_head_size_limit(attack_server: Any) -> None:
    limit = attack_server.limits.max_head_bytes
    socks = [connect(attack_server.port) for _ in range(30)]
    try:
        answers = []
        for sock in socks:
            sock.sendall(b"POST /v1/complete HTTP/1.1\r\n")
            try:
                for i in range(limit // 1000 + 4):
                    sock.sendall(b"x-h%d: %s\r\n" % (i, b"v" * 990))
            except OSError:
                pass
            answers.append(read(sock, timeout=10))
    finally:
        for sock in socks:
            sock.close()
    for answer in answers:
        assert_envelope(answer, 431, "invalid_request_error")
        assert answer.closed


# -- slow clients: the head's clock ------------------------------------------------------------


def test_a_head_trickled_slower_than_the_head_timeout_is_cut_with_a_408(
    attack_server: Any,
) -> None:
    timeout = attack_server.limits.head_timeout
    with connect(attack_server.port) as sock:
        started = time.monotonic()
        data = head(length=2)
        answer = None
        for byte in data[:-4]:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.2)
            if time.monotonic() - started > timeout + 1:
                break
        answer = read(sock, timeout=10)
        elapsed = time.monotonic() - started
    assert_envelope(answer, 408, "invalid_request_error", "request head")
    assert answer.closed
    assert timeout * 0.9 <= elapsed < timeout + 10


def test_a_thousand_slowloris_connections_hold_no_threads_and_are_all_cut(
    attack_server: Any,
) -> None:
    threads_before = threading.active_count()
    socks = []
    try:
        for i in range(1000):
            sock = connect(attack_server.port)
            sock.sendall(b"POST /v1/complete HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow-%d: " % i)
            socks.append(sock)
        during = threading.active_count()
        # Meanwhile a real client is answered.
        answer = exchange(
            attack_server.port, post(VALID, extra={"connection": "close"}), check_close=0
        )
        assert answer.status == 200, answer
        cut = 0
        deadline = time.monotonic() + attack_server.limits.head_timeout + 30
        for sock in socks:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                while sock.recv(65536):
                    pass
                cut += 1
            except ConnectionResetError:
                cut += 1
            except TimeoutError:
                break
    finally:
        for sock in socks:
            sock.close()
    assert during - threads_before <= 2, (threads_before, during)
    assert cut == len(socks)


def test_a_client_that_half_closes_after_its_request_still_gets_its_answer(
    attack_server: Any,
) -> None:
    for stream in (False, True):
        with connect(attack_server.port) as sock:
            sock.sendall(post({**VALID, "max_tokens_to_sample": 3, "stream": stream}))
            sock.shutdown(socket.SHUT_WR)
            answer = read(sock, timeout=60)
        assert answer.status == 200, answer
        if stream:
            events = [b for b in answer.body.split(b"\n\n") if b.startswith(b"event: completion")]
            final = json.loads(events[-1].split(b"data: ", 1)[1])
        else:
            final = json.loads(answer.body)
        assert final["stop_reason"] in ("max_tokens", "stop_sequence")
        assert answer.closed


def test_a_half_closing_client_that_asks_to_close_the_connection_still_gets_its_answer(
    attack_server: Any,
) -> None:
    # HTTP/1.0 and "Connection: close" are what a one-shot client (nc -N, a script) sends
    # before shutting down its side; after the request, h11 has that side as MUST_CLOSE.
    body = {**VALID, "max_tokens_to_sample": 3}
    closing = post(body, extra={"connection": "close"})
    http10 = post(body).replace(b" HTTP/1.1\r\n", b" HTTP/1.0\r\n", 1)
    for request in (closing, http10):
        with connect(attack_server.port) as sock:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
            answer = read(sock, timeout=60)
        assert answer.status == 200, (request[:40], answer)
        assert json.loads(answer.body)["stop_reason"] in ("max_tokens", "stop_sequence")
        assert answer.closed


@pytest.mark.parametrize(
    "line",
    [
        b"x-api-key : " + ATTACK_KEY.encode(),
        b"x-api-key:" + ATTACK_KEY.encode() + b"\r\nbad line " + ATTACK_KEY.encode(),
    ],
    ids=["space before colon", "no colon"],
)
def test_a_malformed_header_is_refused_without_echoing_what_it_held(
    attack_server: Any,
    line: bytes,
) -> None:
    # The refusal may end up in a notebook's output or a proxy's log: the key must not.
    request = b"GET /v1/models HTTP/1.1\r\nhost: 127.0.0.1\r\n" + line + b"\r\n\r\n"
    answer = exchange(attack_server.port, request, check_close=0)
    assert_envelope(answer, 400, "invalid_request_error", "Invalid HTTP request")
    assert ATTACK_KEY.encode() not in answer.body + answer.rest


# -- request smuggling -----------------------------------------------------------------------


HIDDEN = (
    b"GET /v1/models HTTP/1.1\r\nhost: 127.0.0.1\r\nx-api-key: "
    + ATTACK_KEY.encode()
    + (b"\r\nanthropic-version: 2023-06-01\r\n\r\n")
)


def test_content_length_with_transfer_encoding_is_refused_and_the_hidden_request_unanswered(
    attack_server: Any,
) -> None:
    body = json.dumps(VALID).encode()
    framed = chunked(body)
    data = head(length=len(framed), extra={"transfer-encoding": "chunked"}) + framed + HIDDEN
    answer = exchange(attack_server.port, data)
    assert_envelope(answer, 400, "invalid_request_error", "Transfer-Encoding")
    assert answer.closed
    assert b"HTTP/1.1" not in answer.rest, answer.rest[:200]


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ([b"content-length: 5", b"content-length: 6"], 400),
        ([b"content-length: 5, 6"], 400),
        ([b"transfer-encoding: xchunked"], 501),
        ([b"transfer-encoding: chunked, identity"], 501),
        ([b"transfer-encoding: chunked", b"transfer-encoding: chunked"], 501),
    ],
    ids=repr,
)
def test_smuggling_shapes_of_the_framing_headers_are_refused_and_the_connection_closed(
    attack_server: Any,
    fields: list[bytes],
    status: int,
) -> None:
    raw = b"".join(f + b"\r\n" for f in fields)
    answer = exchange(attack_server.port, head(raw=raw) + b"hello" + HIDDEN)
    etype = "api_error" if status >= 500 else "invalid_request_error"
    assert_envelope(answer, status, etype)
    assert answer.closed
    assert b"HTTP/1.1" not in answer.rest


# -- Host: DNS rebinding ---------------------------------------------------------------------


def test_a_host_that_is_not_the_server_s_name_is_refused_by_a_keyless_server(
    open_server: Any,
) -> None:
    port = open_server.port
    for host in (
        "attacker.example",
        f"attacker.example:{port}",
        "127.0.0.1.nip.io",
        "localhost.attacker.example",
        "[::2]",
    ):
        answer = exchange(port, head("GET", "/v1/models", key=None, host=host), check_close=0)
        assert_envelope(answer, 403, "permission_error", "--allow-host")
    before = open_server.stats["requests"]
    answer = exchange(port, post(VALID, key=None, host="attacker.example"), check_close=0)
    assert_envelope(answer, 403, "permission_error")
    assert open_server.stats["completed"] == 0 or open_server.stats["requests"] > before


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.0.0.1:{port}",
        "localhost:{port}",
        "LOCALHOST",
        "[::1]:{port}",
        "notebook.example:443",
    ],
)
def test_the_server_s_own_names_and_allowed_hosts_are_answered(
    open_server: Any,
    host: str,
) -> None:
    answer = exchange(
        open_server.port,
        head("GET", "/v1/models", key=None, host=host.format(port=open_server.port)),
        check_close=0,
    )
    assert answer.status == 200, answer.body


# -- one key holder against the others -------------------------------------------------------


def test_a_million_stop_sequences_are_a_400_before_the_model_is_touched(
    attack_server: Any,
) -> None:
    body = {**VALID, "stop_sequences": [f"stop{i}" for i in range(1_000_000)]}
    answer = exchange(attack_server.port, post(body), timeout=60, check_close=0)
    assert_envelope(answer, 400, "invalid_request_error", "--max-stop-sequences")
    long = {**VALID, "stop_sequences": ["x" * 5000]}
    answer = exchange(attack_server.port, post(long), check_close=0)
    assert_envelope(answer, 400, "invalid_request_error", "--max-stop-sequence-chars")
    fine = {**VALID, "stop_sequences": [f"s{i}" for i in range(64)]}
    assert exchange(attack_server.port, post(fine), check_close=0).status == 200


def test_a_huge_prompt_is_refused_by_its_size_before_it_is_tokenised(
    attack_server: Any,
    local_model: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tokenised: list[int] = []
    real = local_model.tokenize
    monkeypatch.setattr(
        local_model, "tokenize", lambda text, **kw: tokenised.append(len(text)) or real(text, **kw)
    )
    for size in (600_000, 4 << 20):  # past what 4096 tokens can hold; past --max-prompt-bytes
        prompt = "\n\nHuman: " + "word " * (size // 5) + "\n\nAssistant:"
        answer = exchange(
            attack_server.port, post({**VALID, "prompt": prompt}), timeout=60, check_close=0
        )
        assert_envelope(answer, 400, "invalid_request_error", "prompt is too long")
        assert "bytes" in answer.envelope["error"]["message"]
    assert not tokenised or max(tokenised) < 100_000


def test_a_hundred_thousand_turns_are_refused_by_their_count(attack_server: Any) -> None:
    turns = "".join(f"\n\nHuman: q{i}\n\nAssistant: a{i}" for i in range(64_000))
    prompt = turns + "\n\nHuman: and?\n\nAssistant:"
    answer = exchange(
        attack_server.port, post({**VALID, "prompt": prompt}), timeout=60, check_close=0
    )
    assert_envelope(answer, 400, "invalid_request_error", "turns")


def test_a_reader_that_never_reads_its_cumulative_stream_does_not_hold_the_model(
    attack_server: Any,
) -> None:
    body = {
        **VALID,
        "prompt": LONG_PROMPT,
        "max_tokens_to_sample": 200,
        "temperature": 1,
        "stream": True,
    }
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    slow.connect(("127.0.0.1", attack_server.port))
    try:
        slow.sendall(post(body, version="2023-01-01"))
        time.sleep(0.5)
        # The text is generated whatever the reader does; the model is then free and the
        # next request is answered while the slow reader has read nothing.
        assert wait_until(lambda: not attack_server.gate.busy, 120)
        answer = exchange(
            attack_server.port,
            post({**VALID, "max_tokens_to_sample": 3}),
            timeout=60,
            check_close=0,
        )
        assert answer.status == 200
    finally:
        slow.close()


def test_a_repeated_prompt_reuses_only_the_template_s_own_tokens_from_the_cache(
    attack_server: Any,
    local_model: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jupyter_complete.prompt import parse

    evaluated: list[int] = []
    real = local_model.llm.eval
    monkeypatch.setattr(
        local_model.llm, "eval", lambda tokens: evaluated.append(len(tokens)) or real(tokens)
    )
    secret = "\n\nHuman: my secret is 4242, keep it\n\nAssistant:"
    tokens, public = local_model.render_public(parse(secret))
    other, other_public = local_model.render_public(parse(PROMPT))
    assert public == other_public and tokens[:public] == other[:public]
    # Someone else's request first: the cache holds at least the template's own tokens.
    assert exchange(attack_server.port, post(VALID), check_close=0).status == 200
    for _ in range(2):
        evaluated.clear()
        answer = exchange(attack_server.port, post({**VALID, "prompt": secret}), check_close=0)
        assert answer.status == 200
        # The prompt is evaluated past the template's own prefix, even when repeated: how
        # long it takes says nothing about what anyone sent before.
        assert evaluated[0] == len(tokens) - public, (evaluated, len(tokens), public)


def test_a_client_s_repeated_prompt_on_its_own_connection_reuses_its_own_cache(
    attack_server: Any,
    local_model: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    evaluated: list[int] = []
    real = local_model.llm.eval
    monkeypatch.setattr(
        local_model.llm, "eval", lambda tokens: evaluated.append(len(tokens)) or real(tokens)
    )
    body = {**VALID, "prompt": "\n\nHuman: my own question, twice\n\nAssistant:"}
    with connect(attack_server.port) as sock:  # one keep-alive connection
        for _ in range(2):
            evaluated.clear()
            sock.sendall(post(body))
            assert read(sock, check_close=0).status == 200
    # The second time the cache holds this client's own prompt: only one token is evaluated.
    assert evaluated[0] == 1, evaluated


# -- connections and descriptors ---------------------------------------------------------------


def test_connections_past_the_limit_get_a_503_and_the_server_still_answers(
    local_model: Any,
) -> None:
    from jupyter_complete.local import serve
    from jupyter_complete.local.http.limits import HttpLimits

    with serve(
        model=local_model, api_key=ATTACK_KEY, limits=HttpLimits(max_connections=20, head_timeout=2)
    ) as server:
        idle = [connect(server.port) for _ in range(20)]
        try:
            assert wait_until(lambda: len(server._connections) == 20)
            extra = exchange(server.port, b"", timeout=10)
            assert_envelope(extra, 503, "overloaded_error", "--max-connections")
        finally:
            for sock in idle:
                sock.close()
        assert wait_until(lambda: len(server._connections) == 0)
        answer = exchange(server.port, post(VALID), check_close=0)
        assert answer.status == 200


def test_key_holders_cannot_hold_more_body_bytes_at_once_than_the_in_flight_limit(
    local_model: Any,
) -> None:
    from jupyter_complete.local import serve
    from jupyter_complete.local.http.limits import HttpLimits

    limits = HttpLimits(max_body_bytes=1 << 20, max_body_bytes_in_flight=2 << 20, body_timeout=2)
    with serve(model=local_model, api_key=ATTACK_KEY, limits=limits) as server:
        stalled = []
        try:
            for _ in range(2):  # two bodies of 1 MiB announced, half sent: 2 MiB in flight
                sock = connect(server.port)
                sock.sendall(head(length=1 << 20) + b" " * (1 << 19))
                stalled.append(sock)
            time.sleep(0.5)
            answer = exchange(server.port, head(length=1 << 20), timeout=10, check_close=0)
            assert_envelope(answer, 529, "overloaded_error", "--max-body-bytes-in-flight")
            # Small bodies are always read: a normal request is answered meanwhile.
            assert exchange(server.port, post(VALID), check_close=0).status == 200
            # The stalled bodies time out (408) and free the budget.
            for sock in stalled:
                assert_envelope(read(sock, timeout=30, check_close=0), 408, "invalid_request_error")
        finally:
            for sock in stalled:
                sock.close()
        answer = exchange(
            server.port, head(length=1 << 20) + b" " * (1 << 20), timeout=30, check_close=0
        )
        assert_envelope(answer, 400, "invalid_request_error")  # read and parsed: not JSON
