"""``jupyter-complete``: command-line entry point.

``jupyter-complete serve [--host H] [--port P] [--model-path GGUF] [--api-key KEY]`` runs the
built-in ``/v1/complete`` server in the foreground and prints its URL on the first line of
stdout (so scripts can read it), until Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from ._constants import ENV_MODEL_PATH
from .errors import LocalModelUnavailableError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jupyter-complete",
        description="Tools for jupyter_complete (Anthropic /v1/complete in Jupyter).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the built-in local model as a /v1/complete server",
        description="Serve POST /v1/complete from a local GGUF model (default: the built-in "
        "SmolLM2-135M-Instruct). Point a client at it with ANTHROPIC_BASE_URL=<printed URL>.",
    )
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1; anything else needs "
                       "--api-key)")
    serve.add_argument("--port", type=int, default=8765, help="TCP port (default 8765; 0 = any "
                       "free port)")
    serve.add_argument("--model-path", default=None,
                       help=f"a GGUF file (default ${ENV_MODEL_PATH}, else the built-in model)")
    serve.add_argument("--api-key", default=None,
                       help="require this key in x-api-key (default: none on loopback)")
    serve.add_argument("--max-queue", type=int, default=8,
                       help="requests that may wait while one generates; past it, 529")
    return parser


def _serve(args: argparse.Namespace) -> int:
    from .local.server import serve

    try:
        server = serve(args.host, args.port, args.model_path, args.api_key,
                       max_queue=args.max_queue)
    except (ValueError, OSError, LocalModelUnavailableError) as err:
        print(f"jupyter-complete serve: {err}", file=sys.stderr)
        return 2

    def stop(_signum: int, _frame: FrameType | None) -> None:
        server.close()

    signal.signal(signal.SIGTERM, stop)
    print(server.url, flush=True)
    print(f"serving {server.model.name} at {server.url}/v1/complete (Ctrl-C to stop)",
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
