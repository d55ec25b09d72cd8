"""`spread`: many samples at each value of one sampling parameter, and how different they are.

One answer per setting says little about a sampling parameter: at temperature 0.2 five draws
may be word for word the same, at 1.0 five different stories. The Text Completions API gives
no token probabilities, so for Claude or any upstream engine the honest view of a setting is
many samples. ::

    from jupyter_complete import spread
    result = spread("Name a colour.", n=5, temperature=[0.2, 0.6, 1.0], max_tokens=20)
    result              # per setting: the distinct answers, diversity, lengths, a chart
    result.frame()      # every sample as a pandas DataFrame

The same `Sweep` runs the panel's "n samples per setting" mode.

The figures are defined in `jupyter_complete.spread_figures`; the result, its table
and chart in `jupyter_complete.spread_result`.

Requests run concurrently (up to ``concurrency`` at once, default `DEFAULT_CONCURRENCY`)
except on the built-in model, which generates one answer at a time and would only queue them
(and so inflate their time to first token): there the default is 1. A kernel interrupt
(Jupyter's stop button, Ctrl-C) or `Sweep.stop` ends the sweep at once: the open streams are
closed, every sample already drawn is kept, and the result says it is partial.
"""

from __future__ import annotations

import collections
import dataclasses
import html
import logging
import numbers
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from . import prompt as prompts
from .errors import APIStatusError, CompleteError, InvalidParameterError, OneLineTraceback
from .settings import check_params
from .spread_figures import (
    Sample,
    SettingStats,
    count_answers,
    distinct_n,
    min_median_max,
    normalize,
    setting_stats,
)
from .spread_result import (
    SWEEPABLE,
    SpreadResult,
    draw_chart,
    result_html,
)

if TYPE_CHECKING:
    from .client import Client
    from .settings import CompletionSettings
    from .streaming import CompletionStream

log = logging.getLogger("jupyter_complete")

#: Requests in flight at once against an endpoint that serves several (an upstream engine,
#: the Anthropic API); the built-in model gets 1.
DEFAULT_CONCURRENCY = 4
#: Upper bound on ``concurrency`` (each request holds a thread and a connection).
MAX_CONCURRENCY = 32
#: Upper bound on samples in one sweep (values x n), so a typo cannot queue a day of work.
MAX_SAMPLES = 10_000
#: Default ``max_tokens`` for a sweep: short answers, so many samples stay quick.
DEFAULT_MAX_TOKENS = 128
#: Seconds between two progress updates (and the longest a stop waits to be noticed).
PROGRESS_INTERVAL = 0.25
#: The IPython variable that always holds the last `spread` result (like ``_completion``).
RESULT_VARIABLE = "_spread"


# -- running a sweep -----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Progress:
    """Where a sweep is, for a progress display."""

    #: Samples finished (any outcome) and planned.
    finished: int
    total: int
    #: Of the finished: how many failed.
    failed: int
    #: Requests in flight now.
    running: int
    #: Seconds since the sweep started.
    elapsed: float
    #: Finished samples per setting, in the order of the values.
    per_setting: tuple[int, ...]
    #: The sample that just finished (None for a periodic update).
    latest: Sample | None = None


def is_builtin_model(client: Client) -> bool:
    """True when ``client`` talks to the built-in model started in this process.

    The built-in model generates one answer at a time (a second request waits its turn), so
    sending several at once gains nothing and inflates their time to first token.
    """
    if client.is_local:
        return True
    from .local import embedded  # light: the server module loads only when started

    server = embedded.running_server()
    return server is not None and client.base_url.rstrip("/") == server.url.rstrip("/")


