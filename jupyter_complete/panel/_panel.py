"""`Panel`: the tuning panel (prompt, sliders, Run/Stop, compare, history)."""

from __future__ import annotations

import datetime
import html
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from .. import prompt as prompts
from ..controls import (
    LABEL_WIDTH,
    Binding,
    bind_optional,
    bind_slider,
    bind_stops,
    bind_text,
    close_tree,
    make_optional_slider,
    make_slider,
)
from ..settings import CompletionSettings
from ._compare import Column, CompareGrid, parse_compare, plan, result_status
from ._history import History, record_status, status_line
from ._runner import UPDATE_INTERVAL, StopSignal, stream_once
from ._textview import StreamView

if TYPE_CHECKING:
    from ..client import Client

log = logging.getLogger("jupyter_complete")

#: Seconds between two updates of the live status line (the text has its own interval).
STATUS_INTERVAL = 0.25

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
        update_interval: seconds between the starts of two updates of the streamed text
            (a delta after a quiet interval is shown at once; see `StreamRenderer`).

    The parts are attributes, for tests and for rearranging: ``prompt_box``, ``system_box``,
    ``temperature_slider``, ``top_k_check`` and ``top_k_slider``, ``top_p_check`` and
    ``top_p_slider``, ``max_tokens_slider``, ``model_box``, ``stop_box``, ``run_button``,
    ``stop_button``, ``compare_button``, ``compare_values``, ``status``, ``error``,
    ``output`` (a `StreamView`), ``compare_grid``, ``history_select``, ``load_button``;
    ``widget`` is the whole panel.

    Example::

        from jupyter_complete import Panel
        panel = Panel("Name three colours.")
        panel                                    # the widget
        panel.compare(temperatures=[0, 0.5, 1])  # three answers side by side
        panel.history_frame()                    # every run as a DataFrame
    """

    def __init__(
        self,
        prompt: str = "",
        client: Client | None = None,
        settings: CompletionSettings | None = None,
        *,
        update_interval: float = UPDATE_INTERVAL,
    ) -> None:
        if update_interval <= 0:
            raise ValueError("update_interval must be a positive number of seconds")
        #: The settings the controls are linked to.
        self.settings = settings if settings is not None else CompletionSettings()
        self.update_interval = float(update_interval)
        self._client = client
        self._client_lock = threading.Lock()
        self._lock = threading.Lock()
        self._state = "idle"
        self._signal: StopSignal | None = None
        self._job: threading.Thread | None = None
        self._history = History()
        self._build(prompt)
        self._bindings: list[Binding] = [
            bind_slider(self.settings, "temperature", self.temperature_slider),
            bind_optional(self.settings, "top_k", self.top_k_check, self.top_k_slider),
            bind_optional(self.settings, "top_p", self.top_p_check, self.top_p_slider),
            bind_slider(self.settings, "max_tokens", self.max_tokens_slider),
            bind_text(self.settings, "model", self.model_box),
            bind_text(self.settings, "system", self.system_box),
            bind_stops(self.settings, self.stop_box),
        ]

    # -- widgets -----------------------------------------------------------------------
    def _build(self, prompt: str) -> None:
        traits = CompletionSettings.class_traits()
        label_style = {"description_width": LABEL_WIDTH}
        self.prompt_box = widgets.Textarea(
            value=prompt, rows=5, layout=widgets.Layout(width="100%"),
            placeholder="Prompt. Plain text is sent as a Human turn; Human:/Assistant: turns "
            "are kept.",
        )
        self.system_box = widgets.Text(
            description="system", placeholder="optional system prompt",
            tooltip=traits["system"].help, style=label_style,
            layout=widgets.Layout(width="100%"),
        )
        self.temperature_slider = make_slider("temperature")
        self.max_tokens_slider = make_slider("max_tokens")
        self.top_k_slider, self.top_k_check = self._optional_slider("top_k")
        self.top_p_slider, self.top_p_check = self._optional_slider("top_p")
        self.model_box = widgets.Text(
            description="model", placeholder="server default", tooltip=traits["model"].help,
            style=label_style, layout=widgets.Layout(width="24em"),
        )
        self.stop_box = widgets.TagsInput(
            value=[], allow_duplicates=False, placeholder="stop sequence (\\n = newline)",
            tooltip=traits["stop_sequences"].help, layout=widgets.Layout(width="auto"),
        )
        self.run_button = widgets.Button(
            description="Run", icon="play", button_style="primary",
            tooltip="Send the prompt with these settings",
        )
        self.stop_button = widgets.Button(
            description="Stop", icon="stop", button_style="warning", disabled=True,
            tooltip="Close the connection now; the text so far is kept",
        )
        self.compare_button = widgets.Button(
            description="Compare", icon="columns",
            tooltip="Run the prompt once per temperature (0, 0.5, 1) or N times (x3), "
            "side by side",
        )
        self.compare_values = widgets.Text(
            value="0, 0.5, 1", placeholder="0, 0.5, 1  or  x3",
            tooltip="Temperatures to compare, or xN for N samples at these settings",
            layout=widgets.Layout(width="10em"),
        )
        self.status = widgets.HTML()
        self.error = widgets.HTML()
        self.output = StreamView(placeholder="The answer streams here.")
        #: The answers of the last compare, side by side.
        self.compare_grid = CompareGrid()
        self.history_select = widgets.Dropdown(
            options=[], description="history", style=label_style,
            layout=widgets.Layout(width="100%"),
        )
        self.load_button = widgets.Button(
            description="Load", icon="upload", disabled=True,
            tooltip="Put this run's prompt and settings back into the controls",
        )
        self.run_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: self.stop())
        self.compare_button.on_click(lambda _: self._compare_clicked())
        self.load_button.on_click(lambda _: self._load_clicked())
        self._set_status("idle")

        sliders = widgets.VBox([
            self.temperature_slider,
            widgets.HBox([self.top_k_check, self.top_k_slider]),
            widgets.HBox([self.top_p_check, self.top_p_slider]),
            self.max_tokens_slider,
        ])
        stops = widgets.HBox([
            widgets.Label("stop", layout=widgets.Layout(width=LABEL_WIDTH)), self.stop_box,
        ], layout=widgets.Layout(width="100%"))
        side = widgets.VBox([self.model_box, stops], layout=widgets.Layout(flex="1 1 auto"))
        buttons = widgets.HBox([
            self.run_button, self.stop_button, self.compare_button, self.compare_values,
        ])
        history = widgets.HBox([self.history_select, self.load_button])
        #: The whole panel (what a notebook displays).
        self.widget = widgets.VBox([
            self.prompt_box, self.system_box, widgets.HBox([sliders, side]), buttons,
            self.status, self.error, self.output.box, self.compare_grid.box, history,
        ], layout=widgets.Layout(width="100%"))
        # CSS classes for styling and for browser tests to find the parts.
        for part, name in ((self.widget, "jc-panel"), (self.output.box, "jc-output"),
                           (self.status, "jc-status"), (self.error, "jc-error"),
                           (self.compare_grid.box, "jc-compare"),
                           (self.history_select, "jc-history")):
            part.add_class(name)

    def _optional_slider(self, name: str) -> tuple[Any, Any]:
        return make_optional_slider(
            name, f"Send {name}. Unchecked: leave it unset (the API's advice unless needed).")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return f"<Panel {self.state}, {len(self._history)} runs>"

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
                from ..client import Client

                self._client = Client()
            return self._client

    def _set_status(self, text: str) -> None:
        self.status.value = (
            '<span style="color:var(--jp-ui-font-color2,#666);font-size:90%">'
            f"{html.escape(text)}</span>"
        )

    def _show_error(self, text: str | None) -> None:
        self.error.value = "" if not text else (
            f'<div style="color:var(--jp-error-color1,#c62828)">⚠ {html.escape(text)}</div>'
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
        self.load_button.disabled = not len(self._history)
        with self._lock:
            self._state = state
            self._signal = None

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

    # -- run / stop --------------------------------------------------------------------
    def run(self) -> None:
        """Send the prompt with the current settings; the answer streams into the output.

        Returns at once (the request runs on a background thread); `wait` waits for the end.
        Does nothing while another run is in progress.
        """
        text = self._prompt_or_error()
        if text is None:
            return
        settings = self.settings.to_dict()
        params = self.settings.request_params()
        wire = prompts.build(text, system=self.settings.system)
        signal = self._begin()
        if signal is None:
            return
        self.output.clear(placeholder=False)
        self._set_status(status_line("running"))
        self._start(self._run_job, signal, wire, text, params, settings)

    def _run_job(
        self, signal: StopSignal, wire: str, text: str, params: dict[str, Any],
        settings: dict[str, Any],
    ) -> None:
        started = datetime.datetime.now(datetime.timezone.utc)

        def show(chars: int, elapsed: float) -> None:
            if self._state == "running":
                self._set_status(status_line("running", chars=chars, elapsed=elapsed))

        result = stream_once(
            self._get_client, wire, params, write=self._writer(self.output, show),
            signal=signal, interval=self.update_interval,
        )
        self._history.add(kind="run", prompt=text, settings=settings, result=result,
                          started=started)
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
        self.stop_button.disabled = True
        self._set_status("stopping")
        signal.request()

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
        text = self._prompt_or_error()
        if text is None:
            return
        wire = prompts.build(text, system=self.settings.system)
        signal = self._begin()
        if signal is None:
            return
        group = self._history.new_group()
        views = self.compare_grid.reset(columns)
        self._set_status(f"compare {group} · running 1 of {len(columns)}")
        self._start(self._compare_job, signal, wire, text, columns, views, group)

    def _compare_job(
        self, signal: StopSignal, wire: str, text: str,
        columns: list[tuple[str, dict[str, Any], dict[str, Any]]], views: list[Column],
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
                self._get_client, wire, params,
                write=self._writer(column.view, column.show_progress), signal=signal,
                interval=self.update_interval,
            )
            self._history.add(kind="compare", group=group, prompt=text, settings=settings,
                              result=result, started=started)
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
        for name in ("model", "max_tokens", "temperature", "top_k", "top_p",
                     "stop_sequences", "system"):
            setattr(self.settings, name, record[name])
        self.output.set_text(record["text"])
        self._set_status(f"{record_status(record)} · loaded run #{record['run']}")
        self._show_error(record["error"])
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
        self.output.close()
        close_tree(self.widget)


