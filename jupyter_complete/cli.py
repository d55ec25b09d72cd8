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
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, TypeVar

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


_Limits = TypeVar("_Limits", HttpLimits, RequestLimits)

#: The options that bound what one client may cost a shared server, in the order of
#: ``serve --help``: ``(class, field, type, help)``. The option is ``--field-name``; its default
#: and the value passed to `serve` are the class's own (`HttpLimits`, `RequestLimits`), so
#: the parser, the help and the call cannot drift apart.
_LIMITS: tuple[
    tuple[type[HttpLimits] | type[RequestLimits], str, Callable[[str], float], str], ...
] = (
    (
        HttpLimits,
        "max_connections",
        int,
        "open connections at once, idle ones included (default %(default)s, and at most "
        "what the descriptor limit allows); past it, 503",
    ),
    (
        HttpLimits,
        "max_body_bytes",
        int,
        "request body size (default %(default)s, the API's 32 MB); past it, 413",
    ),
    (
        HttpLimits,
        "max_body_bytes_in_flight",
        int,
        "request bodies being read at once, by their Content-Length (default %(default)s); "
        "past it, 529",
    ),
    (
        HttpLimits,
        "max_head_bytes",
        int,
        "request line and headers (default %(default)s); past it, 431",
    ),
    (
        HttpLimits,
        "max_headers",
        int,
        "header fields in one request (default %(default)s); past it, 431",
    ),
    (
        HttpLimits,
        "head_timeout",
        float,
        "seconds to send a whole request head (default %(default)s); then 408",
    ),
    (
        HttpLimits,
        "body_timeout",
        float,
        "seconds to send a whole body (default %(default)s); then 408",
    ),
    (
        HttpLimits,
        "idle_timeout",
        float,
        "seconds a keep-alive connection may idle (default %(default)s)",
    ),
    (
        RequestLimits,
        "max_stop_sequences",
        int,
        "stop sequences per request (default %(default)s); past it, 400",
    ),
    (
        RequestLimits,
        "max_stop_sequence_chars",
        int,
        "their total length (default %(default)s); past it, 400",
    ),
    (
        RequestLimits,
        "max_prompt_bytes",
        int,
        "UTF-8 bytes of a prompt or of a request's messages, checked before tokenising "
        "(default %(default)s); past it, 400",
    ),
    (
        RequestLimits,
        "max_turns",
        int,
        "turns (messages) in one conversation (default %(default)s); past it, 400",
    ),
)


def _limits(cls: type[_Limits], args: argparse.Namespace, **extra: Any) -> _Limits:
    """``cls`` built from the parsed `_LIMITS` options that belong to it (plus ``extra``)."""
    given = {name: getattr(args, name) for owner, name, _, _ in _LIMITS if owner is cls}
    return cls(**given, **extra)


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
    for owner, name, kind, text in _LIMITS:
        flag = "--" + name.replace("_", "-")
        limits.add_argument(flag, type=kind, default=getattr(owner, name), help=text)
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
        limits = _limits(HttpLimits, args, allowed_hosts=tuple(args.allow_host))
        request_limits = _limits(RequestLimits, args)
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