class Sweep:
    """Draws ``n`` samples at each value of one parameter; stoppable from any thread.

    Samples are drawn in rounds (sample 0 of every value, then sample 1 of every value...),
    so a sweep stopped early still compares every value. Each worker thread has its own
    `Client` copy (its own connection pool). Used by `spread` and by the panel.

    Args:
        client: where to send the requests.
        wire_prompt: the prompt exactly as sent (Human/Assistant turns).
        parameter: one of `SWEEPABLE`.
        values: the values of ``parameter`` (already checked).
        n: samples per value.
        params: the other request parameters (wire names; ``parameter`` is overridden).
        concurrency: requests in flight at once.
        prompt: the prompt as the user gave it (recorded in the result).
    """

    def __init__(
        self,
        client: Client,
        wire_prompt: str,
        parameter: str,
        values: Sequence[float],
        n: int,
        params: dict[str, Any],
        *,
        concurrency: int,
        prompt: str | None = None,
    ) -> None:
        self.client = client
        self.wire_prompt = wire_prompt
        self.prompt = wire_prompt if prompt is None else prompt
        self.parameter = parameter
        self.values = list(values)
        self.n = n
        self.params = {k: v for k, v in params.items() if k != parameter}
        self.concurrency = concurrency
        self._jobs = collections.deque((s, i) for i in range(n) for s in range(len(values)))
        self._total = len(self._jobs)
        self._cond = threading.Condition()
        self._open: set[CompletionStream] = set()
        #: Requests sent whose answer has not begun (no response headers yet): job -> sent.
        #: A stop cannot close them, so it records them as stopped and does not wait.
        self._connecting: dict[tuple[int, int], float] = {}
        self._abandoned: set[tuple[int, int]] = set()
        self._samples: list[Sample] = []
        self._running = 0
        self._workers_left = 0
        self._stopped_by: str | None = None
        self._error: str | None = None
        self._fatal: BaseException | None = None
        self._started = 0.0
        self._ended: float | None = None
        self._latest: list[Sample] = []

    # -- control -----------------------------------------------------------------------
    def stop(self, reason: str = "stopped") -> None:
        """End the sweep now: no new requests; open streams are closed (their text kept)."""
        with self._cond:
            if self._stopped_by is None and (self._jobs or self._running):
                self._stopped_by = reason
            self._jobs.clear()
            streams = list(self._open)
            self._cond.notify_all()
        for stream in streams:
            stream.close()

    @property
    def stopping(self) -> bool:
        """True once `stop` was called (or an error ended the sweep)."""
        return self._stopped_by is not None

    def progress(self) -> Progress:
        """A snapshot of where the sweep is."""
        with self._cond:
            per = [0] * len(self.values)
            for s in self._samples:
                per[s.setting] += 1
            end = self._ended if self._ended is not None else time.monotonic()
            return Progress(
                finished=len(self._samples),
                total=self._total,
                failed=sum(s.outcome == "error" for s in self._samples),
                running=self._running,
                elapsed=end - self._started if self._started else 0.0,
                per_setting=tuple(per),
            )

    def result(self) -> SpreadResult:
        """The result so far (complete once `run` has returned)."""
        with self._cond:
            samples = sorted(self._samples, key=lambda s: (s.setting, s.index))
            end = self._ended if self._ended is not None else time.monotonic()
            return SpreadResult(
                prompt=self.prompt,
                wire_prompt=self.wire_prompt,
                parameter=self.parameter,
                values=list(self.values),
                n=self.n,
                params=dict(self.params),
                samples=samples,
                concurrency=self.concurrency,
                elapsed=end - self._started if self._started else 0.0,
                stopped_by=self._stopped_by,
                error=self._error,
            )

    # -- running -----------------------------------------------------------------------
    def run(
        self,
        on_progress: Callable[[Progress], None] | None = None,
        interval: float = PROGRESS_INTERVAL,
    ) -> SpreadResult:
        """Draw every sample; blocks until done, stopped, or interrupted; returns the result.

        ``on_progress`` is called on this thread after each sample and every ``interval``
        seconds. A KeyboardInterrupt (kernel interrupt) stops the sweep and returns the
        partial result instead of raising.

        Raises:
            LocalModelUnavailableError: the built-in model is the endpoint but not installed.
            APIStatusError: the first requests were refused (bad key, bad model...) and
                nothing was drawn; otherwise such an error ends the sweep and is in
                `SpreadResult.error`.
        """
        if self._started:
            raise RuntimeError("a Sweep runs once; make a new one to sweep again")
        _ = self.client.base_url  # start the built-in server here, raising if it cannot
        self._started = time.monotonic()
        workers = [
            threading.Thread(
                target=self._work,
                args=(self.client.copy(),),
                daemon=True,
                name=f"jupyter_complete-spread-{i}",
            )
            for i in range(max(1, min(self.concurrency, self._total)))
        ]
        self._workers_left = len(workers)
        for w in workers:
            w.start()
        try:
            self._wait(workers, on_progress, interval)
        except KeyboardInterrupt:
            self.stop("interrupted")
            self._wait(workers, None, interval)
        with self._cond:
            self._ended = time.monotonic()
        if on_progress is not None:
            try:
                on_progress(self.progress())
            except Exception:  # noqa: BLE001 - as above
                log.exception("spread progress display failed")
        result = self.result()
        if self._fatal is not None and result.drawn == 0:
            raise self._fatal
        return result

    def _wait(
        self,
        workers: list[threading.Thread],
        on_progress: Callable[[Progress], None] | None,
        interval: float,
    ) -> None:
        while True:
            with self._cond:
                if not self._latest and self._workers_left and not self._only_connecting():
                    self._cond.wait(interval)
                latest, self._latest = self._latest, []
                left = self._workers_left
                if left and self._only_connecting():
                    # Stopped while requests still wait for their answer to begin: a closed
                    # stream cannot end that wait (only the server or the read timeout can),
                    # so keep them as stopped samples and leave their threads to end alone.
                    latest.extend(self._abandon_connecting())
                    left = 0
            if on_progress is not None:
                batch: list[Sample | None] = list(latest) or [None]
                for sample in batch:
                    try:
                        on_progress(dataclasses.replace(self.progress(), latest=sample))
                    except Exception:  # noqa: BLE001 - a display failing must not lose samples
                        log.exception("spread progress display failed")
            if not left:
                for w in workers:
                    if not self._abandoned:
                        w.join()
                return

    def _only_connecting(self) -> bool:
        """(Under the lock) stopped, and every live worker waits for an answer to begin."""
        return (
            self._stopped_by is not None
            and bool(self._connecting)
            and self._workers_left == len(self._connecting)
        )

    def _abandon_connecting(self) -> list[Sample]:
        """(Under the lock) the requests still waiting for an answer, as stopped samples."""
        now = time.monotonic()
        samples = [
            Sample(
                setting=setting,
                value=self.values[setting],
                index=index,
                text="",
                outcome="stopped",
                elapsed=now - sent,
                started=sent - self._started,
            )
            for (setting, index), sent in self._connecting.items()
        ]
        self._abandoned.update(self._connecting)
        self._connecting.clear()
        self._samples.extend(samples)
        return samples

    def _work(self, client: Client) -> None:
        try:
            while True:
                with self._cond:
                    if self._stopped_by is not None or not self._jobs:
                        return
                    setting, index = self._jobs.popleft()
                    self._running += 1
                sample = self._draw(client, setting, index)
                with self._cond:
                    self._running -= 1
                    if (setting, index) in self._abandoned:
                        return  # already kept as stopped; the sweep has ended
                    self._samples.append(sample)
                    self._latest.append(sample)
                    self._cond.notify_all()
        finally:
            client.close()
            with self._cond:
                self._workers_left -= 1
                self._cond.notify_all()

    def _draw(self, client: Client, setting: int, index: int) -> Sample:
        value = self.values[setting]
        params = {**self.params, self.parameter: value}
        sent = time.monotonic()
        stream: CompletionStream | None = None
        error: BaseException | None = None
        with self._cond:
            self._connecting[(setting, index)] = sent
        try:
            try:
                stream = client.completions.create(prompt=self.wire_prompt, stream=True, **params)
            finally:
                with self._cond:
                    self._connecting.pop((setting, index), None)
            with self._cond:
                stopped = self._stopped_by is not None
                if not stopped:
                    self._open.add(stream)
            if stopped:
                stream.close()
            for _ in stream:
                pass
        except Exception as err:  # noqa: BLE001 - every failure becomes a sample's error
            error = err
            if not isinstance(err, CompleteError) and not self.stopping:
                log.exception("spread request failed")
        finally:
            if stream is not None:
                with self._cond:
                    self._open.discard(stream)
                stream.close()
        snap = (
            stream.snapshot(interrupted=self.stopping)
            if stream is not None
            else getattr(error, "partial", None)
        )
        if snap is not None and snap.stop_reason is not None and error is None:
            outcome = "done"
        elif self.stopping and (error is None or not isinstance(error, APIStatusError)):
            outcome = "stopped"
        else:
            outcome = "error"
        if outcome == "error" and _refused(error) and (setting, index) not in self._abandoned:
            # A refusal (bad key, unknown model, bad parameter) would refuse every request.
            with self._cond:
                if self._fatal is None:
                    self._fatal = error
                    self._error = f"{type(error).__name__}: {error}"
            self.stop("error")
        usage = snap.usage if snap is not None else None
        return Sample(
            setting=setting,
            value=value,
            index=index,
            text=snap.completion if snap is not None else "",
            outcome=outcome,
            stop_reason=snap.stop_reason if snap is not None else None,
            error=f"{type(error).__name__}: {error}" if outcome == "error" else None,
            output_tokens=(usage or {}).get("output_tokens"),
            time_to_first_token=snap.time_to_first_token if snap is not None else None,
            elapsed=(
                snap.elapsed
                if snap is not None and snap.elapsed is not None
                else time.monotonic() - sent
            ),
            started=sent - self._started,
            model=snap.model if snap is not None else None,
            request_id=snap.request_id if snap is not None else None,
        )


