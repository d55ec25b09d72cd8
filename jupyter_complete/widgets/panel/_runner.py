"""One streamed request, run on the caller's (background) thread and stoppable from another.

The panel never waits on the network on the kernel's main thread: `stream_once` runs on a
worker thread, and `StopSignal.request` (the Stop button) closes the stream's connection
from the main thread, which wakes the worker at once (see ``CompletionStream.close``).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...completion import Completion
from ...errors import CompleteError
from ...render import StreamRenderer

if TYPE_CHECKING:
    from ...client import Client
    from ...streaming import CompletionStream

log = logging.getLogger("jupyter_complete")

#: Seconds between the starts of two updates of the panel's text: at most ~29 a second, as
#: ``%%complete``'s stream messages (`jupyter_complete.render.DEFAULT_INTERVAL`). A delta that
#: arrives after a quiet interval is shown at once (leading edge). Measured in JupyterLab
#: (``tests/benchmarks/bench_dom_latency.py``): at 50 ms (20 a second) the events of a 20
#: events/s stream often came just inside the interval and waited for its end (p50 14.1 ms);
#: at 35 ms, p50 3.8 ms, and p95 at 200 events/s went from 68.2 to 60.1 ms.
UPDATE_INTERVAL = 0.035


class StopSignal:
    """Stops a run from another thread: marks it stopped and closes its stream at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requested = False
        self._stream: CompletionStream | None = None

    @property
    def requested(self) -> bool:
        """True once `request` was called."""
        return self._requested

    def request(self) -> None:
        """Stop: close the open stream now (a run still connecting stops when it connects)."""
        with self._lock:
            self._requested = True
            stream = self._stream
        if stream is not None:
            stream.close()

    def attach(self, stream: CompletionStream) -> bool:
        """Register the run's stream; True if a stop was already requested."""
        with self._lock:
            self._stream = stream
            return self._requested

    def detach(self) -> None:
        """Forget the stream (the run is over)."""
        with self._lock:
            self._stream = None


@dataclasses.dataclass
class RunResult:
    """How one request ended: its outcome, the error if any, and everything received."""

    #: "done" (the server ended it), "stopped" (Stop was pressed) or "error".
    outcome: str
    #: What was received, also on Stop and on errors: the text, stop reason, model, usage and
    #: timings (``elapsed`` is measured here when the server never answered).
    completion: Completion
    #: One line naming the error class and saying what went wrong (None unless "error").
    error: str | None = None

    @property
    def text(self) -> str:
        """Everything received (``completion.completion``)."""
        return self.completion.completion


def stream_once(
    get_client: Callable[[], Client],
    prompt: str,
    params: dict[str, Any],
    *,
    write: Callable[[str], object],
    signal: StopSignal,
    interval: float,
) -> RunResult:
    """Stream one completion, handing text to ``write`` in coalesced batches; never raises.

    ``get_client`` is called here, so that creating the client (and starting the built-in
    model, which loads its weights) happens on this thread too.
    """
    started = time.monotonic()
    renderer = StreamRenderer(write=write, interval=interval)
    stream: CompletionStream | None = None
    error: Exception | None = None
    try:
        stream = get_client().completions.create(prompt=prompt, stream=True, **params)
        if signal.attach(stream):
            stream.close()  # Stop was pressed while connecting
        for event in stream:
            renderer.feed(event.completion)
    except Exception as err:  # noqa: BLE001 - every failure becomes a line in the panel
        error = err
        if not isinstance(err, CompleteError) and not signal.requested:
            log.exception("panel run failed")
    finally:
        signal.detach()
        if stream is not None:
            stream.close()
        try:
            renderer.close()
        except Exception:  # noqa: BLE001 - a widget update failed; the result still counts
            log.exception("panel output update failed")
    snap: Completion | None = None
    if stream is not None:
        snap = stream.snapshot(interrupted=signal.requested)
    elif error is not None:
        snap = getattr(error, "partial", None)
    finished = snap is not None and snap.stop_reason is not None and error is None
    if finished:
        outcome = "done"
    elif signal.requested:
        outcome = "stopped"
    else:
        outcome = "error"
    received = snap if snap is not None else Completion(completion="")
    if received.elapsed is None:
        received = dataclasses.replace(received, elapsed=time.monotonic() - started)
    return RunResult(
        outcome=outcome,
        completion=received,
        error=(
            f"{type(error).__name__}: {error}" if outcome == "error" and error is not None else None
        ),
    )
