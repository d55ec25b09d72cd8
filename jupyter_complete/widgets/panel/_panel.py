"""`Panel`: the tuning panel (prompt, sliders, Run/Stop, compare, history)."""

from __future__ import annotations

import contextlib
import datetime
import html
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
from traitlets import TraitError

from ... import prompt as prompts
from ...record import LiveRecord, find_record, live_class
from ...settings import CompletionSettings
from ...sweep import (
    DEFAULT_CONCURRENCY,
    Progress,
    SpreadResult,
    Sweep,
    check_sweep,
    is_builtin_model,
)
from .._textview import StreamView
from ..controls import (
    LABEL_WIDTH,
    Binding,
    bind_int_box,
    bind_optional,
    bind_slider,
    bind_stops,
    bind_text,
    close_tree,
    make_optional_slider,
    make_slider,
    style_widget,
)
from ._compare import Column, CompareGrid, parse_compare, plan, result_status
from ._history import SETTINGS, History, params_line, record_status, status_line
from ._record import panel_bundle
from ._runner import UPDATE_INTERVAL, StopSignal, stream_once
from ._spread import SpreadView, parse_spread, run_result

if TYPE_CHECKING:
    from ...chat import Chat
    from ...client import Client

log = logging.getLogger("jupyter_complete")

#: Seconds between two updates of the live status line (the text has its own interval).
STATUS_INTERVAL = 0.25

#: The max tokens slider's range (1 to this); the number box beside it takes any value, and a
#: larger value widens the slider. The demos use 25 to 120.
MAX_TOKENS_SLIDER = 300


@contextlib.contextmanager
def _state_part(part: str) -> Iterator[None]:
    """Turn a failure to read ``part`` of a saved panel state into one ValueError line."""
    try:
        yield
    except (TypeError, ValueError, KeyError, AttributeError, TraitError) as err:
        what = f"missing key {err}" if isinstance(err, KeyError) else str(err).splitlines()[0]
        raise ValueError(
            f"from_record(): the saved {part!r} is not what Panel.to_state() writes ({what}); "
            "was the record edited by hand?"
        ) from None