def _refused(error: BaseException | None) -> bool:
    """A 4xx other than 408/409/429: the request itself is wrong, retrying cannot help."""
    return (
        isinstance(error, APIStatusError)
        and error.status_code is not None
        and 400 <= error.status_code < 500
        and error.status_code not in (408, 409, 429)
    )


class SweepInterrupted(OneLineTraceback, KeyboardInterrupt):
    """The kernel was interrupted during a sweep; the samples drawn were kept.

    Still a `KeyboardInterrupt`, so Jupyter stops the cells queued after this one; shown as
    one line. ``result`` holds what was drawn (in IPython also shown above the error and
    stored in the variable the message names).
    """

    display_name = "KeyboardInterrupt"

    def __init__(self, result: Any, drawn: int, variable: str) -> None:
        self.result = result
        super().__init__(
            f"the sweep was stopped; the {drawn:,} samples drawn are kept in {variable}."
        )


def keep_in_ipython(result: Any, variable: str, *, show: bool) -> None:
    """Store ``result`` as ``variable`` in the IPython user namespace (and display it)."""
    ipython_mod = sys.modules.get("IPython")
    ip = ipython_mod.get_ipython() if ipython_mod is not None else None
    if ip is None:
        return
    ip.user_ns[variable] = result
    if show:
        from IPython.display import display

        display(result)


