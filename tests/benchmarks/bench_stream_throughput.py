"""Stream throughput: completion events per second, ours vs the official SDK vs a raw socket.

One pre-rendered stream (100,000 events; 10,000 with --short) is served from another process
on loopback. Each contender reads the whole stream, in rotating order, several rounds; the
table shows medians. The raw socket reader only splits the bytes into events (no HTTP
parsing, no JSON): that is the ceiling for a Python reader. "raw + JSON" also decodes each
event's JSON, the floor of what any client has to do.

    python tests/benchmarks/bench_stream_throughput.py --short
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import anthropic  # noqa: E402
from _bench import banner, interleaved, median, parse_mode, table  # noqa: E402
from _servers import FRAMINGS, MODEL, PrerenderedServer, expected_text  # noqa: E402

from jupyter_complete import Client  # noqa: E402

PROMPT = "\n\nHuman: Count.\n\nAssistant:"


def run_ours(client: Client, n_events: int) -> tuple[float, int, str]:
    parts: list[str] = []
    started = time.perf_counter()
    with client.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens_to_sample=n_events, stream=True
    ) as stream:
        count = 0
        for event in stream:
            count += 1
            parts.append(event.completion)
    elapsed = time.perf_counter() - started
    return elapsed, count, "".join(parts)


def run_sdk(client: anthropic.Anthropic, n_events: int) -> tuple[float, int, str]:
    parts: list[str] = []
    started = time.perf_counter()
    stream = client.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens_to_sample=n_events, stream=True
    )
    count = 0
    with stream:
        for event in stream:
            count += 1
            parts.append(event.completion)
    elapsed = time.perf_counter() - started
    return elapsed, count, "".join(parts)


def run_raw(base_url: str, n_events: int, decode: bool = False) -> tuple[float, int, str]:
    """Send the request by hand and split the bytes into blank-line-terminated blocks.

    With ``decode``, also JSON-decode each completion event's data: the least work any client
    must do, so the gap between the two raw figures is the price of JSON alone.
    """
    url = urlsplit(base_url)
    body = b'{"model":"bench-1","prompt":"x","max_tokens_to_sample":1,"stream":true}'
    request = (
        f"POST {url.path}/v1/complete HTTP/1.1\r\nhost: {url.netloc}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body
    started = time.perf_counter()
    blocks = 0
    parts: list[str] = []
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall(request)
        tail = b""
        while True:
            data = sock.recv(262144)
            if not data:
                break
            # The CRLF header block and chunk framing hold no "\n\n"; every event ends in one.
            pieces = (tail + data).split(b"\n\n")
            blocks += len(pieces) - 1
            tail = pieces[-1]
            if decode:
                for block in pieces[:-1]:
                    at = block.find(b'data: {"type": "completion"')
                    if at >= 0:
                        parts.append(json.loads(block[at + 6 :])["completion"])
    elapsed = time.perf_counter() - started
    pings = n_events // 1000
    return elapsed, blocks - pings, "".join(parts)


def main() -> None:
    args = parse_mode(__doc__.splitlines()[0])
    n_events = 10_000 if args.short else 100_000
    banner(f"stream throughput, {n_events:,} events per stream", args)
    want = expected_text(n_events)
    rows = []
    with PrerenderedServer([n_events, 100]) as server:
        for framing in FRAMINGS:
            url, warm_url = server.url(framing, n_events), server.url(framing, 100)
            ours = Client(base_url=url, api_key="bench-key", max_retries=0)
            sdk = anthropic.Anthropic(base_url=url, api_key="bench-key", max_retries=0)
            # One small untimed run each first: lazy imports and first-use code paths.
            run_ours(Client(base_url=warm_url, api_key="bench-key", max_retries=0), 100)
            run_sdk(anthropic.Anthropic(base_url=warm_url, api_key="bench-key", max_retries=0), 100)
            run_raw(warm_url, 100)
            contenders: dict[str, Callable[[], tuple[float, int, str]]] = {
                "jupyter_complete": lambda ours=ours: run_ours(ours, n_events),
                "anthropic SDK": lambda sdk=sdk: run_sdk(sdk, n_events),
                "raw + JSON": lambda url=url: run_raw(url, n_events, decode=True),
                "raw socket": lambda url=url: run_raw(url, n_events),
            }
            results = interleaved(contenders, args.rounds)
            for name, runs in results.items():
                for _, count, text in runs:
                    # The final event counts too; a contender that drops events is not fast.
                    if count != n_events + 1 or (text and text != want):
                        raise SystemExit(f"{name} got {count} events, wanted {n_events + 1}")
            rate = {
                name: median([(n_events + 1) / r[0] for r in runs])
                for name, runs in results.items()
            }
            rows.append(
                [
                    framing,
                    f"{rate['jupyter_complete']:,.0f}",
                    f"{rate['anthropic SDK']:,.0f}",
                    f"{rate['raw + JSON']:,.0f}",
                    f"{rate['raw socket']:,.0f}",
                    f"{rate['jupyter_complete'] / rate['anthropic SDK']:.2f}",
                    f"{rate['jupyter_complete'] / rate['raw + JSON']:.2f}",
                    f"{rate['jupyter_complete'] / rate['raw socket']:.2f}",
                ]
            )
    print(
        table(
            [
                "framing",
                "ours ev/s",
                "SDK ev/s",
                "raw+JSON ev/s",
                "raw ev/s",
                "ours/SDK",
                "ours/raw+JSON",
                "ours/raw",
            ],
            rows,
        )
    )
    print(f"(medians of {args.rounds} interleaved rounds; anthropic {anthropic.__version__})")


if __name__ == "__main__":
    main()