class Panel:
    """A panel for tuning a prompt: sliders, Run/Stop with streamed output, compare, history.

    The sliders and boxes are linked both ways to ``settings`` (a `CompletionSettings`): moving
    a slider changes the setting, and setting ``panel.settings.top_k = 10`` (or ``%config``
    on a shared settings object) moves the slider. top_k and top_p have a checkbox: unchecked,
    the parameter is left out of the request, as the API advises unless you need it.

    Run streams the answer on a background thread (the kernel stays free); Stop closes the
    connection at once and keeps the text received. Every request goes into `history`.

    Args:
        prompt: the prompt text; plain text is sent as a Human turn (`prompt.build`).
        client: the `Client` to use; None means ``Client()`` (the environment's endpoint, or
            the built-in local model), created when the first request is sent.
        settings: the settings to show and change; None means fresh `CompletionSettings`.
        chat: a `jupyter_complete.chat.Chat` (e.g. ``%complete --chat`` 's ``_chat``): each
            run sends its earlier turns before the prompt, and a finished answer becomes its
            next turn (a stopped one waits in ``chat.pending``). Compare uses the turns but
            adds nothing.
        update_interval: seconds between the starts of two updates of the streamed text
            (a delta after a quiet interval is shown at once; see `StreamRenderer`).

    The parts are attributes, for tests and for rearranging: ``prompt_box``, ``system_box``,
    ``temperature_slider``, ``top_k_check`` and ``top_k_slider``, ``top_p_check`` and
    ``top_p_slider``, ``max_tokens_slider``, ``model_box``, ``stop_box``, ``run_button``,
    ``stop_button``, ``compare_button``, ``compare_values``, ``spread_button``,
    ``spread_values``, ``status``, ``error``, ``output`` (a `StreamView`), ``compare_grid``,
    ``spread_view``, ``history_select``, ``load_button``;
    ``widget`` is the whole panel.

    Example::

        from jupyter_complete import Panel
        panel = Panel("Name three colours.")
        panel                                    # the widget
        panel.compare(temperatures=[0, 0.5, 1])  # three answers side by side
        panel.spread(temperature=[0.2, 1], n=5)  # five answers per value, measured
        panel.history_frame()                    # every run as a DataFrame
    """

    def __init__(
        self,
        prompt: str = "",
        client: Client | None = None,
        settings: CompletionSettings | None = None,
        *,
        chat: Chat | None = None,
        update_interval: float = UPDATE_INTERVAL,
    ) -> None:
        if update_interval <= 0:
            raise ValueError("update_interval must be a positive number of seconds")
        #: The settings the controls are linked to.
        self.settings = settings if settings is not None else CompletionSettings()
        self.update_interval = float(update_interval)
        #: A `jupyter_complete.chat.Chat` the runs continue (None: each run stands alone).
        self.chat = chat
        self._client = client
        self._client_lock = threading.Lock()
        self._lock = threading.Lock()
        self._state = "idle"
        self._signal: StopSignal | None = None
        self._job: threading.Thread | None = None
        self._history = History()
        self._sweep: Sweep | None = None
        self._spreads: list[SpreadResult] = []
        self._status_text = ""
        self._error_text: str | None = None
        self._answer_label_text = ""
        #: The static HTML record shown after the widget (see `jupyter_complete.record`).
        self.record = LiveRecord("panel")
        self._build(prompt)
        self._bindings: list[Binding] = [
            bind_slider(self.settings, "temperature", self.temperature_slider),
            bind_optional(self.settings, "top_k", self.top_k_check, self.top_k_slider),
            bind_optional(self.settings, "top_p", self.top_p_check, self.top_p_slider),
            bind_slider(self.settings, "max_tokens", self.max_tokens_slider),
            bind_int_box(self.settings, "max_tokens", self.max_tokens_box),
            bind_text(self.settings, "model", self.model_box),
            bind_text(self.settings, "system", self.system_box),
            bind_stops(self.settings, self.stop_box),
        ]

    # -- widgets -----------------------------------------------------------------------
    def _build(self, prompt: str) -> None:
        traits = CompletionSettings.class_traits()
        label_style = {"description_width": LABEL_WIDTH}
        self.prompt_box = widgets.Textarea(
            value=prompt,
            rows=5,
            layout=widgets.Layout(width="auto"),
            placeholder="Prompt. Plain text is sent as a Human turn; Human:/Assistant: turns "
            "are kept.",
        )
        self.system_box = widgets.Text(
            description="system",
            placeholder="optional system prompt",
            tooltip=traits["system"].help,
            style=label_style,
            layout=widgets.Layout(width="auto"),
        )
        self.temperature_slider = make_slider("temperature")
        self.max_tokens_slider = make_slider("max_tokens", maximum=MAX_TOKENS_SLIDER)
        self.max_tokens_slider.layout.flex = "1 1 auto"
        self.max_tokens_box = widgets.BoundedIntText(
            value=self.settings.max_tokens,
            min=1,
            max=10**9,
            tooltip=f"max tokens, exactly (any value; the slider covers 1 to {MAX_TOKENS_SLIDER})",
            layout=widgets.Layout(width="6em", flex="0 0 auto"),
        )
        self.top_k_slider, self.top_k_check = self._optional_slider("top_k")
        self.top_p_slider, self.top_p_check = self._optional_slider("top_p")
        self.model_box = widgets.Text(
            description="model",
            placeholder="server default",
            tooltip=traits["model"].help,
            style=label_style,
            layout=widgets.Layout(width="auto", max_width="24em"),
        )
        self.stop_box = widgets.TagsInput(
            value=[],
            allow_duplicates=False,
            placeholder="stop sequence",
            tooltip=traits["stop_sequences"].help + " Type \\n for a newline, \\t for a tab.",
            layout=widgets.Layout(width="auto", flex="1 1 auto", min_width="0"),
        )
        self.run_button = widgets.Button(
            description="Run",
            icon="play",
            button_style="primary",
            tooltip="Send the prompt with these settings",
        )
        self.stop_button = widgets.Button(
            description="Stop",
            icon="stop",
            button_style="warning",
            disabled=True,
            tooltip="Close the connection now; the text so far is kept",
        )
        self.compare_button = widgets.Button(
            description="Compare",
            icon="columns",
            tooltip="Run the prompt once per temperature (0, 0.5, 1) or N times (x3), side by side",
        )
        self.compare_values = widgets.Text(
            value="0, 0.5, 1",
            placeholder="0, 0.5, 1  or  x3",
            tooltip="Temperatures to compare, or xN for N samples at these settings",
            layout=widgets.Layout(width="10em"),
        )
        self.spread_button = widgets.Button(
            description="Samples",
            icon="bar-chart",
            tooltip="n samples per setting: draw n answers at each value of one parameter "
            "and chart how different they are",
        )
        self.spread_values = widgets.Text(
            value="temperature 0.2, 0.6, 1 x5",
            placeholder="temperature 0.2, 0.6, 1 x5",
            tooltip="The parameter (temperature, top_p or top_k), its values, and xN samples "
            "per value; the other settings are the panel's",
            layout=widgets.Layout(width="15em"),
        )
        self.status = widgets.HTML()
        self.error = widgets.HTML()
        #: Says which run the output holds (and, during a compare, that it is the earlier one).
        self.answer_label = widgets.HTML()
        self.output = StreamView(placeholder="The answer streams here.")
        #: The answers of the last compare, side by side.
        self.compare_grid = CompareGrid()
        #: The last "n samples per setting" result: figures, chart, answers.
        self.spread_view = SpreadView()
        self.history_select = widgets.Dropdown(
            options=[],
            description="history",
            style=label_style,
            layout=widgets.Layout(width="100%"),
        )
        self.load_button = widgets.Button(
            description="Load",
            icon="upload",
            disabled=True,
            tooltip="Put this run's prompt and settings back into the controls",
        )
        self.run_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: self.stop())
        self.compare_button.on_click(lambda _: self._compare_clicked())
        self.spread_button.on_click(lambda _: self._spread_clicked())
        self.load_button.on_click(lambda _: self._load_clicked())
        self._set_status("idle")

        # Rows wrap instead of clipping: from about 400 px wide the panel stacks its parts.
        def row(children: list[Any], **layout: str) -> Any:
            box = widgets.HBox(
                children,
                layout=widgets.Layout(flex_flow="row wrap", width="100%", min_width="0", **layout),
            )
            box.add_class("jc-wrap")
            return box

        def grow(**layout: str) -> Any:
            return widgets.Layout(min_width="0", **layout)

        sliders = widgets.VBox(
            [
                self.temperature_slider,
                widgets.HBox([self.top_k_check, self.top_k_slider], layout=grow(width="100%")),
                widgets.HBox([self.top_p_check, self.top_p_slider], layout=grow(width="100%")),
                widgets.HBox(
                    [self.max_tokens_slider, self.max_tokens_box],
                    layout=grow(width="100%", align_items="center"),
                ),
            ],
            layout=grow(flex="1 1 22em", max_width="36em"),
        )
        stops = widgets.HBox(
            [
                widgets.Label("stop", layout=widgets.Layout(width=LABEL_WIDTH, flex="0 0 auto")),
                self.stop_box,
            ],
            layout=grow(width="100%"),
        )
        side = widgets.VBox([self.model_box, stops], layout=grow(flex="1 1 16em"))
        buttons = row(
            [
                self.run_button,
                self.stop_button,
                self.compare_button,
                self.compare_values,
                self.spread_button,
                self.spread_values,
            ]
        )
        self.history_select.layout = widgets.Layout(flex="1 1 20em", min_width="0")
        history = row([self.history_select, self.load_button])
        #: The whole panel (what a notebook displays).
        self.widget = widgets.VBox(
            [
                style_widget(),
                self.prompt_box,
                self.system_box,
                row([sliders, side]),
                buttons,
                self.status,
                self.error,
                self.answer_label,
                self.output.box,
                self.compare_grid.box,
                self.spread_view.box,
                history,
            ],
            layout=widgets.Layout(width="100%", min_width="0"),
        )
        # CSS classes for styling and for browser tests to find the parts.
        for part, name in (
            (self.widget, "jc-panel"),
            (self.output.box, "jc-output"),
            (self.status, "jc-status"),
            (self.error, "jc-error"),
            (self.answer_label, "jc-answer-label"),
            (self.compare_grid.box, "jc-compare"),
            (self.spread_view.box, "jc-spread-view"),
            (self.history_select, "jc-history"),
            (self.widget, live_class(self.record.id)),
        ):
            part.add_class(name)

    def _optional_slider(self, name: str) -> tuple[Any, Any]:
        return make_optional_slider(
            name, f"Send {name}. Unchecked: leave it unset (the API's advice unless needed)."
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self) -> None:
        # The widget, then its static record (kept current; see jupyter_complete.record).
        self.record.show(self.widget, *self.record_bundle())

    def __repr__(self) -> str:
        return f"<Panel {self.state}, {len(self._history)} runs>"

    # -- the static record ---------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """What the panel shows, as JSON-safe data (what its record saves; see `from_record`).

        Keys: ``prompt``, ``settings`` (`CompletionSettings.to_dict`), ``history`` (the
        records of `history`), ``output`` (``text``, ``label``, ``status``, ``error``) and
        ``compare`` (one dict per column: ``title``, ``settings``, ``text``, ``status``,
        ``error``; empty before the first compare) and ``spread`` (the last "n samples per
        setting" result, `SpreadResult.to_dict` without its figures; None before the first).
        """
        shown = self.spread_view.result
        return {
            "prompt": str(self.prompt_box.value),
            "settings": self.settings.to_dict(),
            "history": self._history.records(),
            "output": {
                "text": self.output.text,
                "label": self._answer_label_text,
                "status": self._status_text,
                "error": self._error_text,
            },
            "compare": [column.to_state() for column in self.compare_grid.columns],
            "spread": None
            if shown is None
            else {k: v for k, v in shown.to_dict().items() if k != "stats"},
        }

    def record_bundle(self) -> tuple[dict[str, str], dict[str, Any]]:
        """The record's MIME bundle (text/html, text/plain) and metadata, as of now."""
        return panel_bundle(self.record.id, self.to_state())

    def _refresh_record(self) -> None:
        try:
            self.record.update(*self.record_bundle())
        except Exception:  # noqa: BLE001 - the live panel must keep working without it
            log.exception("panel record update failed")

    @classmethod
    def from_record(
        cls, state: dict[str, Any], client: Client | None = None, **kwargs: Any
    ) -> Panel:
        """A live panel showing a saved record's state (`to_state`'s dict).

        The prompt, settings, history, last answer and compare columns come back; nothing is
        re-run. ``client`` and ``kwargs`` are as for `Panel`. Raises ValueError for a dict
        that is not a panel state.
        """
        if not isinstance(state, dict) or "settings" not in state or "prompt" not in state:
            raise ValueError(
                "from_record() takes a panel state: a dict with 'prompt' and "
                "'settings' (Panel.to_state(), or a record's metadata 'state')"
            )
        with _state_part("settings"):
            settings = CompletionSettings()
            for name, value in state["settings"].items():
                if name in (*CompletionSettings.PARAMS, "system"):
                    setattr(settings, name, value)
        panel = cls(str(state["prompt"]), client=client, settings=settings, **kwargs)
        try:
            with _state_part("history"):
                panel._history.restore(state.get("history") or [])
                options = panel._history.options()
            panel.history_select.options = options
            if options:
                panel.history_select.value = options[0][1]
            panel.load_button.disabled = not options
            with _state_part("output"):
                output = state.get("output") or {}
                if output.get("text"):
                    panel.output.set_text(str(output["text"]))
                panel._set_answer_label(str(output.get("label") or ""))
                panel._set_status(str(output.get("status") or "idle"))
                error = output.get("error")
                panel._show_error(None if error is None else str(error))
            with _state_part("compare"):
                columns = state.get("compare") or []
                if columns:
                    views = panel.compare_grid.reset(
                        [(str(c["title"]), {}, c["settings"]) for c in columns]
                    )
                    for view, column in zip(views, columns, strict=True):
                        view.restore(column)
            with _state_part("spread"):
                if state.get("spread"):
                    restored = SpreadResult.from_dict(state["spread"])
                    panel._spreads.append(restored)
                    panel.spread_view.show(restored, final=True)
            with _state_part("state"):
                panel.record_bundle()  # everything restored can be shown in the record
        except ValueError:
            panel.close()
            raise
        return panel

    @classmethod
    def restore(
        cls,
        record_id: str | None = None,
        notebook: str | None = None,
        client: Client | None = None,
        **kwargs: Any,
    ) -> Panel:
        """Rebuild a panel from its record in the saved notebook (`from_record`).

        ``record_id``: the id shown under the record (None: the last panel record in the
        file). ``notebook``: the .ipynb path; None means the notebook this kernel runs
        (``__session__``). Save the notebook first: the file is what is read. Raises
        `LookupError` when no such record is saved, `FileNotFoundError` when the notebook
        cannot be found.
        """
        from IPython import get_ipython

        shell = get_ipython()
        namespace = shell.user_ns if shell is not None else None
        state = find_record("panel", record_id, notebook, namespace)
        return cls.from_record(state, client=client, **kwargs)

    # -- state -------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """idle, running, stopping, done, stopped or error."""
        return self._state

    @property
    def running(self) -> bool:
        """True while a run or compare is in progress."""
        return self._state in ("running", "stopping")

    @property
    def text(self) -> str:
        """The text in the output area (the last run's answer, or a loaded one)."""
        return self.output.text

    @property
    def client(self) -> Client:
        """The client requests go through (``Client()`` when none was given)."""
        return self._get_client()

    def _get_client(self) -> Client:
        with self._client_lock:
            if self._client is None:
                from ...client import Client

                self._client = Client()
            return self._client

    def _set_answer_label(self, text: str) -> None:
        self._answer_label_text = text
        self.answer_label.value = (
            ""
            if not text
            else (f'<span style="font-size:90%;font-weight:600">{html.escape(text)}</span>')
        )

    def _set_status(self, text: str) -> None:
        self._status_text = text
        self.status.value = (
            '<span style="color:var(--jp-ui-font-color2,#666);font-size:90%">'
            f"{html.escape(text)}</span>"
        )

    def _show_error(self, text: str | None) -> None:
        self._error_text = text or None
        self.error.value = (
            ""
            if not text
            else (f'<div style="color:var(--jp-error-color1,#c62828)">⚠ {html.escape(text)}</div>')
        )

    def _begin(self) -> StopSignal | None:
        """Enter the running state; None if something is already running."""
        with self._lock:
            if self.running:
                return None
            self._state = "running"
            self._signal = signal = StopSignal()
        self.run_button.disabled = True
        self.compare_button.disabled = True
        self.spread_button.disabled = True
        self.load_button.disabled = True
        self.stop_button.disabled = False
        self._show_error(None)
        return signal

    def _end(self, state: str) -> None:
        options = self._history.options()
        self.history_select.options = options
        if options:
            self.history_select.value = options[0][1]  # the newest run
        self.stop_button.disabled = True
        self.run_button.disabled = False
        self.compare_button.disabled = False
        self.spread_button.disabled = False
        self.load_button.disabled = not len(self._history)
        with self._lock:
            self._state = state
            self._signal = None
        self._refresh_record()

    def _start(self, target: Callable[..., None], *args: Any) -> None:
        def guarded() -> None:
            try:
                target(*args)
            except Exception:  # pragma: no cover - stream_once already catches request errors
                log.exception("panel job failed")
                self._show_error("Internal error in the panel; see the log.")
                self._end("error")

        self._job = threading.Thread(target=guarded, name="jupyter_complete-panel", daemon=True)
        self._job.start()

    def _writer(
        self, view: StreamView, show: Callable[[int, float], None]
    ) -> Callable[[str], None]:
        """The coalescer's sink: append to ``view``; refresh the status a few times a second."""
        started = time.monotonic()
        chars = 0
        last = float("-inf")

        def write(text: str) -> None:
            nonlocal chars, last
            view.append(text)
            chars += len(text)
            now = time.monotonic()
            if now - last >= STATUS_INTERVAL:
                last = now
                show(chars, now - started)

        return write

    def _prompt_or_error(self) -> str | None:
        text = str(self.prompt_box.value)
        if not text.strip():
            self._show_error("The prompt is empty: type something in the prompt box.")
            return None
        return text

    def _wire(self, text: str) -> tuple[str | None, str]:
        """The wire prompt for ``text`` (continuing `chat` if set) and a note on dropped turns."""
        if self.chat is None:
            return prompts.build(text, system=self.settings.system), ""
        from ...chat import context_for

        if prompts.has_turns(text):
            self._show_error(
                "With a chat, write only the next message: the chat supplies the "
                "Human:/Assistant: turns."
            )
            return None, ""
        built = self.chat.build(
            text,
            system=self.settings.system,
            max_tokens=self.settings.max_tokens,
            context_tokens=context_for(self._get_client()),
        )
        turns = "s" if built.sent != 1 else ""
        note = f" · chat {self.chat.name!r}: {built.sent} earlier turn{turns}"
        if built.dropped:
            note += f" ({built.dropped} oldest left out to fit the context)"
        return built.prompt, note

    # -- run / stop --------------------------------------------------------------------
    def _prepare(self) -> tuple[str, str, str, StopSignal] | None:
        """What every kind of run starts with: the prompt, its wire form (and the note on
        dropped turns), and the running state. None, with the reason shown, when it cannot."""
        text = self._prompt_or_error()
        if text is None:
            return None
        wire, note = self._wire(text)
        if wire is None:
            return None
        signal = self._begin()
        if signal is None:
            return None
        return text, wire, note, signal

    def run(self) -> None:
        """Send the prompt with the current settings; the answer streams into the output.

        Returns at once (the request runs on a background thread); `wait` waits for the end.
        Does nothing while another run is in progress.
        """
        settings = self.settings.to_dict()
        params = self.settings.request_params()
        prepared = self._prepare()
        if prepared is None:
            return
        text, wire, note, signal = prepared
        self.output.clear(placeholder=False)
        self._set_answer_label(f"run #{len(self._history) + 1} · {params_line(settings)}{note}")
        self._set_status(status_line("running"))
        self._start(self._run_job, signal, wire, text, params, settings)

    def _run_job(
        self,
        signal: StopSignal,
        wire: str,
        text: str,
        params: dict[str, Any],
        settings: dict[str, Any],
    ) -> None:
        started = datetime.datetime.now(datetime.timezone.utc)

        def show(chars: int, elapsed: float) -> None:
            if self._state == "running":
                self._set_status(status_line("running", chars=chars, elapsed=elapsed))

        result = stream_once(
            self._get_client,
            wire,
            params,
            write=self._writer(self.output, show),
            signal=signal,
            interval=self.update_interval,
        )
        self._history.add(
            kind="run", prompt=text, settings=settings, result=result, started=started
        )
        if self.chat is not None:
            if result.outcome == "done":
                self.chat.add(text, result.text)
            else:
                self.chat.hold(text, result.text)
        self._set_status(result_status(result))
        self._show_error(result.error)
        self._end(result.outcome)

    def stop(self) -> None:
        """Stop the run (or compare) in progress: the connection closes now, the text stays."""
        with self._lock:
            signal = self._signal
            if self._state != "running" or signal is None:
                return
            self._state = "stopping"
            sweep = self._sweep
        self.stop_button.disabled = True
        self._set_status("stopping")
        signal.request()
        if sweep is not None:
            sweep.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the run in progress to end; True if it did (or none was running)."""
        job = self._job
        if job is not None:
            job.join(timeout)
            return not job.is_alive()
        return True

    # -- compare -----------------------------------------------------------------------
    def compare(
        self, temperatures: Sequence[float] | None = None, samples: int | None = None
    ) -> None:
        """Run the prompt several times and show the answers side by side.

        ``temperatures=[0, 0.5, 1]``: one answer per temperature, other settings as they are.
        ``samples=3``: three answers at the current settings. The runs go one after another
        (a local model serves one at a time); Stop ends the compare. Each run is also added
        to `history`. Returns at once, like `run`; bad values raise ValueError.
        """
        settings = self.settings.to_dict()
        columns = plan(settings, self.settings.request_params(), temperatures, samples)
        prepared = self._prepare()
        if prepared is None:
            return
        text, wire, _, signal = prepared
        group = self._history.new_group()
        if self.output.text:
            self._set_answer_label(
                f"earlier answer ({self._answer_label_text or 'loaded'}); compare {group} is below"
            )
        views = self.compare_grid.reset(columns, group=group)
        self._set_status(f"compare {group} · running 1 of {len(columns)}")
        self._start(self._compare_job, signal, wire, text, columns, views, group)

    def _compare_job(
        self,
        signal: StopSignal,
        wire: str,
        text: str,
        columns: list[tuple[str, dict[str, Any], dict[str, Any]]],
        views: list[Column],
        group: int,
    ) -> None:
        errors = 0
        for i, ((_, params, settings), column) in enumerate(zip(columns, views, strict=True)):
            if signal.requested:
                column.show_skipped()
                continue
            self._set_status(f"compare {group} · running {i + 1} of {len(columns)}")
            started = datetime.datetime.now(datetime.timezone.utc)
            result = stream_once(
                self._get_client,
                wire,
                params,
                write=self._writer(column.view, column.show_progress),
                signal=signal,
                interval=self.update_interval,
            )
            self._history.add(
                kind="compare",
                group=group,
                prompt=text,
                settings=settings,
                result=result,
                started=started,
            )
            column.show_result(result)
            errors += result.outcome == "error"
        outcome = "stopped" if signal.requested else "error" if errors else "done"
        self._set_status(f"compare {group} · {outcome} · {len(columns)} columns")
        if errors:
            self._show_error(f"{errors} of the {len(columns)} compare runs failed (see below).")
        self._end(outcome)

    def _compare_clicked(self) -> None:
        try:
            self.compare(**parse_compare(str(self.compare_values.value)))
        except ValueError as err:
            self._show_error(str(err))

    # -- n samples per setting ---------------------------------------------------------
    def spread(
        self,
        temperature: Sequence[float] | None = None,
        top_p: Sequence[float] | None = None,
        top_k: Sequence[int] | None = None,
        *,
        n: int = 5,
        concurrency: int | None = None,
    ) -> None:
        """n samples per setting: ``n`` answers at each value of one parameter, measured.

        Give one of ``temperature``, ``top_p``, ``top_k`` as a list; every other setting is
        the panel's. The figures fill in below the panel while the samples arrive, then the
        chart is drawn (`jupyter_complete.sweep`, the code behind `jupyter_complete.spread`).
        Every sample is added to `history` (kind ``"spread"``); the result is in `spreads`.
        Requests run ``concurrency`` at a time (None: 1 on the built-in model, else
        `~jupyter_complete.sweep.DEFAULT_CONCURRENCY`). Stop ends it, keeping the samples
        drawn. Returns at once, like `run`; bad values raise ValueError.
        """
        parameter, values = check_sweep(
            {"temperature": temperature, "top_p": top_p, "top_k": top_k}, n, concurrency
        )
        n = int(n)  # numpy's integers too: the record holds JSON-safe numbers
        settings = self.settings.to_dict()
        params = self.settings.request_params()
        params.pop(parameter, None)
        prepared = self._prepare()
        if prepared is None:
            return
        text, wire, _, signal = prepared
        client = self._get_client()
        if concurrency is None:
            concurrency = 1 if is_builtin_model(client) else DEFAULT_CONCURRENCY
        sweep = Sweep(
            client, wire, parameter, values, n, params, concurrency=concurrency, prompt=text
        )
        with self._lock:
            self._sweep = sweep
        group = self._history.new_group()
        self._set_status(f"spread {group} · starting")
        self._start(self._spread_job, sweep, text, settings, group)

    def _spread_job(self, sweep: Sweep, text: str, settings: dict[str, Any], group: int) -> None:
        def on_progress(p: Progress) -> None:
            sample = p.latest
            if sample is not None:
                started = datetime.datetime.now(datetime.timezone.utc)
                self._history.add(
                    kind="spread",
                    group=group,
                    prompt=text,
                    settings={**settings, sweep.parameter: sample.value},
                    result=run_result(sample),
                    started=started,
                )
                self.spread_view.show(sweep.result(), final=False)
            if self._state == "running":
                self._set_status(
                    f"spread {group} · {p.finished} of {p.total} samples · {p.elapsed:.1f} s"
                )

        result: SpreadResult | None = None
        error: str | None = None
        try:
            result = sweep.run(on_progress)
        except Exception as err:  # noqa: BLE001 - a refusal before any answer: shown, not raised
            error = f"{type(err).__name__}: {err}"
            result = sweep.result()
        with self._lock:
            self._sweep = None
        self._spreads.append(result)
        self.spread_view.show(result, final=True)
        outcome = "error" if error or result.error else "stopped" if result.stopped_by else "done"
        self._set_status(f"spread {group} · {result.summary_line()}")
        self._show_error(error or result.error)
        self._end(outcome)

    def _spread_clicked(self) -> None:
        try:
            spec = parse_spread(str(self.spread_values.value))
            self.spread(**{spec["parameter"]: spec["values"]}, n=spec["n"])
        except ValueError as err:
            self._show_error(str(err))

    @property
    def spreads(self) -> list[SpreadResult]:
        """Every "n samples per setting" result of this panel, oldest first."""
        return list(self._spreads)

    # -- history -----------------------------------------------------------------------
    @property
    def history(self) -> list[dict[str, Any]]:
        """Every run, oldest first: parameters, prompt, text, outcome, stop reason, timings.

        A list of plain dicts (copies); the keys are `jupyter_complete.panel.COLUMNS`.
        """
        return self._history.records()

    def history_frame(self) -> Any:
        """`history` as a pandas DataFrame, one row per run (needs pandas installed)."""
        return self._history.frame()

    def load(self, index: int) -> dict[str, Any]:
        """Put history record ``index`` (0 = first, -1 = last) back into the controls.

        The prompt, model, sliders, checkboxes, stop sequences and system prompt take the
        record's values (so the settings do too), and its text is shown in the output.
        Returns the record.
        """
        if self.running:
            raise RuntimeError("Stop the current run before loading one from the history.")
        record = self._history[index]
        self.prompt_box.value = record["prompt"]
        for name in SETTINGS:
            setattr(self.settings, name, record[name])
        self.output.set_text(record["text"])
        self._set_answer_label(f"run #{record['run']} (loaded) · {params_line(record)}")
        self._set_status(f"{record_status(record)} · loaded run #{record['run']}")
        self._show_error(record["error"])
        self._refresh_record()
        return record

    def _load_clicked(self) -> None:
        index = self.history_select.value
        if index is not None and not self.running:
            self.load(int(index))

    # -- lifetime ----------------------------------------------------------------------
    def close(self) -> None:
        """Stop any run, unlink the settings and close every widget of the panel."""
        self.stop()
        for binding in self._bindings:
            binding.unbind()
        self._bindings = []
        self.compare_grid.close()
        self.spread_view.close()
        self.output.close()
        close_tree(self.widget)