# -- checking the call ---------------------------------------------------------------------
def _swept(name: str, value: object) -> bool:
    """Is ``value`` a list of values (swept) rather than one value (fixed)?"""
    if value is None or isinstance(value, (numbers.Real, bool)):
        return False
    if isinstance(value, (str, bytes)):
        raise InvalidParameterError(name, value, "a number, or a list of numbers to sweep")
    return isinstance(value, Iterable)


def check_sweep(
    parameter_values: dict[str, object],
    n: object,
    concurrency: object,
) -> tuple[str, list[float]]:
    """The swept parameter and its values; a one-line error for anything wrong.

    ``parameter_values`` maps each of `SWEEPABLE` to what the caller passed (None, a
    number, or a list of numbers).
    """
    swept = [name for name, v in parameter_values.items() if _swept(name, v)]
    if not swept:
        raise ValueError(
            "spread() sweeps one parameter: give a list of values for one of temperature, "
            "top_p or top_k (e.g. temperature=[0.2, 0.6, 1.0])."
        )
    if len(swept) > 1:
        raise ValueError(
            f"spread() sweeps one parameter at a time, but {' and '.join(swept)} are both "
            "lists: give one of them a single value."
        )
    name = swept[0]
    raw = list(parameter_values[name])  # type: ignore[call-overload]
    if not raw:
        raise ValueError(f"spread(): {name}=[] has no values to sweep.")
    values: list[float] = []
    for v in raw:
        if isinstance(v, numbers.Integral) and not isinstance(v, bool):
            v = int(v)
        elif isinstance(v, numbers.Real) and not isinstance(v, bool):
            v = float(v)
        check_params({name: v})
        if v in values:
            raise ValueError(f"spread(): {name} lists {v!r} twice; give each value once.")
        values.append(v)
    for fixed, v in parameter_values.items():
        if fixed != name and v is not None:
            check_params({fixed: v})
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or int(n) < 1:
        raise InvalidParameterError("n", n, "an integer >= 1 (samples per value)")
    if int(n) * len(values) > MAX_SAMPLES:
        raise ValueError(
            f"spread(): {n} samples x {len(values)} values is more than "
            f"{MAX_SAMPLES:,} requests; lower n or the number of values."
        )
    if concurrency is not None and (
        isinstance(concurrency, bool)
        or not isinstance(concurrency, int)
        or not 1 <= concurrency <= MAX_CONCURRENCY
    ):
        raise InvalidParameterError(
            "concurrency", concurrency, f"an integer from 1 to {MAX_CONCURRENCY}"
        )
    return name, values


