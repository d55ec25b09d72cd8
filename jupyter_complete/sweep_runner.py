"""`Sweep`: the runner that draws ``n`` samples at each value of one sampling parameter.

Samples are drawn concurrently (``concurrency`` worker threads, each with its own `Client`
copy) and in rounds, so a sweep stopped early still compares every value. A kernel interrupt
(Jupyter's stop button, Ctrl-C) or `Sweep.stop` ends it at once: the open streams are closed,
every sample already drawn is kept, and the result says it is partial. `jupyter_complete.spread`
and the panel's "n samples per setting" mode both run a `Sweep`; the result is a
`jupyter_complete.spread_result.SpreadResult`.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .errors import APIStatusError, CompleteError
from .spread_figures import Sample
from .spread_result import SpreadResult

if TYPE_CHECKING:
    from .client import Client
    from .streaming import CompletionStream

log = logging.getLogger("jupyter_complete")

#: Seconds between two progress updates (and the longest a stop waits to be noticed).
PROGRESS_INTERVAL = 0.25


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


__all__ = ["PROGRESS_INTERVAL", "Progress", "Sweep"]
