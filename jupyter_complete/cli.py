"""``jupyter-complete``: command-line entry point.

``jupyter-complete serve [--host H] [--port P] [--model-path GGUF] [--api-key KEY]
[--threads N] [--refuse-complete MODEL] [--upstream URL [--upstream-api openai|anthropic]
[--upstream-key-env NAME] [--upstream-model NAME] [--max-upstream N]]`` runs the
``/v1/complete`` and ``/v1/messages`` server (the built-in model, or a serving engine at
``--upstream``) in the foreground and prints its URL on the first line of stdout (so
scripts can read it), until Ctrl-C. The key may come from ``JUPYTER_COMPLETE_SERVER_API_KEY``
instead of ``--api-key``, which other users of the machine can read in ``ps``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from ._constants import ENV_MODEL_PATH, ENV_SERVER_API_KEY
from .errors import LocalModelUnavailableError
from .local.api.rules import RequestLimits
from .local.http.limits import HttpLimits


def _threads(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, not {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jupyter-complete",
        description="Tools for jupyter_complete (Anthropic /v1/complete in Jupyter).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the built-in local model as a /v1/complete and /v1/messages server",
        description="Serve POST /v1/complete and POST /v1/messages from a local GGUF model "
        "(default: the built-in SmolLM2-135M-Instruct). Point a client at it with "
        "ANTHROPIC_BASE_URL=<printed URL>.",
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; anything else needs a key)",
    )
    serve.add_argument(
        "--port", type=int, default=8765, help="TCP port (default 8765; 0 = any free port)"
    )
    serve.add_argument(
        "--model-path",
        default=None,
        help=f"a GGUF file (default ${ENV_MODEL_PATH}, else the built-in model)",
    )
    serve.add_argument(
        "--api-key",
        default=None,
        help=f"require this key in x-api-key (default ${ENV_SERVER_API_KEY}, "
        "else none, which only loopback allows). Prefer the environment "
        "variable: other users can read a command line with ps",
    )
    serve.add_argument(
        "--threads",
        type=_threads,
        default=None,
        metavar="N",
        help="CPU threads for the model, prompt and generation alike "
        "(default $JUPYTER_COMPLETE_THREADS, else measured while it runs: every "
        "CPU this process may use, half of them or 1, whichever is fastest)",
    )
    serve.add_argument(
        "--max-queue",
        type=int,
        default=8,
        help="requests that may wait while one generates; past it, 529",
    )
    limits = serve.add_argument_group(
        "limits", "what one client may cost a shared server; each refusal is an API error"
    )
    limits.add_argument(
        "--max-connections",
        type=int,
        default=HttpLimits.max_connections,
        help="open connections at once, idle ones included (default "
        "%(default)s, and at most what the descriptor limit allows); past it, "
        "503",
    )
    limits.add_argument(
        "--max-body-bytes",
        type=int,
        default=HttpLimits.max_body_bytes,
        help="request body size (default %(default)s, the API's 32 MB); past it, 413",
    )
    limits.add_argument(
        "--max-body-bytes-in-flight",
        type=int,
        default=HttpLimits.max_body_bytes_in_flight,
        help="request bodies being read at once, by their Content-Length "
        "(default %(default)s); past it, 529",
    )
    limits.add_argument(
        "--max-head-bytes",
        type=int,
        default=HttpLimits.max_head_bytes,
        help="request line and headers (default %(default)s); past it, 431",
    )
    limits.add_argument(
        "--max-headers",
        type=int,
        default=HttpLimits.max_headers,
        help="header fields in one request (default %(default)s); past it, 431",
    )
    limits.add_argument(
        "--head-timeout",
        type=float,
        default=HttpLimits.head_timeout,
        help="seconds to send a whole request head (default %(default)s); then 408",
    )
    limits.add_argument(
        "--body-timeout",
        type=float,
        default=HttpLimits.body_timeout,
        help="seconds to send a whole body (default %(default)s); then 408",
    )
    limits.add_argument(
        "--idle-timeout",
        type=float,
        default=HttpLimits.idle_timeout,
        help="seconds a keep-alive connection may idle (default %(default)s)",
    )
    limits.add_argument(
        "--max-stop-sequences",
        type=int,
        default=RequestLimits.max_stop_sequences,
        help="stop sequences per request (default %(default)s); past it, 400",
    )
    limits.add_argument(
        "--max-stop-sequence-chars",
        type=int,
        default=RequestLimits.max_stop_sequence_chars,
        help="their total length (default %(default)s); past it, 400",
    )
    limits.add_argument(
        "--max-prompt-bytes",
        type=int,
        default=RequestLimits.max_prompt_bytes,
        help="UTF-8 bytes of a prompt or of a request's messages, checked "
        "before tokenising (default %(default)s); past it, 400",
    )
    limits.add_argument(
        "--max-turns",
        type=int,
        default=RequestLimits.max_turns,
        help="turns (messages) in one conversation (default %(default)s); past it, 400",
    )
    limits.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="without --api-key, also answer requests whose Host header names "
        "NAME (a DNS name this server is reached by; '*' for any); "
        "repeatable. A keyless server answers only its listening address (and "
        "localhost on loopback), so web pages cannot reach it by DNS "
        "rebinding; with a key, Host is not checked",
    )
    serve.add_argument(
        "--reuse-cache",
        action="store_true",
        help="reuse the KV cache for the whole prefix a prompt shares with the "
        "one before (faster repeats). Only when you alone use the server: "
        "with several users, its timing tells one how much of a guessed prompt "
        "another sent. Without it, only the chat template's own tokens are "
        "reused",
    )
    engine = serve.add_argument_group(
        "upstream",
        "generate with a serving engine (llama-server, vLLM, Ollama, LiteLLM ...) "
        "instead of a local model: our endpoints stay the same, the engine batches requests",
    )
    engine.add_argument(
        "--upstream",
        metavar="URL",
        default=None,
        help="the engine's base URL (http://127.0.0.1:8080); --model-path and "
        "--max-queue are then unused",
    )
    engine.add_argument(
        "--upstream-api",
        choices=("openai", "anthropic"),
        default="openai",
        help="the protocol to speak to it: openai (/v1/chat/completions, the "
        "default) or anthropic (/v1/messages)",
    )
    engine.add_argument(
        "--upstream-key-env",
        metavar="NAME",
        default=None,
        help="the environment variable holding the engine's API key (sent only "
        "to the --upstream URL)",
    )
    engine.add_argument(
        "--upstream-model",
        metavar="NAME",
        default=None,
        help="the model name to ask the engine for (default: the name each request gives)",
    )
    engine.add_argument(
        "--max-upstream",
        type=int,
        default=64,
        metavar="N",
        help="requests in flight to the engine at once (default %(default)s); "
        "past it, 529 overloaded_error",
    )
    serve.add_argument(
        "--refuse-complete",
        action="append",
        default=[],
        metavar="MODEL",
        help='answer /v1/complete for MODEL with 400 "MODEL does not support the '
        'Text Completions API; use the Messages API", as newer models do '
        "(/v1/messages still serves it); repeatable. For showing the switch to "
        "the Messages API (%%%%complete --api auto)",
    )
    return parser


def _serve(args: argparse.Namespace) -> int:
    from .local.server import serve

    try:
        limits = HttpLimits(
            max_connections=args.max_connections,
            max_body_bytes=args.max_body_bytes,
            max_body_bytes_in_flight=args.max_body_bytes_in_flight,
            max_head_bytes=args.max_head_bytes,
            max_headers=args.max_headers,
            head_timeout=args.head_timeout,
            body_timeout=args.body_timeout,
            idle_timeout=args.idle_timeout,
            allowed_hosts=tuple(args.allow_host),
        )
        request_limits = RequestLimits(
            max_stop_sequences=args.max_stop_sequences,
            max_stop_sequence_chars=args.max_stop_sequence_chars,
            max_prompt_bytes=args.max_prompt_bytes,
            max_turns=args.max_turns,
        )
        upstream = None
        if args.upstream is not None:
            from .local.upstream import UpstreamConfig

            upstream = UpstreamConfig(
                url=args.upstream,
                api=args.upstream_api,
                key_env=args.upstream_key_env,
                model=args.upstream_model,
                max_outstanding=args.max_upstream,
            )
        key = args.api_key if args.api_key is not None else os.environ.get(ENV_SERVER_API_KEY)
        server = serve(
            args.host,
            args.port,
            args.model_path,
            key,
            max_queue=args.max_queue,
            refuse_complete_models=args.refuse_complete,
            limits=limits,
            request_limits=request_limits,
            reuse_cache=args.reuse_cache,
            n_threads=args.threads,
            upstream=upstream,
        )
    except (ValueError, OSError, LocalModelUnavailableError) as err:
        print(f"jupyter-complete serve: {err}", file=sys.stderr)
        return 2

    def stop(_signum: int, _frame: FrameType | None) -> None:
        server.close()

    signal.signal(signal.SIGTERM, stop)
    print(server.url, flush=True)
    source = f"{upstream.base} ({upstream.api})" if upstream is not None else server.model.name
    print(
        f"serving {source} at {server.url}/v1/complete and /v1/messages (Ctrl-C to stop)",
        file=sys.stderr,
        flush=True,
    )
    server.serve_until_interrupted()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    raise AssertionError(f"unknown command {args.command!r}")  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