# -- progress displays ---------------------------------------------------------------------
class _TextProgress:
    """One line on stderr, rewritten in place (``\\r``), at most every half second."""

    def __init__(self, label: str, stream: Any = None) -> None:
        self._label = label
        self._out = stream if stream is not None else sys.stderr
        self._last = float("-inf")
        self._shown = ""

    def update(self, p: Progress) -> None:
        now = time.monotonic()
        if p.finished < p.total and now - self._last < 0.5 and p.latest is None:
            return
        self._last = now
        line = _progress_text(self._label, p)
        if line != self._shown:
            self._shown = line
            self._out.write("\r" + line)
            self._out.flush()

    def close(self) -> None:
        if self._shown:
            self._out.write("\n")
            self._out.flush()

    def finish(self, result: SpreadResult) -> None:
        self._out.write("\r" + f"spread: {result.summary_line()}".ljust(len(self._shown)) + "\n")
        self._out.flush()


class _WidgetProgress:
    """An ipywidgets progress bar with a line of counts and elapsed time; when the sweep
    ends it is replaced by a static line (so a saved notebook keeps no dead widget)."""

    def __init__(self, label: str) -> None:
        import ipywidgets as widgets
        from IPython.display import display

        self._label = label
        self._bar = widgets.IntProgress(
            value=0, min=0, max=1, bar_style="info", layout=widgets.Layout(width="16em")
        )
        self._text = widgets.HTML()
        self._box = widgets.HBox([self._bar, self._text])
        self._handle = display(self._box, display_id=True)
        self._last = float("-inf")

    def update(self, p: Progress) -> None:
        now = time.monotonic()
        if p.latest is None and now - self._last < 0.45 and p.finished < p.total:
            return
        self._last = now
        self._bar.max = max(1, p.total)
        self._bar.value = p.finished
        if p.failed:
            self._bar.bar_style = "warning"
        self._text.value = f"<small>{html.escape(_progress_text(self._label, p))}</small>"

    def close(self) -> None:
        for w in (self._bar, self._text, self._box):
            w.close()

    def finish(self, result: SpreadResult) -> None:
        from IPython.display import HTML

        if self._handle is not None:
            self._handle.update(
                HTML(f"<small>spread · {html.escape(result.summary_line())}</small>")
            )
        for w in (self._bar, self._text, self._box):
            w.close()


def _progress_text(label: str, p: Progress) -> str:
    pct = 100 * p.finished / p.total if p.total else 100
    text = f"{label}: {p.finished} of {p.total} samples ({pct:.0f}%) · {p.elapsed:.1f} s"
    if p.running:
        text += f" · {p.running} running"
    if p.failed:
        text += f" · {p.failed} failed"
    return text


def _in_kernel() -> bool:
    ipython_mod = sys.modules.get("IPython")
    if ipython_mod is None:
        return False
    ip = ipython_mod.get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


def make_progress(kind: bool | str, label: str) -> _TextProgress | _WidgetProgress | None:
    """The progress display for ``kind``: True picks a widget in a Jupyter kernel and a text
    line elsewhere; ``"widget"``, ``"text"``; False for none."""
    if kind is False:
        return None
    if kind not in (True, "widget", "text"):
        raise InvalidParameterError("progress", kind, 'True, False, "widget" or "text"')
    if kind == "text" or (kind is True and not _in_kernel()):
        return _TextProgress(label)
    return _WidgetProgress(label)


