"""Classroom scale: concurrent streaming clients against three servers, side by side in one run.

    python tests/benchmarks/bench_upstream.py [--short | --full] [--rounds N]
        [--engine llama-server | llama-cpp-python]

Contenders, all serving the same SmolLM2-135M GGUF on this machine:

* (a) builtin: ``jupyter-complete``'s own server (`jupyter_complete.local.serve`), one
  generation at a time (its queue is made deep enough for every client here);
* (b) engine: llama.cpp's ``llama-server --parallel 8`` directly, ``/v1/chat/completions``
  streamed, with the body our upstream backend would send (so the same sampling);
* (c) upstream: our server with ``--upstream`` in front of (b).

(a) and (c) are asked through ``/v1/messages`` (streamed; ``usage.output_tokens`` counts the
tokens), (b) through its OpenAI endpoint (``usage.completion_tokens``). Every client asks for
64 tokens (16 in short mode) at temperature 1 (the API's default sampling, so no two clients
share a cached answer). At 1, 8 and 32 concurrent clients: aggregate tokens/s (all tokens /
wall time of the level) and p50/p95 time to first text. Goal: (c) >= 90% of (b) at every
level, and far above (a) at 8 and 32. Prints figures only; it never fails on a number.

llama-server comes from ``scripts/build_llama_server.sh``'s cache; without it the benchmark
says so and skips. ``--engine llama-cpp-python`` puts llama-cpp-python's OpenAI server in
(b)'s place instead: it runs one request at a time, so it measures what our server adds in
front of an engine, not batching.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE.parent))

from _bench import banner, median, parse_mode, percentile, table  # noqa: E402

PROMPT = "Write a long story about a dragon who learns to bake bread."
MAX_TOKENS = 64
LEVELS = (1, 8, 32)


async def _one(client: Any, kind: str, url: str, body: dict[str, Any]) -> tuple[float, int]:
    """Stream one request; (seconds to first text, tokens generated)."""
    from httpx_sse import aconnect_sse

    started = time.perf_counter()
    first: float | None = None
    tokens = chunks = 0
    path = "/v1/chat/completions" if kind == "openai" else "/v1/messages"
    headers = {"anthropic-version": "2023-06-01", "x-api-key": "bench"}
    async with aconnect_sse(client, "POST", url + path, json=body, headers=headers) as source:
        if source.response.status_code != 200:
            raise RuntimeError(
                f"{url}{path}: HTTP {source.response.status_code}: "
                f"{(await source.response.aread())[:300]!r}"
            )
        async for sse in source.aiter_sse():
            if not sse.data or sse.data == "[DONE]":
                continue
            data = json.loads(sse.data)
            if kind == "openai":
                for choice in data.get("choices") or ():
                    if (choice.get("delta") or {}).get("content"):
                        chunks += 1
                        if first is None:
                            first = time.perf_counter() - started
                if data.get("usage"):
                    tokens = data["usage"]["completion_tokens"]
            else:
                if data.get("type") == "content_block_delta" and first is None:
                    first = time.perf_counter() - started
                if data.get("type") == "message_delta":
                    tokens = data["usage"]["output_tokens"]
                if data.get("type") == "error":
                    raise RuntimeError(f"{url}: {data}")
    # An engine whose stream has no usage (llama-cpp-python) sends a chunk per token.
    return (first if first is not None else time.perf_counter() - started), tokens or chunks


async def _level(kind: str, url: str, body: dict[str, Any], clients: int) -> dict[str, float]:
    import httpx

    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(600.0), limits=limits, trust_env=False
    ) as client:
        started = time.perf_counter()
        outcomes = await asyncio.gather(
            *(_one(client, kind, url, body) for _ in range(clients)), return_exceptions=True
        )
        wall = time.perf_counter() - started
    results = [r for r in outcomes if not isinstance(r, BaseException)]
    failures = [r for r in outcomes if isinstance(r, BaseException)]
    if failures:
        print(
            f"  {url} ({kind}), {clients} clients: {len(failures)} failed: "
            f"{type(failures[0]).__name__}: {failures[0]}",
            flush=True,
        )
    ttfts = [r[0] for r in results]
    tokens = sum(r[1] for r in results)
    return {
        "tok_s": tokens / wall,
        "p50": percentile(ttfts, 50),
        "p95": percentile(ttfts, 95),
        "tokens": tokens,
        "failed": len(failures),
    }


def main() -> int:
    engine_choice = "llama-server"
    if "--engine" in sys.argv:  # not a _bench option: take it out before parse_mode
        at = sys.argv.index("--engine")
        engine_choice = sys.argv[at + 1]
        del sys.argv[at : at + 2]
    args = parse_mode("concurrent clients: built-in server vs llama-server vs us in front")
    try:
        import httpx  # noqa: F401
        import httpx_sse  # noqa: F401
        import llama_cpp  # noqa: F401
    except ImportError as err:
        print(f"skipped: the [local] extra is not installed ({err.name})")
        return 0
    import pytest
    from fixtures_upstream import start_llama_cpp_python_server, start_llama_server

    from jupyter_complete.local import serve
    from jupyter_complete.local.request import MessagesRequest
    from jupyter_complete.local.upstream import UpstreamConfig, openai_body

    rounds = 1 if args.short else args.rounds
    args.rounds = rounds
    # Short mode (CI) keeps the levels but asks for fewer tokens, so it stays quick.
    max_tokens = 16 if args.short else MAX_TOKENS
    banner(f"{max_tokens} tokens per client at {', '.join(map(str, LEVELS))} clients", args)
    messages = {
        "model": "smollm2",
        "max_tokens": max_tokens,
        "stream": True,
        "messages": [{"role": "user", "content": PROMPT}],
    }
    engine_body = openai_body(MessagesRequest.from_dict(dict(messages)), "smollm2")
    # One count for both engines (half the CPUs, as when this benchmark was written); the
    # built-in model's tuner would otherwise pick its own (all CPUs on an idle machine).
    threads = max(1, (os.cpu_count() or 2) // 2)
    try:
        if engine_choice == "llama-cpp-python":
            # One request at a time: measures what we add, not batching.
            engine = start_llama_cpp_python_server(Path(tempfile.mkdtemp()), threads=threads)
            engine_name = "(b) llama-cpp-python server"
        else:
            engine = start_llama_server(
                Path(tempfile.mkdtemp()), parallel=8, ctx_per_slot=1024, threads=threads
            )
            engine_name = "(b) llama-server -np 8"
    except (pytest.skip.Exception, pytest.fail.Exception) as err:
        print(f"skipped: {err}")
        return 0
    builtin = serve("127.0.0.1", 0, api_key="bench", max_queue=max(LEVELS) + 8, n_threads=threads)
    front = serve(
        "127.0.0.1",
        0,
        api_key="bench",
        upstream=UpstreamConfig(url=engine.url, max_outstanding=max(LEVELS) + 8),
    )
    contenders = {
        "(a) builtin": ("messages", builtin.url, messages),
        engine_name: ("openai", engine.url, engine_body),
        "(c) us -> (b)": ("messages", front.url, messages),
    }
    try:
        # Warm-up: every server loads what it loads lazily, the engine fills its cache.
        for kind, url, body in contenders.values():
            asyncio.run(_level(kind, url, body, 1))
        figures: dict[tuple[str, int], list[dict[str, float]]] = {}
        for level in LEVELS:
            names = list(contenders)
            for r in range(rounds):
                for name in names[r % 3 :] + names[: r % 3]:
                    kind, url, body = contenders[name]
                    figures.setdefault((name, level), []).append(
                        asyncio.run(_level(kind, url, body, level))
                    )
    finally:
        front.close()
        builtin.close()
        engine.stop()

    def fig(name: str, level: int, key: str) -> float:
        return median([f[key] for f in figures[(name, level)]])

    rows = []
    for level in LEVELS:
        for name in contenders:
            failed = sum(int(f["failed"]) for f in figures[(name, level)])
            rows.append(
                [
                    level,
                    name,
                    f"{fig(name, level, 'tok_s'):.1f}",
                    f"{fig(name, level, 'p50') * 1000:.0f}",
                    f"{fig(name, level, 'p95') * 1000:.0f}",
                    failed,
                ]
            )
    print(table(["clients", "server", "tokens/s", "ttft p50 ms", "ttft p95 ms", "failed"], rows))
    print()
    ratio_rows = []
    for level in LEVELS:
        a, b, c = (fig(n, level, "tok_s") for n in contenders)
        pa, pb, pc = (fig(n, level, "p50") for n in contenders)
        ratio_rows.append([level, f"{c / b:.2f}", f"{c / a:.2f}", f"{(pc - pb) * 1000:+.0f}"])
    print(
        table(
            ["clients", "(c)/(b) tokens/s", "(c)/(a) tokens/s", "ttft p50 (c)-(b) ms"], ratio_rows
        )
    )
    print("goal: (c)/(b) >= 0.90 at every level; (c)/(a) well above 1 at 8 and 32")
    return 0


if __name__ == "__main__":
    sys.exit(main())
