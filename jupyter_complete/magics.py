"""The ``%%complete`` cell magic and ``%complete`` line magic.

Load it with ``%load_ext jupyter_complete``. Every default is a trait of `CompleteMagics`,
settable per session or in ``ipython_config.py``::

    %config CompleteMagics.model = "claude-2.1"
    %config CompleteMagics.temperature = 0.2
    %config CompleteMagics.show_traceback = True      # full tracebacks for errors

    # ipython_config.py
    c.CompleteMagics.max_tokens = 512
    c.CompleteMagics.base_url = "http://127.0.0.1:8765"

This module is glue: options -> `CompletionSettings` -> `Client` -> `StreamRenderer`. It never
builds an HTTP request itself, and it imports the client (and so ``requests``) only when the
first cell runs, so ``%load_ext`` stays cheap.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import keyword
import os
import re
import shlex
import tokenize
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, cast

from IPython.core import inputtransformer2 as it2
from IPython.core import magic_arguments as ma
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from traitlets import Bool, Enum, Float, Unicode, observe

from . import prompt as prompts
from ._constants import DEFAULT_TIMEOUT, ENV_API_KEY, ENV_BASE_URL
from .errors import APIError, CompleteError, InvalidParameterError, OneLineTraceback
from .settings import CompletionSettings, check_params

if TYPE_CHECKING:
    from .chat import Chat
    from .client import Api, Client
    from .completion import Completion


_F = TypeVar("_F", bound=Callable[..., Any])


class _Decorator(Protocol):
    def __call__(self, func: _F, /) -> _F: ...


# IPython's decorators are untyped; these typed names keep `complete` checked by mypy.
_magic_arguments: Callable[[], _Decorator] = ma.magic_arguments
_argument: Callable[..., _Decorator] = ma.argument
_line_cell_magic: _Decorator = line_cell_magic
_no_var_expand: _Decorator = no_var_expand


def _with_options(specs: tuple[tuple[tuple[str, ...], dict[str, Any]], ...]) -> _Decorator:
    """``@magic_arguments()`` plus one ``@argument`` per spec, in the order given."""

    def decorate(func: _F) -> _F:
        # magic_arguments builds the parser from the last-applied decorator backwards.
        for names, keywords in reversed(specs):
            func = _argument(*names, **keywords)(func)
        return _magic_arguments()(func)

    return decorate


def _help(name: str) -> str:
    """The help text of a settings trait, so options and ``%config`` describe it alike."""
    return f"{CompletionSettings.class_traits()[name].help} [CompleteMagics.{name}]"


# Wire parameter (as `check_params` names it) -> the option that sets it, for usage errors.
_OPTION_FOR = {
    "model": "--model/-m",
    "max_tokens_to_sample": "--max-tokens/-n",
    "temperature": "--temperature/-t",
    "top_k": "--top-k/-k",
    "top_p": "--top-p/-p",
    "stop_sequences": "--stop/-s",
}

# A shell-like word: quoted runs and bare runs glued together; a lone quote is a word piece
# too, so an apostrophe in the prompt text ("don't") never breaks the split.
_WORD_RE = re.compile(r"""(?:"(?:[^"\\]|\\.)*"|'[^']*'|[^\s"']+|["'])+""")
_ESCAPE_RE = re.compile(r"\\(.)")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}


class StreamInterrupted(OneLineTraceback, KeyboardInterrupt):
    """The kernel was interrupted while a completion streamed; the partial text was kept.

    It is still a `KeyboardInterrupt`, so Jupyter stops the cells queued after this one, but
    it shows as one line instead of a traceback through the HTTP stack.
    """

    def __init__(self, characters: int) -> None:
        self.characters = characters
        super().__init__(
            f"the stream was stopped; the {characters:,} characters received are kept "
            "in _completion."
        )

    display_name = "KeyboardInterrupt"


@magics_class
class CompleteMagics(Magics, CompletionSettings):  # type: ignore[misc]  # IPython is skipped by mypy
    """``%%complete`` / ``%complete``: stream a completion into the cell's output.

    The sampling traits (model, max_tokens, temperature, top_k, top_p, stop_sequences, system)
    are inherited from `CompletionSettings`, the one declaration of those settings; the traits
    below only concern the magic.
    """

    show_traceback = Bool(
        False,
        help="Show full Python tracebacks for errors instead of a one-line message.",
    ).tag(config=True)
    base_url = Unicode(
        "",
        help="Server to send requests to. Empty: ANTHROPIC_BASE_URL, else the Anthropic API "
        "when ANTHROPIC_API_KEY is set, else the built-in local model.",
    ).tag(config=True)
    format = Enum(
        ("text", "markdown", "code"),
        default_value="text",
        help="How the answer is shown: 'text' as it streams, 'markdown', rendered once "
        "when the stream ends, or 'code': as text, and its fenced code (else the whole "
        "answer) goes into a new cell below, not run.",
    ).tag(config=True)
    stream = Bool(
        True, help="Stream the answer as it is generated (False: wait for the whole answer)."
    ).tag(config=True)
    interpolate = Bool(
        True, help="Replace {name} in the prompt by the value of `name` in the user namespace."
    ).tag(config=True)
    api = Enum(
        ("complete", "messages", "auto"),
        default_value="complete",
        help="Transport: 'complete' (POST /v1/complete), 'messages' (the same request sent to "
        "/v1/messages, for models without Text Completions), or 'auto' (switch a model to "
        "Messages when the server says it needs it).",
    ).tag(config=True)
    timeout = Float(
        DEFAULT_TIMEOUT,
        min=0.1,
        help="Read timeout in seconds: the longest silence allowed from the server.",
    ).tag(config=True)

    #: The InteractiveShell (typed loosely: IPython's attribute is Optional and untyped).
    shell: Any

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        # Magics.__init__ adds us to shell.configurables (for %config) and makes the shell
        # our parent, so c.CompleteMagics... from ipython_config.py applies.
        super().__init__(shell=shell, **kwargs)
        CompleteError.show_traceback = self.show_traceback
        self._client: Client | None = None
        self._client_key: tuple[Any, ...] | None = None
        #: The named conversations of ``--chat`` (`jupyter_complete.chat.Chat`), by name.
        self.chats: dict[str, Chat] = {}

    @observe("show_traceback")
    def _show_traceback_changed(self, change: dict[str, Any]) -> None:
        CompleteError.show_traceback = bool(change["new"])

    # -- the magic ---------------------------------------------------------------------
    #: The options: (names, argparse keywords), in the order the manual lists them. One
    #: table feeds the parser and `_split_line`, so both agree on which options take a value.
    OPTIONS: ClassVar[tuple[tuple[tuple[str, ...], dict[str, Any]], ...]] = (
        (("-m", "--model"), {"metavar": "NAME", "help": _help("model")}),
        (("-n", "--max-tokens"), {"type": int, "metavar": "N", "help": _help("max_tokens")}),
        (("-t", "--temperature"), {"type": float, "metavar": "T", "help": _help("temperature")}),
        (("-k", "--top-k"), {"type": int, "metavar": "K", "help": _help("top_k")}),
        (("-p", "--top-p"), {"type": float, "metavar": "P", "help": _help("top_p")}),
        (
            ("-s", "--stop"),
            {
                "action": "append",
                "metavar": "SEQ",
                "help": _help("stop_sequences") + " Repeat for several; \\n and \\t mean newline "
                "and tab.",
            },
        ),
        (("--system",), {"metavar": "TEXT", "help": _help("system")}),
        (
            ("--raw",),
            {
                "action": "store_true",
                "help": "Send the cell exactly as written: no Human/Assistant wrapping.",
            },
        ),
        (
            ("--no-stream",),
            {
                "action": "store_true",
                "help": "Wait for the whole answer. [CompleteMagics.stream]",
            },
        ),
        (
            ("-f", "--format"),
            {
                "choices": ("text", "markdown", "code"),
                "help": f"{format.help} [CompleteMagics.format]",
            },
        ),
        (
            ("-o", "--output"),
            {
                "metavar": "NAME",
                "help": "Also store the Completion in the variable NAME (it is always in "
                "_completion).",
            },
        ),
        (
            ("--no-interpolate",),
            {
                "action": "store_true",
                "help": "Send {name} literally. [CompleteMagics.interpolate]",
            },
        ),
        (("--base-url",), {"metavar": "URL", "help": f"{base_url.help} [CompleteMagics.base_url]"}),
        (
            ("--api",),
            {
                "choices": ("complete", "messages", "auto"),
                "help": f"{api.help} [CompleteMagics.api]",
            },
        ),
        (
            ("--panel",),
            {
                "action": "store_true",
                "help": "Open the tuning panel (sliders, Run/Stop) on this prompt instead of "
                "sending it; with -o NAME the panel goes to NAME.",
            },
        ),
        (
            ("--chat",),
            {
                "nargs": "?",
                "const": "default",
                "metavar": "NAME",
                "help": "Continue the conversation NAME (default: 'default'): its earlier turns "
                "go into the prompt and this answer is added when it ends. The conversation is "
                "in _chat; %%complete --chat NAME alone returns it. An interrupted answer is added "
                "only by %%complete --keep NAME (or chat.keep()). In %%complete (line) form, give "
                "NAME before the text.",
            },
        ),
        (
            ("--reset",),
            {
                "nargs": "?",
                "const": "default",
                "metavar": "NAME",
                "help": "Clear the conversation NAME (default: 'default'; its object, _chat or a "
                "panel's, is emptied in place) and send nothing.",
            },
        ),
        (
            ("--keep",),
            {
                "nargs": "?",
                "const": "default",
                "metavar": "NAME",
                "help": "Add the interrupted (unfinished) answer of conversation NAME as its last "
                "turn, and send nothing.",
            },
        ),
        (
            ("--models",),
            {
                "action": "store_true",
                "help": "List the models the endpoint offers (GET /v1/models) and send nothing.",
            },
        ),
        (
            ("text",),
            {
                "nargs": argparse.REMAINDER,
                "help": "%%complete only: the prompt, the rest of the line (%%%%complete takes the "
                "cell).",
            },
        ),
    )

    @_with_options(OPTIONS)
    @_no_var_expand
    @_line_cell_magic
    def complete(self, line: str, cell: str | None = None) -> Any:
        """Send a prompt to a /v1/complete endpoint and stream the answer into the output.

        %%complete [options]   sends the cell below the magic line;
        %complete [options] text   sends the rest of the line.

        The prompt: a cell without a "Human:" turn is wrapped as
        "\\n\\nHuman: {cell}\\n\\nAssistant:". Turns you type (Human:/Assistant: at line
        starts) are normalised; text after the last "Assistant:" is a prefill the model
        continues; text before the first "Human:" is the system prompt. --raw sends the cell
        as written.

        Interpolation: {name} is replaced by str() of the variable `name` you defined in the
        notebook, in the cell body and in the option values on the magic line alike (one
        rule for both: -m {model} and --system "at most {n} words" work; $name and {expr}
        are not expanded, so "{max}" stays "{max}"). Only names you defined count: IPython's
        own (In, Out, _, __, _i, _iN, _N, _oh, _dh, exit, quit, get_ipython ...) and
        builtins are left as typed, so {In} never sends your input history. To send one of
        them, assign it to a name of your own first (prev = _i, then {prev}). Unknown names,
        JSON and code braces are left alone; {{name}} gives a literal {name};
        --no-interpolate (or %config CompleteMagics.interpolate = False) turns this off.

        %complete text ending in ? or ?? is the prompt, not IPython's help: %complete What
        is a monad? sends the question. IPython rewrites a cell before running it, so load
        the extension in an earlier cell than the first such line (if not, loading says
        that the line became a help request and must be run again). %complete? alone shows
        this help.

        The answer streams into the output; a footer gives the model, stop reason, length,
        time to first token and total time. The Completion is stored in _completion (and in
        NAME with -o NAME); the footer's metadata records the model, every parameter, the
        stop reason and timings, so a saved notebook says how each answer was made. Interrupt
        the kernel to stop a stream: the text so far is kept and marked [interrupted].
        Errors show as one line (%config CompleteMagics.show_traceback = True for tracebacks).

        The endpoint: --base-url, else CompleteMagics.base_url, else ANTHROPIC_BASE_URL, else
        the Anthropic API when ANTHROPIC_API_KEY is set, else the built-in local model.
        --api messages sends the same request to /v1/messages (for models that refuse Text
        Completions). Defaults for every option: %config CompleteMagics (the name in
        [brackets] below).

        Examples::

            %%complete
            Write a haiku about autumn.

            %%complete -t 0 -n 100 -o answer
            Human: Translate to French: {sentence}
            Assistant: Voici la traduction :

            %%complete --system "You are terse." --stop "\\n\\n" --format markdown
            List three uses of a Kalman filter.

            %%complete --raw --base-url http://127.0.0.1:8765

            Human: Hi

            Assistant:

            %complete -m claude-2.1 -t 0.7 What is a monad?

            %%complete --panel
            Once upon a time

            %%complete --chat
            And what about its moons?

            %complete --reset

            %%complete -f code
            Write a function that reverses a string.

            %complete --models

        --chat continues the conversation 'default' (or NAME); --reset forgets it; --keep
        adds an answer that broke off. -f code puts the answer's code into a new cell below.
        """
        args, text = self._parse(line)
        handled, value = self._chat_commands(args, text, cell)
        if handled:
            return value  # a Chat (bare %complete --chat), else None
        if cell is None:
            body = text
            empty = "%complete: no prompt. Usage: %complete [options] text (see %complete?)."
        else:
            if text.strip():
                raise UsageError(
                    f"%%complete: unexpected {text.strip()!r} on the magic line; the prompt is "
                    "the cell body (options only on the first line)."
                )
            body = cell
            empty = "%%complete: the cell is empty. Write the prompt below the magic line."
        settings = self._settings_for(args)
        if args.output is not None and (
            not args.output.isidentifier() or keyword.iskeyword(args.output)
        ):
            raise UsageError(f"-o/--output {args.output!r} is not a valid Python variable name.")
        if self.interpolate and not args.no_interpolate:
            # The --system option was interpolated with the other options in _parse.
            body = prompts.interpolate(body, UserNamespace(self.shell))
        if args.raw and body.endswith("\n"):
            body = body[:-1]  # IPython adds the newline after a cell's last line
        if not body.strip():
            raise UsageError(empty)
        client = self._get_client(args.base_url)
        if args.panel:
            self._open_panel(
                body.removesuffix("\n"), client, settings, args.output, self._chat_for(args.chat)
            )
            return
        chat = None
        if args.chat is not None:
            chat, wire_prompt = self._chat_prompt(args, body, client, settings)
        else:
            wire_prompt = prompts.build(body, system=settings.system, raw=args.raw)
        self._send(
            client,
            wire_prompt,
            settings,
            streaming=self.stream and not args.no_stream,
            fmt=args.format or self.format,
            api=cast("Api", args.api or self.api),  # argparse choices / the Enum trait
            output=args.output,
            raw=bool(args.raw),
            chat=(chat, body) if chat is not None else None,
        )

    # -- parsing -------------------------------------------------------------------------
    def _parse(self, line: str) -> tuple[argparse.Namespace, str]:
        """Parse the options at the start of ``line``; return them and the rest, verbatim.

        Option values get the same ``{name}`` interpolation as the cell body (user-defined
        names only; off with --no-interpolate), then go through the magic's argparse
        parser; the prompt text after them is kept exactly as typed (quotes, apostrophes and
        braces included) for the body's interpolation, which is why this does not hand the
        whole line to ``parse_argstring``.
        """
        # magic_arguments hangs the argparse parser on the function it decorates.
        parser: Any = getattr(self.complete, "parser")  # noqa: B009 - not a typed attribute
        words, text = _split_line(line)
        argv = [_unquote(w) for w in words]
        if self.interpolate and not any(_is_no_interpolate(w) for w in argv):
            # After unquoting, so a value with quotes in it cannot change the split.
            names = UserNamespace(self.shell)
            argv = [prompts.interpolate(w, names) for w in argv]
        return parser.parse_args(argv), text

    def _settings_for(self, args: argparse.Namespace) -> CompletionSettings:
        """This cell's settings: the traits, overridden by the options given (validated)."""
        given: dict[str, Any] = {
            "model": args.model,
            "max_tokens_to_sample": args.max_tokens,
            "temperature": args.temperature,
            "top_k": args.top_k,
            "top_p": args.top_p,
            "stop_sequences": (
                [_ESCAPE_RE.sub(_unescape, s) for s in args.stop] if args.stop else None
            ),
        }
        given = {k: v for k, v in given.items() if v is not None}
        try:
            check_params(given)
        except InvalidParameterError as err:
            option = _OPTION_FOR.get(err.param, err.param)
            shown = " ".join(map(repr, args.stop)) if err.param == "stop_sequences" else err.value
            raise UsageError(f"{option} {shown} is invalid: it must be {err.allowed}.") from None
        values = {name: getattr(self, name) for name in (*CompletionSettings.PARAMS, "system")}
        settings = CompletionSettings(**values)
        for wire, value in given.items():
            setattr(settings, "max_tokens" if wire == "max_tokens_to_sample" else wire, value)
        if args.system is not None:
            settings.system = args.system
        return settings

    # -- sending -------------------------------------------------------------------------
    def _get_client(self, base_url: str | None) -> Client:
        """The client for this endpoint, reused while the endpoint and key stay the same."""
        url = base_url or self.base_url or None
        # What Client() would resolve by itself; a changed variable means a new client.
        key_env = os.environ.get(ENV_API_KEY) or ""
        cache_key = (
            url,
            None if url else os.environ.get(ENV_BASE_URL),
            hashlib.sha256(key_env.encode()).hexdigest(),  # never keep the key itself here
            self.timeout,
        )
        if self._client is None or self._client_key != cache_key:
            from .client import Client  # deferred: requests loads on first use, not at %load_ext

            if self._client is not None:
                self._client.close()
            self._client = Client(base_url=url, timeout=self.timeout)
            self._client_key = cache_key
        return self._client

    def _send(
        self,
        client: Client,
        wire_prompt: str,
        settings: CompletionSettings,
        *,
        streaming: bool,
        fmt: str,
        api: Api,
        output: str | None,
        raw: bool,
        chat: tuple[Chat, str] | None = None,
    ) -> None:
        from .completion import Completion
        from .render import StreamRenderer, provenance, publish_footer, replace_with_markdown

        params: dict[str, Any] = {**settings.request_params(), "api": api}
        if fmt != "markdown" and self._renders_html():
            from .notebook import wrap_marker

            wrap_marker()  # the streamed text wraps at word boundaries, not mid-word
        renderer = StreamRenderer()
        result: Completion
        stream = None
        sent = False
        try:
            if streaming:
                stream = client.completions.create(prompt=wire_prompt, stream=True, **params)
                sent = True
                for event in stream:
                    renderer.feed(event.completion)
                result = stream.get_final_completion()
            else:
                result = client.completions.create(prompt=wire_prompt, **params)
                sent = True
                renderer.feed(result.completion)
        except KeyboardInterrupt:
            if stream is not None:
                stream.close()
                result = stream.snapshot(interrupted=True)
            else:
                # Interrupted inside the request: drop its half-read connection.
                client.close()
                result = Completion("", model=params.get("model"), params=params, interrupted=True)
        except APIError as err:
            if err.partial is not None:
                self._store(err.partial, output)
                if chat is not None:
                    _after_answer(chat, err.partial)
            raise  # after `finally` has shown the partial text, above the error line
        finally:
            renderer.close(end_line=True)

        self._store(result, output)
        # Reading base_url of a local client that never sent would start the model now.
        endpoint = None if client.is_local and not sent else client.base_url
        record = provenance(
            result,
            prompt=wire_prompt,
            endpoint=endpoint,
            system=settings.system,
            format=fmt,
            raw=raw,
            stream=streaming,
        )
        if chat is not None:
            record["chat"] = chat[0].name
            _after_answer(chat, result)
        if fmt == "markdown" and result.completion and self._renders_markdown():
            replace_with_markdown(result.completion)
        publish_footer(result, record)
        if fmt == "code" and result.completion and not result.interrupted:
            from .notebook import code_of

            # A payload in the execute reply: the front end adds a cell below, not run.
            self.shell.set_next_input(code_of(result.completion), replace=False)
        if result.interrupted:
            raise StreamInterrupted(len(result.completion))

    # -- conversations, models -------------------------------------------------------------
    def _chat_commands(
        self, args: argparse.Namespace, text: str, cell: str | None
    ) -> tuple[bool, Any]:
        """``--models``, ``--reset``, ``--keep`` and a bare ``%complete --chat``: (done, value)."""

        if args.models:
            self._list_models(args.base_url)
            return True, None
        if args.reset is not None:
            chat = self.chats.get(args.reset)
            if chat is not None:
                # Cleared in place: a panel or variable holding it sees the same, empty chat.
                chat.reset()
            from .notebook import notice

            notice(f"conversation {args.reset!r} cleared")
            return True, None
        if args.keep is not None:
            chat = self.chats.get(args.keep)
            if chat is None:
                raise UsageError(f"--keep: there is no conversation {args.keep!r}.")
            try:
                chat.keep()
            except LookupError as err:
                raise UsageError(f"--keep: {err}.") from None
            from .notebook import notice

            notice(f"conversation {args.keep!r}: the unfinished answer is now turn {len(chat)}")
            return True, None
        if args.chat is not None and cell is None and not text.strip() and not args.panel:
            return True, self._chat_for(args.chat)
        return False, None

    def _chat_prompt(
        self, args: argparse.Namespace, body: str, client: Client, settings: CompletionSettings
    ) -> tuple[Chat, str]:
        from .chat import context_for
        from .notebook import notice

        if args.raw:
            raise UsageError("--chat builds the Human/Assistant turns itself; drop --raw.")
        if prompts.has_turns(body):
            raise UsageError(
                "--chat: write only your next message; the conversation supplies the "
                "Human:/Assistant: turns (edit _chat.turns to change them)."
            )
        chat = self._chat_for(args.chat)
        assert chat is not None
        built = chat.build(
            body,
            system=settings.system,
            max_tokens=settings.max_tokens,
            context_tokens=context_for(client),
        )
        message = built.notice(chat.name)
        if message:
            notice(message)
        return chat, built.prompt

    def _chat_for(self, name: str | None) -> Chat | None:
        """The conversation ``name`` (created if new, and put in ``_chat``); None for None."""
        from .chat import Chat

        if name is None:
            return None
        chat = self.chats.setdefault(name, Chat(name))
        self.shell.user_ns["_chat"] = chat
        return chat

    def _list_models(self, base_url: str | None) -> None:
        from .notebook import show_models

        client = self._get_client(base_url)
        show_models(client.models.list(), client.base_url)

    def _store(self, completion: Completion, output: str | None) -> None:
        self.shell.user_ns["_completion"] = completion
        if output:
            self.shell.user_ns[output] = completion

    def _renders_html(self) -> bool:
        types = getattr(self.shell.display_formatter, "active_types", None) or []
        return "text/html" in types

    def _renders_markdown(self) -> bool:
        # Terminal IPython shows only text/plain: there the streamed text is the final form.
        types = getattr(self.shell.display_formatter, "active_types", None) or []
        return "text/markdown" in types

    def _open_panel(
        self,
        body: str,
        client: Client,
        settings: CompletionSettings,
        output: str | None,
        chat: Chat | None = None,
    ) -> None:
        try:
            # Imported by name: the panel (and ipywidgets) load only when asked for.
            panel_module = importlib.import_module(".widgets.panel", __package__)
        except ImportError as err:
            raise UsageError(f"--panel is not available here: {err}") from None
        from IPython import display

        panel = panel_module.Panel(prompt=body, client=client, settings=settings, chat=chat)
        if output:
            self.shell.user_ns[output] = panel
        show: Any = display.display  # untyped in IPython
        show(panel)

    # -- lifetime ------------------------------------------------------------------------
    def close(self) -> None:
        """Close the cached client's connections."""
        if self._client is not None:
            self._client.close()
            self._client = None
            self._client_key = None


