"""How many CPU threads the built-in model evaluates with: the setting, and the tuner.

`configured_threads` reads ``JUPYTER_COMPLETE_THREADS``; without it a `ThreadTuner` measures
token times and picks the count that is fastest on this machine now.
"""

from __future__ import annotations

import os
import statistics
from collections import deque
from collections.abc import Callable, Sequence

from ..errors import LocalModelUnavailableError

#: Environment variable: CPU threads for the local model (default: every available CPU).
ENV_THREADS = "JUPYTER_COMPLETE_THREADS"


def available_cpus() -> int:
    """How many CPUs this process may run on (at least 1).

    Its CPU affinity mask where the OS has one (``os.sched_getaffinity``: a container or
    ``taskset`` may allow fewer CPUs than the machine has), else ``os.cpu_count()``.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def configured_threads() -> int | None:
    """The thread count ``JUPYTER_COMPLETE_THREADS`` pins, or None when it is unset (tuned).

    Raises:
        LocalModelUnavailableError: it is set but not a whole number >= 1.
    """
    raw = os.environ.get(ENV_THREADS, "").strip()
    if not raw:
        return None
    try:
        threads = int(raw)
    except ValueError:
        threads = 0
    if threads < 1:
        raise LocalModelUnavailableError(
            f"{ENV_THREADS} must be a whole number of threads >= 1, not {raw!r}; unset it to "
            f"let the model measure the fastest count (of {available_cpus()} CPUs here)."
        )
    return threads


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every OS
        return None


class ThreadTuner:
    """Chooses how many CPU threads evaluate each token, from how long tokens take.

    Why measure instead of a fixed rule: llama.cpp's threads meet at a barrier after every
    operation of a token (hundreds of them) and, under OpenMP's default wait policy, spin
    while they wait. On an idle machine all cores are fastest (2 threads on 2 cores: about
    1.35x the tokens/s of 1). On cores busy with other work, a thread that is not scheduled
    stalls every barrier while its partner spins: measured on the same 2 cores under a load
    average of 12, 2 threads gave 1.1 tokens/s and 1 thread 17-28. Neither count is right
    everywhere, and the load changes, so the tuner keeps measuring:

    * it uses the count whose recent tokens (median of the last `WINDOW`) were fastest;
    * every so often it probes another count for `PROBE_TOKENS` tokens (one, if that one was
      4x slower); a probe that loses waits 4x longer before the next (up to
      `MAX_PROBE_EVERY` tokens), one that wins resets the wait;
    * a count above the best is only started or probed while the 1-minute load average
      leaves a CPU for each extra thread (``load - best + count <= cpus + 0.5``): on a busy
      machine one such token can take seconds.

    Args:
        candidates: thread counts to choose from (e.g. ``[2, 1]``); the largest is the CPUs.
        load: the 1-minute load average now, or None when unknown (then not used); default
            ``os.getloadavg``.
    """

    WINDOW = 5
    PROBE_TOKENS = 2
    FIRST_PROBE = 3
    PROBE_EVERY = 64
    MAX_PROBE_EVERY = 4096

    def __init__(
        self, candidates: Sequence[int], *, load: Callable[[], float | None] = _load_average
    ) -> None:
        ordered = sorted({max(1, int(n)) for n in candidates}, reverse=True)
        if not ordered:
            raise ValueError("ThreadTuner needs at least one candidate thread count")
        #: The thread counts it chooses from, largest first.
        self.candidates: list[int] = ordered
        self._load = load
        self._samples: dict[int, deque[float]] = {n: deque(maxlen=self.WINDOW) for n in ordered}
        self._tokens = 0
        self._every = dict.fromkeys(ordered, self.PROBE_EVERY)
        self._next_probe = {n: self.FIRST_PROBE * (i + 1) for i, n in enumerate(ordered)}
        self._probe: int | None = None
        self._probe_left = 0
        self._start: int | None = None

    def estimate(self, threads: int) -> float | None:
        """Median seconds per token of the last `WINDOW` tokens at ``threads``, if any."""
        samples = self._samples[threads]
        return statistics.median(samples) if samples else None

    def _room(self, threads: int, running: int) -> bool:
        """Whether the load average leaves a CPU for each thread beyond ``running``."""
        if threads <= running:
            return True
        load = self._load()
        return load is None or load - running + threads <= self.candidates[0] + 0.5

    def best(self) -> int:
        """The count with the fastest recent tokens; before any, the most the load allows."""
        measured = [(est, n) for n in self.candidates if (est := self.estimate(n)) is not None]
        if measured:
            return min(measured)[1]
        if self._start is None:
            self._start = next(
                (n for n in self.candidates if self._room(n, 0)), self.candidates[-1]
            )
        return self._start

    def choose(self) -> int:
        """The count to evaluate the next token with (the best, or one being probed)."""
        if self._probe is not None:
            return self._probe
        best = self.best()
        for n in self.candidates:
            if n != best and self._tokens >= self._next_probe[n]:
                if not self._room(n, best):
                    # Check again later, as if it had lost: the load may fall.
                    self._next_probe[n] = self._tokens + self._every[n]
                    continue
                self._probe, self._probe_left = n, self.PROBE_TOKENS
                return n
        return best

    def record(self, threads: int, seconds: float) -> None:
        """Note that one token took ``seconds`` at ``threads``."""
        best_before = self.estimate(self.best())
        self._tokens += 1
        self._samples[threads].append(seconds)
        if threads != self._probe:
            return
        self._probe_left -= 1
        if self._probe_left > 0 and not (best_before and seconds > 4 * best_before):
            return
        self._probe = None
        mine = self.estimate(threads)
        won = best_before is None or (mine is not None and mine < best_before)
        self._every[threads] = (
            self.PROBE_EVERY if won else min(self._every[threads] * 4, self.MAX_PROBE_EVERY)
        )
        self._next_probe[threads] = self._tokens + self._every[threads]
