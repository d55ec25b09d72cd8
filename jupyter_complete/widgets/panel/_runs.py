"""`PanelRuns`: sending the panel's prompt, streaming the answer, stopping, and the history.

Every request runs on a background thread (`stream_once`), so the kernel stays free; Stop
closes the connection from the kernel's thread. The running state (idle, running, stopping,
then done, stopped or error) is kept under a lock, as is the lazily created client. Compare
and "n samples per setting" (`jupyter_complete.widgets.panel.Panel`) start their runs here.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ... import prompt as prompts
from ...sweep import Sweep
from .._textview import StreamView
from ._compare import result_status
from ._history import SETTINGS, params_line, record_status, status_line
from ._runner import StopSignal, stream_once
from ._saved import SavedPanel

if TYPE_CHECKING:
    from ...chat import Chat
    from ...client import Client

log = logging.getLogger("jupyter_complete")

#: Seconds between two updates of the live status line (the text has its own interval).
STATUS_INTERVAL = 0.25


class PanelRuns(SavedPanel):
    """The panel's requests: run, stop, wait, and the history they fill."""

    #: A `jupyter_complete.chat.Chat` the runs continue (None: each run stands alone).
    chat: Chat | None
    #: Seconds between the starts of two updates of the streamed text.
    update_interval: float
    _client: Client | None
    _client_lock: threading.Lock
    #: Guards ``_state``, ``_signal`` and ``_sweep``.
    _lock: threading.Lock
    _state: str
    _signal: StopSignal | None
    _job: threading.Thread | None
    #: The "n samples per setting" in progress (Stop stops it too).
    _sweep: Sweep | None

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

    def _begin(self) -> StopSignal | None:
        """Enter the running state; None if something is already running."""
        with self._lock:
            if self.running:
                return None
            self._state = "running"
            self._signal = signal = StopSignal()
        self._show_running()
        self._show_error(None)
        return signal

    def _end(self, state: str) -> None:
        self._show_idle()
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
        """What every kind of run starts with; None, with the reason shown, when it cannot.

        The prompt, its wire form (and the note on dropped turns), and the running state.
        """
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

    # -- history -----------------------------------------------------------------------
    @property
    def history(self) -> list[dict[str, Any]]:
        """Every run, oldest first: parameters, prompt, text, outcome, stop reason, timings.

        A list of plain dicts (copies); the keys are `jupyter_complete.widgets.panel.COLUMNS`.
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