# Options that take a value (the next word, unless written --name=value or -tVALUE).
_VALUE_OPTIONS = frozenset(
    name
    for names, keywords in CompleteMagics.OPTIONS
    if keywords.get("action") != "store_true" and names[0].startswith("-")
    for name in names
)
_LONG_OPTIONS = tuple(
    name for names, _ in CompleteMagics.OPTIONS for name in names if name.startswith("--")
)
_NUMBER_RE = re.compile(r"-\.?\d")
# Options whose value may be left out (nargs="?"): --chat, --reset, --keep.
_OPTIONAL_VALUE_OPTIONS = frozenset(
    name
    for names, keywords in CompleteMagics.OPTIONS
    if keywords.get("nargs") == "?"
    for name in names
)


def _split_line(line: str) -> tuple[list[str], str]:
    """Split a magic line into its leading option words and the prompt text after them.

    The options end at the first word that is not an option or an option's value, or at
    ``--``. The text is returned as typed; the words still carry their quotes.
    """
    words = list(_WORD_RE.finditer(line))
    i = 0
    while i < len(words):
        word = words[i].group()
        if word == "--":
            return [w.group() for w in words[:i]], line[words[i].end() :].lstrip()
        if not word.startswith("-") or word == "-" or _NUMBER_RE.match(word):
            break  # "-1 is negative?" starts the text, as argparse would read it
        if word in _OPTIONAL_VALUE_OPTIONS:
            # --chat [NAME]: a following option is not its value (argparse agrees).
            following = words[i + 1].group() if i + 1 < len(words) else "-"
            i += 1 if following.startswith("-") and not _NUMBER_RE.match(following) else 2
            continue
        i += 2 if _takes_next_word(word) else 1
    text = line[words[i].start() :] if i < len(words) else ""
    return [w.group() for w in words[:i]], text


