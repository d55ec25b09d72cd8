"""Event latency: time from the server writing an event to the caller holding its text.

A server thread in this process writes one event every few milliseconds, stamping each with
``time.perf_counter_ns()`` just before the write (same process, so the clocks agree). The
caller reads the stamp back from the event's text the moment it receives it. Measured for
chunked and for close-delimited bodies, ours vs the official SDK, with a raw socket reader
as the floor. Rounds are interleaved; figures pool every event of every round.

    python tests/benchmarks/bench_event_latency.py --short
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
from _bench import banner, interleaved, median, parse_mode, percentile, table  # noqa: E402
from _servers import FRAMINGS, MODEL, StampingServer, stamp_of  # noqa: E402

from jupyter_complete import Client  # noqa: E402

PROMPT = "\n\nHuman: Go.\n\nAssistant:"
#: Gap between events: long enough that the caller is idle, waiting, when each one lands.
GAP = 0.003


def lag_ours(client: Client) -> list[float]:
    lags: list[float] = []
    with client.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens_to_sample=1, stream=True
    ) as stream:
        for event in stream:
            now = time.perf_counter_ns()
            if event.completion:
                lags.append((now - stamp_of(event.completion)) / 1000)
    return lags


def lag_sdk(client: anthropic.Anthropic) -> list[float]:
    lags: list[float] = []
    stream = client.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens_to_sample=1, stream=True
    )
    with stream:
        for event in stream:
            now = time.perf_counter_ns()
            if event.completion:
                lags.append((now - stamp_of(event.completion)) / 1000)
    return lags


def lag_raw(base_url: str) -> list[float]:
    """Split events off the socket by hand and decode only their JSON."""
    url = urlsplit(base_url)
    body = b'{"model":"bench-1","prompt":"x","max_tokens_to_sample":1,"stream":true}'
    request = (
        f"POST {url.path}/v1/complete HTTP/1.1\r\nhost: {url.netloc}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body
    lags: list[float] = []
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall(request)
        tail = b""
        while True:
            data = sock.recv(65536)
            if not data:
                break
            pieces = (tail + data).split(b"\n\n")
            tail = pieces[-1]
            for block in pieces[:-1]:
                at = block.find(b"data: ")
                if at < 0:
                    continue
                text = json.loads(block[at + 6 :])["completion"]
                now = time.perf_counter_ns()
                if text:
                    lags.append((now - stamp_of(text)) / 1000)
    return lags


def main() -> None:
    args = parse_mode(__doc__.splitlines()[0])
    n_events = 200 if args.short else 1000
    banner(f"event latency, {n_events} events per stream, {GAP * 1000:g} ms apart", args)
    rows = []
    with StampingServer(n_events, GAP) as server:
        for framing in FRAMINGS:
            url = server.url(framing)
            ours = Client(base_url=url, api_key="bench-key", max_retries=0)
            sdk = anthropic.Anthropic(base_url=url, api_key="bench-key", max_retries=0)
            contenders: dict[str, Callable[[], list[float]]] = {
                "jupyter_complete": lambda ours=ours: lag_ours(ours),
                "anthropic SDK": lambda sdk=sdk: lag_sdk(sdk),
                "raw socket": lambda url=url: lag_raw(url),
            }
            for run in contenders.values():
                run()  # untimed warm-up: lazy imports, first connection
            results = interleaved(contenders, args.rounds)
            for name, runs in results.items():
                lags = [lag for run in runs for lag in run]
                if len(lags) != n_events * args.rounds:
                    raise SystemExit(
                        f"{name} received {len(lags)} events, wanted {n_events * args.rounds}"
                    )
                rows.append(
                    [
                        framing,
                        name,
                        f"{median(lags):.0f}",
                        f"{percentile(lags, 90):.0f}",
                        f"{percentile(lags, 99):.0f}",
                        f"{max(lags):.0f}",
                    ]
                )
    print(table(["framing", "reader", "median us", "p90 us", "p99 us", "max us"], rows))
    print(f"(all events of {args.rounds} interleaved rounds; anthropic {anthropic.__version__})")


if __name__ == "__main__":
    main()
