"""``jupyter-complete``: command-line entry point.

``jupyter-complete serve [--host H] [--port P] [--model-path GGUF] [--api-key KEY]
[--threads N] [--refuse-complete MODEL]`` runs the built-in ``/v1/complete`` and
``/v1/messages`` server in the foreground and prints its URL on the first line of stdout (so
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
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1; anything else needs a "
                       "key)")
    serve.add_argument("--port", type=int, default=8765, help="TCP port (default 8765; 0 = any "
                       "free port)")
    serve.add_argument("--model-path", default=None,
                       help=f"a GGUF file (default ${ENV_MODEL_PATH}, else the built-in model)")
    serve.add_argument("--api-key", default=None,
                       help=f"require this key in x-api-key (default ${ENV_SERVER_API_KEY}, "
                       "else none, which only loopback allows). Prefer the environment "
                       "variable: other users can read a command line with ps")
    serve.add_argument("--threads", type=_threads, default=None, metavar="N",
                       help="CPU threads for the model, prompt and generation alike "
                       "(default $JUPYTER_COMPLETE_THREADS, else measured while it runs: every "
                       "CPU this process may use, half of them or 1, whichever is fastest)")
    serve.add_argument("--max-queue", type=int, default=8,
                       help="requests that may wait while one generates; past it, 529")
    serve.add_argument("--refuse-complete", action="append", default=[], metavar="MODEL",
                       help="answer /v1/complete for MODEL with 400 \"MODEL does not support the "
                       "Text Completions API; use the Messages API\", as newer models do "
                       "(/v1/messages still serves it); repeatable. For showing the switch to "
                       "the Messages API (%%%%complete --api auto)")
    return parser


def _serve(args: argparse.Namespace) -> int:
    from .local.server import serve

    try:
        key = args.api_key if args.api_key is not None else os.environ.get(ENV_SERVER_API_KEY)
        server = serve(args.host, args.port, args.model_path, key, max_queue=args.max_queue,
                       refuse_complete_models=args.refuse_complete, n_threads=args.threads)
    except (ValueError, OSError, LocalModelUnavailableError) as err:
        print(f"jupyter-complete serve: {err}", file=sys.stderr)
        return 2

    def stop(_signum: int, _frame: FrameType | None) -> None:
        server.close()

    signal.signal(signal.SIGTERM, stop)
    print(server.url, flush=True)
    print(f"serving {server.model.name} at {server.url}/v1/complete and /v1/messages "
          "(Ctrl-C to stop)",
          file=sys.stderr, flush=True)
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
