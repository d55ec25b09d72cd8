"""Load: 50 streaming clients at once against the built-in local server, several rounds.

Every client either gets its whole answer or a 529 ``OverloadedError`` (one generation runs,
a bounded queue waits, the rest are turned away at once); nothing else: no
connection is reset at the door (the server's listen backlog holds a burst of 50).
Across rounds the process must not grow: no threads left behind (ours or the server's),
no file descriptors, no Python memory (tracemalloc) and no unbounded resident memory.
Afterwards the server still answers. Kept short: eight tokens per answer.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

pytest.importorskip("llama_cpp", reason="needs the [local] extra (llama-cpp-python)")

from jupyter_complete import Client, errors  # noqa: E402

pytestmark = [pytest.mark.local, pytest.mark.timeout(600)]

CLIENTS = 50
ROUNDS = 4  # the first warms up (lazy imports, pools, caches); the others are compared
PROMPT = "\n\nHuman: Count to five.\n\nAssistant:"


@dataclass
class Outcome:
    kind: str  # "answer", "overloaded" or the name of anything else that happened
    detail: str = ""


def one_client(url: str, key: str, start: threading.Barrier) -> Outcome:
    with Client(base_url=url, api_key=key, max_retries=0, timeout=120) as client:
        start.wait(30)
        try:
            with client.completions.create(
                prompt=PROMPT, max_tokens_to_sample=8, temperature=0, stream=True
            ) as stream:
                final = stream.get_final_completion()
        except errors.OverloadedError as err:
            assert err.status_code == 529 and "\n" not in str(err)
            return Outcome("overloaded")
        except errors.APIConnectionError as err:
            return Outcome(type(err).__name__, str(err))
        except Exception as err:  # anything else is the failure this test exists to find
            return Outcome(type(err).__name__, str(err))
    if final.stop_reason not in ("max_tokens", "stop_sequence") or not final.completion:
        return Outcome("incomplete answer", repr(final))
    return Outcome("answer")


def run_round(url: str, key: str) -> Counter[str]:
    start = threading.Barrier(CLIENTS)
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def worker() -> None:
        result = one_client(url, key, start)
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=worker, name=f"load-client-{i}") for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not any(t.is_alive() for t in threads), "a client never finished"
    others = [o for o in outcomes if o.kind not in ("answer", "overloaded")]
    assert not others, f"{len(others)} clients failed otherwise, e.g. {others[0]}"
    assert len(outcomes) == CLIENTS
    return Counter(o.kind for o in outcomes)


def server_threads() -> int:
    # ThreadingHTTPServer runs each connection in a thread named for process_request_thread.
    return sum("process_request_thread" in t.name for t in threading.enumerate())


def settle(server: Any, timeout: float = 20.0) -> None:
    """Wait for the server's connection threads to finish (clients closed their sockets)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server_threads() == 0 and not server._connections:
            return
        time.sleep(0.05)
    raise AssertionError(f"{server_threads()} server connection threads still running")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_fifty_streaming_clients_all_finish_or_get_529_and_nothing_grows_across_rounds(
    local_server: Any,
    local_api_key: str,
    tally: Any,
) -> None:
    url = local_server.url
    before = local_server.stats.snapshot()
    tracemalloc.start()
    figures = []
    try:
        for round_no in range(ROUNDS):
            counts = run_round(url, local_api_key)
            settle(local_server)
            gc.collect()
            figures.append(
                {
                    "answers": counts["answer"],
                    "overloaded": counts["overloaded"],
                    "threads": threading.active_count(),
                    "server threads": server_threads(),
                    "fds": open_fds(),
                    "python bytes": tracemalloc.get_traced_memory()[0],
                    "rss": rss_bytes(),
                }
            )
            tally["load clients"] += CLIENTS
            # One generation at a time and a queue of max_queue: at least that many answer.
            assert counts["answer"] >= 1, (round_no, counts)
    finally:
        tracemalloc.stop()
    print("\nload rounds:", *figures, sep="\n  ")
    after = local_server.stats.snapshot()
    # The server counted what the clients saw, and nothing failed on its side.
    assert after["overloaded"] - before["overloaded"] == sum(f["overloaded"] for f in figures)
    assert after["failed"] == before["failed"]
    warm, *measured = figures
    for f in measured:
        assert f["threads"] == warm["threads"], figures
        assert f["server threads"] == 0
        assert f["fds"] <= warm["fds"], figures
    # Python memory after warm-up: keeping even 1 kB per client (a session, a response, a
    # stream) would add 100 kB over the two rounds compared; noise is a few kB.
    growth = measured[-1]["python bytes"] - measured[0]["python bytes"]
    assert growth < 96 << 10, f"Python memory grew {growth:,} bytes in {ROUNDS - 2} rounds"
    # Resident memory includes llama.cpp's buffers and the allocator's caches: bounded, not 0.
    rss_growth = measured[-1]["rss"] - measured[0]["rss"]
    assert rss_growth < 64 << 20, f"RSS grew {rss_growth:,} bytes"


def test_fifty_simultaneous_connections_are_all_answered_none_reset(
    local_server: Any,
    local_api_key: str,
    tally: Any,
) -> None:
    counts: Counter[str] = Counter()
    for _ in range(2):  # two bursts, so a lucky one cannot hide the resets
        counts += run_round(local_server.url, local_api_key)
        settle(local_server)
        tally["load clients"] += CLIENTS
    assert set(counts) <= {"answer", "overloaded"} and counts["answer"] >= 2, counts


def test_the_server_answers_after_the_load(local_server: Any, local_api_key: str) -> None:
    with Client(
        base_url=local_server.url, api_key=local_api_key, max_retries=0, timeout=60
    ) as client:
        answer = client.completions.create(prompt=PROMPT, max_tokens_to_sample=4, temperature=0)
    assert answer.completion and answer.stop_reason in ("max_tokens", "stop_sequence")
    assert local_server.gate.waiting == 0 and not local_server.gate.busy
