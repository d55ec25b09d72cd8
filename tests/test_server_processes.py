"""Attacks on the local server in a process of its own and in a real kernel.

Descriptors are a per-process budget, so those cases run the server in a subprocess whose
``RLIMIT_NOFILE`` is lowered (256, soft and hard) and watch that process from /proc: it
must not spin when descriptors run out, and must answer again once the idle connections
are cut. The embedded server is tried inside a real IPython kernel, where the descriptors,
threads and memory it could lose are the kernel's own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures_attacks import (
    assert_envelope,
    connect,
    cpu_seconds,
    exchange,
    head,
    post,
    proc_status,
    read,
    wait_until,
)
from fixtures_kernel import kernel_env, running_kernel

pytest.importorskip("llama_cpp", reason="needs the [local] extra (llama-cpp-python)")

pytestmark = [pytest.mark.local, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[1]
KEY = "process-test-key"
PROMPT = "\n\nHuman: Say one word.\n\nAssistant:"
VALID: dict[str, Any] = {"model": "local", "prompt": PROMPT, "max_tokens_to_sample": 1}

SERVER = textwrap.dedent("""
    import resource, sys
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    from jupyter_complete.local import serve
    from jupyter_complete.local.http.limits import HttpLimits
    server = serve("127.0.0.1", 0, None, sys.argv[3],
                   limits=HttpLimits(head_timeout=float(sys.argv[4])))
    if sys.argv[2] == "uncapped":
        server.limits.max_connections = 10**6  # let accept() meet EMFILE itself
    print(server.url, server.limits.max_connections, flush=True)
    sys.stdin.read()
    server.close()
""")


@pytest.fixture
def subprocess_server(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    mode = request.param
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, "256", mode, KEY, "2"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        url, cap = proc.stdout.readline().split()
        yield proc, int(url.rsplit(":", 1)[1]), int(cap)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("subprocess_server", ["capped", "uncapped"], indirect=True)
def test_more_idle_connections_than_descriptors_neither_spin_the_server_nor_stop_it_for_good(
    subprocess_server: tuple[subprocess.Popen[str], int, int],
) -> None:
    proc, port, cap = subprocess_server
    assert cap < 256 or cap == 10**6  # capped by the descriptor budget, or uncapped on purpose
    socks = [connect(port) for _ in range(400)]  # more than the server has descriptors for
    try:
        time.sleep(0.5)
        spent = cpu_seconds(proc.pid)
        time.sleep(1.5)
        busy = cpu_seconds(proc.pid) - spent
        # A server spinning on accept() would use the full 1.5 s of a core.
        assert busy < 0.75, f"{busy:.2f} s of CPU in 1.5 s while descriptors ran out"
        assert proc_status(proc.pid)["fds"] <= 256
        # The idle connections are cut at the head timeout (2 s), so a client is answered.
        deadline = time.monotonic() + 90
        answer = None
        while time.monotonic() < deadline:
            try:
                answer = exchange(port, post(VALID, key=KEY), timeout=30, check_close=0)
            except OSError:
                answer = None
            if answer is not None and answer.status == 200:
                break
            time.sleep(0.5)
        assert answer is not None and answer.status == 200, answer
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.kernel
def test_the_embedded_server_in_a_kernel_withstands_strangers_and_keeps_the_kernel_well() -> None:
    env = kernel_env(unset=("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"))
    env["PYTHONPATH"] = str(REPO)
    with running_kernel(env) as kernel:
        run = kernel.execute(
            "import threading\n"
            "from jupyter_complete.local.embedded import ensure_started\n"
            "url, key = ensure_started()\n",
            timeout=120,
        )
        assert run.status == "ok", run.error_text
        url = kernel.value("url")
        key = kernel.value("key")
        pid = kernel.value("__import__('os').getpid()")
        port = int(url.rsplit(":", 1)[1])
        before = proc_status(pid)

        # A stranger's endless chunked body with a negative size: refused from the head.
        with connect(port) as sock:
            sock.sendall(head(key=None, extra={"transfer-encoding": "chunked"}) + b"-1\r\n")
            answer = read(sock, check_close=0)
            assert answer.status in (400, 401)
            assert_envelope(answer, answer.status, answer.envelope["error"]["type"])
        # A web page through DNS rebinding cannot know the random key.
        answer = exchange(
            port, head("GET", "/v1/models", key=None, host="attacker.example"), check_close=0
        )
        assert_envelope(answer, 401, "authentication_error")
        # Smuggling: Content-Length with Transfer-Encoding.
        answer = exchange(
            port, head(key=key, length=5, extra={"transfer-encoding": "chunked"}) + b"0\r\n\r\n"
        )
        assert_envelope(answer, 400, "invalid_request_error")
        assert answer.closed
        # 300 slowloris connections: no thread each, and all cut at the head timeout.
        slow = []
        try:
            for _ in range(300):
                sock = connect(port)
                sock.sendall(b"POST /v1/complete HTTP/1.1\r\nhost: 127.0.0.1\r\n")
                slow.append(sock)
            during = proc_status(pid)
            assert during["Threads"] - before["Threads"] <= 2, (before, during)
            # The kernel answers its user meanwhile, and a keyed request is served.
            assert kernel.value("1 + 1") == 2
            answer = exchange(port, post(VALID, key=key), timeout=60, check_close=0)
            assert answer.status == 200
        finally:
            for sock in slow:
                sock.close()
        assert wait_until(lambda: proc_status(pid)["fds"] <= before["fds"] + 5, 30), (
            before,
            proc_status(pid),
        )
        after = proc_status(pid)
        assert after["Threads"] - before["Threads"] <= 2, (before, after)
        assert after["VmRSS"] - before["VmRSS"] < 64 * 1024, (before, after)


def test_the_serve_command_s_limit_flags_reach_the_server() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_COMPLETE_")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_complete.cli",
            "serve",
            "--port",
            "0",
            "--max-stop-sequences",
            "2",
            "--head-timeout",
            "1",
            "--allow-host",
            "lab.example",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().strip().rsplit(":", 1)[1])
        answer = exchange(
            port, post({**VALID, "stop_sequences": ["a", "b", "c"]}, key=None), check_close=0
        )
        assert_envelope(answer, 400, "invalid_request_error", "--max-stop-sequences")
        answer = exchange(
            port, head("GET", "/v1/models", key=None, host="lab.example"), check_close=0
        )
        assert answer.status == 200
        with connect(port) as sock:
            started = time.monotonic()
            assert read(sock, timeout=30).closed
            assert time.monotonic() - started < 15
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    "flag",
    [
        ["--max-connections", "0"],
        ["--max-body-bytes", "-3"],
        ["--head-timeout", "-1"],
        ["--body-timeout", "nan"],
        ["--max-headers", "0"],
        ["--max-prompt-bytes", "0"],
        ["--max-stop-sequences", "-1"],
    ],
    ids=lambda flag: " ".join(flag),
)
def test_the_serve_command_refuses_a_limit_that_cannot_work_in_one_line(flag: list[str]) -> None:
    # Accepted, such a limit would start a server that refuses every request.
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_COMPLETE_")}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-m", "jupyter_complete.cli", "serve", "--port", "0", *flag],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2, done
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and flag[0] in lines[0], done.stderr