def _after_answer(chat: tuple[Chat, str], result: Completion) -> None:
    """Add a finished answer to the conversation; hold an unfinished one for ``--keep``."""
    conversation, human = chat
    if result.stop_reason is not None and not result.interrupted:
        conversation.add(human, result.completion)
    else:
        conversation.hold(human, result.completion)
        if result.completion:
            from .notebook import notice

            notice(
                f"conversation {conversation.name!r}: this unfinished answer was not added;"
                f" %complete --keep {conversation.name} adds it"
            )


def _takes_next_word(word: str) -> bool:
    if word.startswith("--"):
        if "=" in word:
            return False
        # argparse accepts unambiguous prefixes (--temp); an unknown one is its error to give.
        matches = [name for name in _LONG_OPTIONS if name.startswith(word)]
        return word in _VALUE_OPTIONS or (len(matches) == 1 and matches[0] in _VALUE_OPTIONS)
    return word in _VALUE_OPTIONS  # "-t0.5" carries its value


def _is_no_interpolate(word: str) -> bool:
    # argparse accepts any unambiguous prefix of a long option.
    return len(word) > 5 and "--no-interpolate".startswith(word) and word.startswith("--no-i")


class UserNamespace(Mapping[str, Any]):
    """The names a user defined in the shell: what ``{name}`` interpolation may read.

    IPython's own names are left out: those in ``shell.user_ns_hidden`` still bound to the
    value IPython put there (In, Out, _ih, _oh, _dh, exit, quit, get_ipython, and the
    history and output caches _, __, ___, _i, _ii, _iii, _iN, _N, which IPython pushes as
    hidden), and dunder names (__name__, __builtins__ ...). A hidden name the user rebinds
    (``_ = 5``) is theirs again. Builtins are never seen: lookups go to the namespace dict.
    """

    def __init__(self, shell: Any) -> None:
        self._ns: dict[str, Any] = shell.user_ns
        self._hidden: dict[str, Any] = getattr(shell, "user_ns_hidden", {}) or {}

    def _visible(self, name: str) -> bool:
        if name.startswith("__") and name.endswith("__"):
            return False
        if name in self._hidden and name in self._ns:
            return self._ns[name] is not self._hidden[name]
        return name in self._ns

    def __getitem__(self, name: str) -> Any:
        if not self._visible(name):
            raise KeyError(name)
        return self._ns[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._visible(name)

    def __iter__(self) -> Iterator[str]:
        return (name for name in list(self._ns) if self._visible(name))

    def __len__(self) -> int:
        return sum(1 for _ in self)


class CompleteLineTransformer(it2.TokenTransformBase):  # type: ignore[misc]  # IPython skipped
    """Keeps a ``%complete`` line that ends in ``?`` from becoming IPython help.

    IPython's help transformer (``HelpEnd``, priority 5) turns any line ending in ``?`` or
    ``??`` into ``%pinfo`` of its last word, so ``%complete What is a monad?`` would look up
    ``monad``. This token transformer runs first at the same place (priority 4) and makes
    the line the same ``run_line_magic("complete", ...)`` call that IPython's escaped-command
    transformer makes for any other ``%complete`` line. ``%complete?`` and ``%complete??``
    (nothing but question marks after the name) are left to IPython: they show the help.
    """

    priority = 4

    @classmethod
    def find(cls, tokens_by_line: list[list[tokenize.TokenInfo]]) -> Any:
        for line in tokens_by_line:
            ix = 0
            while ix < len(line) and line[ix].type in (tokenize.INDENT, tokenize.DEDENT):
                ix += 1
            if len(line) < ix + 4:
                continue
            pct, name = line[ix], line[ix + 1]
            if (
                pct.string != "%"
                or name.string != "complete"
                or name.start != (pct.start[0], pct.start[1] + 1)
            ):
                continue
            # The last token is NEWLINE. The ? may be on a later physical line: after a
            # backslash it is part of the magic line; after an open bracket it is not, and
            # transform() leaves that line to IPython, as its own magic transformer does.
            if line[-2].string not in ("?", "??"):
                continue
            rest = pct.line[name.end[1] :]
            if not rest.strip().strip("?").strip():
                continue  # %complete? / %complete ?? : IPython's help
            return cls(pct.start)
        return None

    def transform(self, lines: list[str]) -> list[str]:
        start_line, start_col = self.start_line, self.start_col
        indent = lines[start_line][:start_col]
        end_line = it2.find_end_of_continued_line(lines, start_line)
        line = it2.assemble_continued_line(lines, (start_line, start_col), end_line)
        # Everything after the name, less the one separating blank (a space or a tab).
        args = line[len("%complete") :]
        args = args[1:] if args[:1] in (" ", "\t") else args
        call = f"get_ipython().run_line_magic('complete', {args!r})"
        return [*lines[:start_line], indent + call + "\n", *lines[end_line + 1 :]]


def _unquote(word: str) -> str:
    # A word as a shell would pass it ("a b" -> a b); one that does not parse stays as typed.
    try:
        parts = shlex.split(word)
    except ValueError:
        return word
    return " ".join(parts) if parts else ""


def _unescape(match: re.Match[str]) -> str:
    return _ESCAPES.get(match.group(1), match.group(0))


def load(ipython: Any) -> None:
    """Register `CompleteMagics` with ``ipython`` (``%load_ext jupyter_complete``)."""
    if "CompleteMagics" in ipython.magics_manager.registry:
        return
    ipython.register_magics(CompleteMagics(shell=ipython))
    manager = getattr(ipython, "input_transformer_manager", None)
    transformers = getattr(manager, "token_transformers", None)
    if isinstance(transformers, list) and CompleteLineTransformer not in transformers:
        transformers.insert(0, CompleteLineTransformer)
    _warn_if_this_cell_was_read_as_help(ipython)


_HELP_LINE_RE = re.compile(
    r"^[ \t]*%complete[ \t]+(?=.*\S.*\?)(?!\?*[ \t]*$).*\?[ \t]*$", re.MULTILINE
)


def _warn_if_this_cell_was_read_as_help(ipython: Any) -> None:
    """Say so when the cell that loads the extension has a ``%complete ...?`` line.

    IPython transforms a whole cell before running any of it, so in the cell that runs
    ``%load_ext jupyter_complete`` such a line was already turned into help (it will print
    "Object ... not found") before `CompleteLineTransformer` existed. That cannot be undone
    from here; the user can only run the line again.
    """
    history = getattr(getattr(ipython, "history_manager", None), "input_hist_raw", None)
    cell = history[-1] if history else ""
    if isinstance(cell, str) and _HELP_LINE_RE.search(cell):
        import sys

        sys.stderr.write(
            "jupyter_complete: a %complete line ending in ? in this cell was read by IPython "
            "as a help request before the extension was loaded; run that line again (in a "
            "new cell) to send it.\n"
        )


def unload(ipython: Any) -> None:
    """Remove the magics, their ``%config`` entry and their client (``%unload_ext``)."""
    manager = getattr(ipython, "input_transformer_manager", None)
    transformers = getattr(manager, "token_transformers", None)
    if isinstance(transformers, list) and CompleteLineTransformer in transformers:
        transformers.remove(CompleteLineTransformer)
    magics = ipython.magics_manager.registry.pop("CompleteMagics", None)
    if magics is None:
        return
    for kind in ("line", "cell"):
        table = ipython.magics_manager.magics[kind]
        if getattr(table.get("complete"), "__self__", None) is magics:
            del table["complete"]
    if magics in ipython.configurables:
        ipython.configurables.remove(magics)
    magics.close()
    CompleteError.show_traceback = False


__all__ = [
    "CompleteLineTransformer",
    "CompleteMagics",
    "StreamInterrupted",
    "UserNamespace",
    "load",
    "unload",
]