# -- the function --------------------------------------------------------------------------
def spread(
    prompt: str,
    *,
    n: int = 5,
    temperature: float | Sequence[float] | None = None,
    top_p: float | Sequence[float] | None = None,
    top_k: int | Sequence[int] | None = None,
    max_tokens: int | None = None,
    model: str | None = None,
    stop_sequences: Sequence[str] | None = None,
    system: str | None = None,
    raw: bool = False,
    settings: CompletionSettings | None = None,
    client: Client | None = None,
    concurrency: int | None = None,
    progress: bool | str = True,
) -> SpreadResult:
    """Draw ``n`` completions at each value of one sampling parameter; see how they differ.

    Give exactly one of ``temperature``, ``top_p``, ``top_k`` as a list (the swept
    parameter); the others may be single values (fixed) or None (unset: the server's
    default, or ``settings``'). The figures are defined in the docstring of
    `jupyter_complete.spread_figures`.

    Args:
        prompt: the prompt; plain text is sent as a Human turn, as ``%%complete`` does
            (`jupyter_complete.prompt.build`); ``raw=True`` sends it exactly as written.
        n: samples per value (>= 1).
        temperature, top_p, top_k: a list to sweep, a number to fix, None for unset.
        max_tokens: ``max_tokens_to_sample`` of each sample (default: ``settings``', else
            `DEFAULT_MAX_TOKENS`).
        model, stop_sequences, system: as in ``%%complete``; None takes ``settings``'.
        settings: a `CompletionSettings` (the panel's, ``%config``'s) supplying every
            setting not given here.
        client: the `Client` (default ``Client()``: the environment's endpoint, else the
            built-in model).
        concurrency: requests in flight at once, 1 to `MAX_CONCURRENCY`; None: 1 on the
            built-in model, else `DEFAULT_CONCURRENCY`.
        progress: True: a progress bar (a widget in Jupyter, a line on stderr elsewhere);
            ``"text"``, ``"widget"``, or False for none.

    Returns:
        A `SpreadResult`: displays as a table with a chart; ``.stats``, ``.samples``,
        ``.frame()``. In IPython it is also stored as ``_spread``.

    Raises:
        ValueError: no parameter or two parameters given as lists, an empty or repeated
            list, more than `MAX_SAMPLES` samples.
        InvalidParameterError: a value outside the API's range (temperature and top_p in
            [0, 1], top_k >= 0, max_tokens >= 1), ``n`` < 1, bad ``concurrency``.
        APIStatusError: the endpoint refused the requests (e.g. a bad key) before any
            answer was drawn.
        SweepInterrupted: a kernel interrupt (a `KeyboardInterrupt`) stopped the sweep; the
            samples drawn so far are in its ``result`` and, in IPython, shown and kept in
            ``_spread`` (marked partial).
    """
    parameter, values = check_sweep(
        {"temperature": temperature, "top_p": top_p, "top_k": top_k}, n, concurrency
    )
    n = int(n)  # numpy's integers too: the result holds JSON-safe numbers
    params: dict[str, Any] = settings.request_params() if settings is not None else {}
    fixed = {"temperature": temperature, "top_p": top_p, "top_k": top_k}
    for name, value in fixed.items():
        if name != parameter and value is not None:
            params[name] = value
    params.pop(parameter, None)
    if max_tokens is not None:
        params["max_tokens_to_sample"] = max_tokens
    params.setdefault("max_tokens_to_sample", DEFAULT_MAX_TOKENS)
    if model:
        params["model"] = model
    if stop_sequences is not None:
        params["stop_sequences"] = list(stop_sequences)
    if not params.get("stop_sequences"):
        params.pop("stop_sequences", None)
    if system is None:
        system = settings.system if settings is not None else ""
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidParameterError("prompt", prompt, "a non-empty string")
    check_params(params)
    wire = prompts.build(prompt, system=system, raw=raw)
    if client is None:
        from .client import Client

        client = Client()
    if concurrency is None:
        concurrency = 1 if is_builtin_model(client) else DEFAULT_CONCURRENCY
    sweep = Sweep(
        client, wire, parameter, values, n, params, concurrency=concurrency, prompt=prompt
    )
    display = make_progress(progress, f"spread {parameter}")
    try:
        result = sweep.run(display.update if display is not None else None)
    except BaseException:
        if display is not None:
            display.close()
        raise
    if display is not None:
        display.finish(result)
    interrupted = result.stopped_by == "interrupted"
    keep_in_ipython(result, RESULT_VARIABLE, show=interrupted)
    if interrupted:
        raise SweepInterrupted(result, result.drawn, RESULT_VARIABLE)
    return result


__all__ = [
    "DEFAULT_CONCURRENCY",
    "SWEEPABLE",
    "Progress",
    "Sample",
    "SettingStats",
    "SpreadResult",
    "Sweep",
    "SweepInterrupted",
    "check_sweep",
    "count_answers",
    "distinct_n",
    "draw_chart",
    "is_builtin_model",
    "keep_in_ipython",
    "min_median_max",
    "normalize",
    "result_html",
    "setting_stats",
    "spread",
]
