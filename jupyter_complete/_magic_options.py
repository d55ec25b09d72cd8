"""What ``%complete`` accepts: the magic's own settings (traits) and its option table.

`MagicSettings` adds to `CompletionSettings` (the request parameters) the traits that only
concern the magic; `jupyter_complete.magics.CompleteMagics` inherits both, so each is one
``%config CompleteMagics.<name>`` entry. `OPTIONS` is the table the magic's argparse parser
(IPython's ``magic_arguments``, built once from a list like IPython's own ``script_args``)
and the line tokenizer (`jupyter_complete._magic_line.LineSyntax`) are both built from, so
they agree on which options take a value; each option's help is its trait's help, so
``%complete?`` and ``%config`` describe a setting alike. IPython is imported only when
`with_options` decorates the magic, so the table and `settings_for` are tested without it.
"""

from __future__ import annotations

import argparse
import keyword
from collections.abc import Callable, Sequence
from typing import Any

from traitlets import Bool, Enum, Float, Unicode

from ._constants import DEFAULT_TIMEOUT
from ._magic_line import OptionSpec
from .errors import InvalidParameterError
from .prompt import unescape_stop_sequence
from .settings import CompletionSettings, check_params

#: The values of ``--format`` and ``--api``; the first is the default.
FORMATS = ("text", "markdown", "code")
APIS = ("complete", "messages", "auto")


def _choice(values: tuple[str, ...], help: str) -> Any:
    """A configurable choice among ``values``, the first being the default."""
    return Enum(values, default_value=values[0], help=help).tag(config=True)


class MagicSettings(CompletionSettings):
    """The settings of the magic beyond the request parameters of `CompletionSettings`."""

    show_traceback = Bool(
        False,
        help="Show full Python tracebacks for errors instead of a one-line message.",
    ).tag(config=True)
    base_url = Unicode(
        "",
        help="Server to send requests to. Empty: ANTHROPIC_BASE_URL, else the Anthropic API "
        "when ANTHROPIC_API_KEY is set, else the built-in local model.",
    ).tag(config=True)
    format = _choice(
        FORMATS,
        help="How the answer is shown: 'text' as it streams, 'markdown', rendered once "
        "when the stream ends, or 'code': as text, and its fenced code (else the whole "
        "answer) goes into a new cell below, not run.",
    )
    stream = Bool(
        True, help="Stream the answer as it is generated (False: wait for the whole answer)."
    ).tag(config=True)
    interpolate = Bool(
        True, help="Replace {name} in the prompt by the value of `name` in the user namespace."
    ).tag(config=True)
    api = _choice(
        APIS,
        help="Transport: 'complete' (POST /v1/complete), 'messages' (the same request sent to "
        "/v1/messages, for models without Text Completions), or 'auto' (switch a model to "
        "Messages when the server says it needs it).",
    )
    timeout = Float(
        DEFAULT_TIMEOUT,
        min=0.1,
        help="Read timeout in seconds: the longest silence allowed from the server.",
    ).tag(config=True)


def _help(name: str) -> str:
    """The help text of a trait, with the ``%config`` name that sets its default."""
    return f"{MagicSettings.class_traits()[name].help} [CompleteMagics.{name}]"


def _option(*names: str, **keywords: Any) -> OptionSpec:
    return names, keywords


