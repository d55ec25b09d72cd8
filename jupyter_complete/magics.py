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
first cell runs, so ``%load_ext`` stays cheap. Around it: the options and the magic's own
traits (`jupyter_complete._magic_options`), the line's tokenizer (`jupyter_complete._magic_line`),
the ``?``-ending transformer (`jupyter_complete._help_end`), conversations
(`jupyter_complete.chat.Chats`) and the stream and footer (`jupyter_complete.render`).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
from typing import TYPE_CHECKING, Any, ClassVar, cast

from IPython.core import magic_arguments as ma
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from traitlets import observe

from . import _help_end as help_end
from . import prompt as prompts
from ._constants import ENV_API_KEY, ENV_BASE_URL
from ._help_end import CompleteLineTransformer
from ._magic_line import LineSyntax, OptionSpec, UserNamespace
from ._magic_options import OPTIONS, MagicSettings, settings_for, with_options
from .chat import Chat, Chats, context_for
from .errors import APIError, CompleteError, OneLineTraceback
from .settings import CompletionSettings

if TYPE_CHECKING:
    from .client import Api, Client
    from .completion import Completion


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
class CompleteMagics(Magics, MagicSettings):  # type: ignore[misc]  # IPython is skipped by mypy
    """``%%complete`` / ``%complete``: stream a completion into the cell's output.

    The traits are inherited: the sampling ones (model, max_tokens, temperature, top_k,
    top_p, stop_sequences, system) from `CompletionSettings`, the one declaration of those
    settings, and the magic's own (show_traceback, base_url, format, stream, interpolate,
    api, timeout) from `MagicSettings`.
    """

    #: The InteractiveShell (typed loosely: IPython's attribute is Optional and untyped).
    shell: Any

    #: The options: (names, argparse keywords), in the order the manual lists them. One
    #: table feeds the parser and `LINE`, so both agree on which options take a value.
    OPTIONS: ClassVar[tuple[OptionSpec, ...]] = OPTIONS

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        # Magics.__init__ adds us to shell.configurables (for %config) and makes the shell
        # our parent, so c.CompleteMagics... from ipython_config.py applies.
        super().__init__(shell=shell, **kwargs)
        CompleteError.show_traceback = self.show_traceback
        self._client: Client | None = None
        self._client_key: tuple[Any, ...] | None = None
        #: The named conversations of ``--chat`` (`jupyter_complete.chat.Chat`), by name.
        self.chats = Chats()

    @observe("show_traceback")
    def _show_traceback_changed(self, change: dict[str, Any]) -> None:
        CompleteError.show_traceback = bool(change["new"])

    # -- the magic ---------------------------------------------------------------------
    @ma.magic_arguments()  # type: ignore[untyped-decorator]  # IPython is untyped
    @with_options(OPTIONS)
    @no_var_expand  # type: ignore[untyped-decorator]
    @line_cell_magic  # type: ignore[untyped-decorator]
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
        handled, value = self._commands(args, text, cell)
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
        try:
            settings = settings_for(self, args)
        except ValueError as err:
            raise UsageError(str(err)) from None
        if self.interpolate and not args.no_interpolate:
            # The --system option was interpolated with the other options in _parse.
            body = prompts.interpolate(body, UserNamespace(self.shell))
        if args.raw and body.endswith("\n"):
            body = body[:-1]  # IPython adds the newline after a cell's last line
        if not body.strip():
            raise UsageError(empty)
        client = self._get_client(args.base_url)
        if args.panel:
            chat = None if args.chat is None else self.chats.use(args.chat, self.shell.user_ns)
            self._open_panel(body.removesuffix("\n"), client, settings, args.output, chat)
            return
        chat, wire_prompt = self._wire_prompt(args, body, client, settings)
        self._send(client, wire_prompt, settings, args, (chat, body) if chat is not None else None)

    # -- parsing -------------------------------------------------------------------------
    def _parse(self, line: str) -> tuple[argparse.Namespace, str]:
        """Parse the options at the start of ``line``; return them and the rest, verbatim.

        Option values get the same ``{name}`` interpolation as the cell body (user-defined
        names only; off with --no-interpolate), then go through the magic's argparse
        parser; the prompt text after them is kept exactly as typed (see `LINE`).
        """
        # magic_arguments hangs the argparse parser on the function it decorates.
        parser: Any = getattr(self.complete, "parser")  # noqa: B009 - not a typed attribute
        names = UserNamespace(self.shell) if self.interpolate else None
        argv, text = LINE.tokenize(line, names)
        return parser.parse_args(argv), text

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
            if url is None:
                # The built-in model may be loading: its imports first, then ours, which
                # overlap its weights' load (`let_warm_up_import`).
                from .local.embedded import let_warm_up_import

                let_warm_up_import()
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
        args: argparse.Namespace,
        chat: tuple[Chat, str] | None,
    ) -> None:
        streaming = self.stream and not args.no_stream
        fmt = args.format or self.format
        api = cast("Api", args.api or self.api)  # argparse choices / the Enum trait
        from .render import finish, receive

        params: dict[str, Any] = {**settings.request_params(), "api": api}
        if fmt != "markdown" and self._renders("text/html"):
            from .notebook import wrap_marker

            wrap_marker()  # the streamed text wraps at word boundaries, not mid-word
        try:
            result, sent = receive(client, wire_prompt, params, streaming=streaming)
        except APIError as err:
            if err.partial is not None:
                self._store(err.partial, args.output, chat)
            raise  # the partial text is shown, above the error line
        self._store(result, args.output, chat)
        finish(
            result,
            prompt=wire_prompt,
            # Reading base_url of a local client that never sent would start the model now.
            endpoint=None if client.is_local and not sent else client.base_url,
            markdown=fmt == "markdown" and self._renders("text/markdown"),
            system=settings.system,
            format=fmt,
            raw=bool(args.raw),
            stream=streaming,
            **({"chat": chat[0].name} if chat is not None else {}),
        )
        if fmt == "code" and result.completion and not result.interrupted:
            from .notebook import code_of

            # A payload in the execute reply: the front end adds a cell below, not run.
            self.shell.set_next_input(code_of(result.completion), replace=False)
        if result.interrupted:
            raise StreamInterrupted(len(result.completion))

    def _store(
        self, completion: Completion, output: str | None, chat: tuple[Chat, str] | None
    ) -> None:
        """Put the answer in ``_completion`` (and ``output``), and into its conversation."""
        self.shell.user_ns["_completion"] = completion
        if output:
            self.shell.user_ns[output] = completion
        if chat is not None:
            finished = completion.stop_reason is not None and not completion.interrupted
            _notice(chat[0].settle(chat[1], completion.completion, finished=finished))

    def _renders(self, mime: str) -> bool:
        # Terminal IPython shows only text/plain: there the streamed text is the final form.
        types = getattr(self.shell.display_formatter, "active_types", None) or []
        return mime in types

    # -- conversations, models, the panel ----------------------------------------------
    def _commands(self, args: argparse.Namespace, text: str, cell: str | None) -> tuple[bool, Any]:
        """``--models``, ``--reset``, ``--keep`` and a bare ``%complete --chat``: (done, value)."""
        from .notebook import notice, show_models

        if args.models:
            client = self._get_client(args.base_url)
            show_models(client.models.list(), client.base_url)
        elif args.reset is not None:
            notice(self.chats.reset(args.reset))
        elif args.keep is not None:
            try:
                notice(self.chats.keep(args.keep))
            except LookupError as err:
                raise UsageError(f"--keep: {err}.") from None
        elif args.chat is not None and cell is None and not text.strip() and not args.panel:
            return True, self.chats.use(args.chat, self.shell.user_ns)
        else:
            return False, None
        return True, None

    def _wire_prompt(
        self, args: argparse.Namespace, body: str, client: Client, settings: CompletionSettings
    ) -> tuple[Chat | None, str]:
        """(the conversation ``--chat`` continues, or None; the prompt to send)."""
        if args.chat is None:
            return None, prompts.build(body, system=settings.system, raw=args.raw)
        if args.raw:
            raise UsageError("--chat builds the Human/Assistant turns itself; drop --raw.")
        if prompts.has_turns(body):
            raise UsageError(
                "--chat: write only your next message; the conversation supplies the "
                "Human:/Assistant: turns (edit _chat.turns to change them)."
            )
        chat = self.chats.use(args.chat, self.shell.user_ns)
        context = context_for(client)
        built = chat.build(
            body, system=settings.system, max_tokens=settings.max_tokens, context_tokens=context
        )
        _notice(built.notice(chat.name))
        return chat, built.prompt

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


def _notice(message: str | None) -> None:
    if message:
        from .notebook import notice

        notice(message)


#: How a ``%complete`` line splits into options and prompt text (`OPTIONS` decides).
LINE = LineSyntax.of(OPTIONS)


def load(ipython: Any) -> None:
    """Register `CompleteMagics` with ``ipython`` (``%load_ext jupyter_complete``)."""
    if "CompleteMagics" in ipython.magics_manager.registry:
        return
    ipython.register_magics(CompleteMagics(shell=ipython))
    help_end.install(ipython)


def unload(ipython: Any) -> None:
    """Remove the magics, their ``%config`` entry and their client (``%unload_ext``)."""
    help_end.uninstall(ipython)
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
