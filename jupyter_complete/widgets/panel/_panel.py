"""`Panel`: the tuning panel (prompt, sliders, Run/Stop, compare, samples, history).

The class is built in layers, one module each: `PanelView` (``_view.py``, the widgets),
`SavedPanel` (``_saved.py``, the state its record saves), `PanelRuns` (``_runs.py``, run,
stop and the history); this module adds compare and "n samples per setting".
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ...record import LiveRecord, find_record
from ...settings import CompletionSettings
from ...sweep import (
    DEFAULT_CONCURRENCY,
    Progress,
    SpreadResult,
    Sweep,
    check_sweep,
    is_builtin_model,
)
from ._compare import Column, parse_compare, plan
from ._history import History
from ._runner import UPDATE_INTERVAL, StopSignal, stream_once
from ._runs import PanelRuns
from ._saved import settings_from_state
from ._spread import parse_spread, run_result

if TYPE_CHECKING:
    from ...chat import Chat
    from ...client import Client


class Panel(PanelRuns):
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
        self._signal = None
        self._job = None
        self._history = History()
        self._sweep = None
        self._spreads = []
        self.record = LiveRecord("panel")
        self._build(prompt)
        self.run_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: self.stop())
        self.compare_button.on_click(lambda _: self._compare_clicked())
        self.spread_button.on_click(lambda _: self._spread_clicked())
        self.load_button.on_click(lambda _: self._load_clicked())

    def _ipython_display_(self) -> None:
        # The widget, then its static record (kept current; see jupyter_complete.record).
        self.record.show(self.widget, *self.record_bundle())

    def __repr__(self) -> str:
        return f"<Panel {self.state}, {len(self._history)} runs>"

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
        """Run "n samples per setting": ``n`` answers at each value of one parameter, measured.

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

    @classmethod
    def from_record(
        cls, state: dict[str, Any], client: Client | None = None, **kwargs: Any
    ) -> Panel:
        """A live panel showing a saved record's state (`to_state`'s dict).

        The prompt, settings, history, last answer and compare columns come back; nothing is
        re-run. ``client`` and ``kwargs`` are as for `Panel`. Raises ValueError for a dict
        that is not a panel state.
        """
        settings = settings_from_state(state)  # checks that ``state`` is a panel state
        panel = cls(str(state["prompt"]), client=client, settings=settings, **kwargs)
        panel._restore(state)
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

    # -- lifetime ----------------------------------------------------------------------
    def close(self) -> None:
        """Stop any run, unlink the settings and close every widget of the panel."""
        self.stop()
        super().close()