#: The options: (names, argparse keywords), in the order the manual lists them.
OPTIONS: tuple[OptionSpec, ...] = (
    _option("-m", "--model", metavar="NAME", help=_help("model")),
    _option("-n", "--max-tokens", type=int, metavar="N", help=_help("max_tokens")),
    _option("-t", "--temperature", type=float, metavar="T", help=_help("temperature")),
    _option("-k", "--top-k", type=int, metavar="K", help=_help("top_k")),
    _option("-p", "--top-p", type=float, metavar="P", help=_help("top_p")),
    _option(
        "-s",
        "--stop",
        action="append",
        metavar="SEQ",
        help=_help("stop_sequences") + " Repeat for several; \\n and \\t mean newline and tab.",
    ),
    _option("--system", metavar="TEXT", help=_help("system")),
    _option(
        "--raw",
        action="store_true",
        help="Send the cell exactly as written: no Human/Assistant wrapping.",
    ),
    _option(
        "--no-stream",
        action="store_true",
        help="Wait for the whole answer. [CompleteMagics.stream]",
    ),
    _option("-f", "--format", choices=FORMATS, help=_help("format")),
    _option(
        "-o",
        "--output",
        metavar="NAME",
        help="Also store the Completion in the variable NAME (it is always in _completion).",
    ),
    _option(
        "--no-interpolate",
        action="store_true",
        help="Send {name} literally. [CompleteMagics.interpolate]",
    ),
    _option("--base-url", metavar="URL", help=_help("base_url")),
    _option("--api", choices=APIS, help=_help("api")),
    _option(
        "--panel",
        action="store_true",
        help="Open the tuning panel (sliders, Run/Stop) on this prompt instead of sending it; "
        "with -o NAME the panel goes to NAME.",
    ),
    _option(
        "--chat",
        nargs="?",
        const="default",
        metavar="NAME",
        help="Continue the conversation NAME (default: 'default'): its earlier turns go into "
        "the prompt and this answer is added when it ends. The conversation is in _chat; "
        "%%complete --chat NAME alone returns it. An interrupted answer is added only by "
        "%%complete --keep NAME (or chat.keep()). In %%complete (line) form, give NAME before "
        "the text.",
    ),
    _option(
        "--reset",
        nargs="?",
        const="default",
        metavar="NAME",
        help="Clear the conversation NAME (default: 'default'; its object, _chat or a panel's, "
        "is emptied in place) and send nothing.",
    ),
    _option(
        "--keep",
        nargs="?",
        const="default",
        metavar="NAME",
        help="Add the interrupted (unfinished) answer of conversation NAME as its last turn, "
        "and send nothing.",
    ),
    _option(
        "--models",
        action="store_true",
        help="List the models the endpoint offers (GET /v1/models) and send nothing.",
    ),
    _option(
        "text",
        nargs=argparse.REMAINDER,
        help="%%complete only: the prompt, the rest of the line (%%%%complete takes the cell).",
    ),
)

#: Request parameter (as `jupyter_complete.settings.check_params` names it) -> its option.
OPTION_FOR = {
    "model": "--model/-m",
    "max_tokens_to_sample": "--max-tokens/-n",
    "temperature": "--temperature/-t",
    "top_k": "--top-k/-k",
    "top_p": "--top-p/-p",
    "stop_sequences": "--stop/-s",
}


def settings_for(defaults: CompletionSettings, args: argparse.Namespace) -> CompletionSettings:
    """A cell's settings: a copy of ``defaults`` with the options in ``args`` applied.

    ``args`` is what the parser built from `OPTIONS` returned; ``--stop`` values are typed
    with escapes (`jupyter_complete.prompt.unescape_stop_sequence`). Raises `ValueError`
    naming the option and the values it allows (``-o`` must name a Python variable).
    """
    given: dict[str, Any] = {
        "model": args.model,
        "max_tokens_to_sample": args.max_tokens,
        "temperature": args.temperature,
        "top_k": args.top_k,
        "top_p": args.top_p,
        "stop_sequences": [unescape_stop_sequence(s) for s in args.stop] if args.stop else None,
    }
    given = {k: v for k, v in given.items() if v is not None}
    try:
        check_params(given)
    except InvalidParameterError as err:
        option = OPTION_FOR.get(err.param, err.param)
        # Strings are quoted so an empty or blank value is visible (--model '' ...).
        value = repr(err.value) if isinstance(err.value, str) else err.value
        shown = " ".join(map(repr, args.stop)) if err.param == "stop_sequences" else value
        raise ValueError(f"{option} {shown} is invalid: it must be {err.allowed}.") from None
    values = {name: getattr(defaults, name) for name in (*CompletionSettings.PARAMS, "system")}
    settings = CompletionSettings(**values)
    for wire, value in given.items():
        setattr(settings, "max_tokens" if wire == "max_tokens_to_sample" else wire, value)
    if args.system is not None:
        settings.system = args.system
    if args.output is not None and (
        not args.output.isidentifier() or keyword.iskeyword(args.output)
    ):
        raise ValueError(f"-o/--output {args.output!r} is not a valid Python variable name.")
    return settings


def with_options(specs: Sequence[OptionSpec]) -> Callable[[Any], Any]:
    """A decorator applying IPython's ``magic_arguments.argument`` once per row of ``specs``.

    Put it under ``@magic_arguments()``, which builds the parser from these (IPython's own
    ``script_args`` is such a list, applied the same way).
    """

    def decorate(func: Any) -> Any:
        from IPython.core.magic_arguments import argument

        # magic_arguments builds the parser from the last-applied decorator backwards.
        for names, keywords in reversed(specs):
            func = argument(*names, **keywords)(func)
        return func

    return decorate


__all__ = [
    "APIS",
    "FORMATS",
    "OPTIONS",
    "OPTION_FOR",
    "MagicSettings",
    "settings_for",
    "with_options",
]
