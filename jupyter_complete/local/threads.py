"""How many CPU threads the built-in model evaluates with: the setting, and the tuner.

`configured_threads` reads ``JUPYTER_COMPLETE_THREADS``; without it a `ThreadTuner` measures
token times and picks the count that is fastest on this machine now.
"""

from __future__ import annotations

import os
import statistics
import time
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


def _busy_seconds() -> float | None:
    """CPU seconds all processes spent on un-niced work since boot (``/proc/stat``), or None.

    Sums ``/proc/stat``'s user, system, irq, softirq and steal columns (proc(5)); the nice
    column (user time of processes with a nice value above 0; their kernel time is in the
    system column) is left out: such work yields its CPU to ours, and whether it still
    slows llama.cpp's threads is left to measured token times. Steal counts: a hypervisor
    took that CPU.
    """
    try:
        with open("/proc/stat", "rb") as stat:
            fields = stat.readline().split()
    except OSError:  # not Linux, or /proc not mounted
        return None
    if len(fields) < 9 or fields[0] != b"cpu":
        return None
    user, _nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[1:9])
    return (user + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    """CPU seconds this process has used, all its threads together.

    0 when it runs niced: its time is then in ``/proc/stat``'s nice column, which
    `_busy_seconds` leaves out.
    """
    try:
        if os.getpriority(os.PRIO_PROCESS, 0) > 0:
            return 0.0
    except (AttributeError, OSError):
        pass
    times = os.times()
    return times.user + times.system


class OtherWork:
    """How many CPUs other processes' un-niced work kept busy lately: a callable.

    Each call returns the average over the time since the previous reading (readings less
    than `MIN_INTERVAL` seconds apart return the last figure): un-niced CPU time from
    ``/proc/stat`` (`_busy_seconds`) minus this process's own, per second. A job started with
    ``nice`` does not count, so it never keeps the model from trying every CPU (the load
    average counts it: a nice-19 job once kept the model at 1 thread where 2 were 1.38x
    faster). None where ``/proc/stat`` does not exist.

    Args:
        busy: CPU seconds of un-niced work since boot, machine-wide (default `_busy_seconds`).
        own: CPU seconds this process has used (default `_own_seconds`).
        clock: seconds, monotonic (default ``time.monotonic``).
    """

    MIN_INTERVAL = 0.25

    def __init__(
        self,
        busy: Callable[[], float | None] = _busy_seconds,
        own: Callable[[], float] = _own_seconds,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._busy, self._own, self._clock = busy, own, clock
        self._figure: float | None = None
        self._last: tuple[float, float, float] | None = self._read()

    def _read(self) -> tuple[float, float, float] | None:
        busy = self._busy()
        return None if busy is None else (self._clock(), busy, self._own())

    def __call__(self) -> float | None:
        """Other processes' un-niced CPU use since the last reading, in CPUs (None: unknown)."""
        if self._last is not None and self._clock() - self._last[0] < self.MIN_INTERVAL:
            return self._figure
        now = self._read()
        if now is None:
            return None
        if self._last is not None:
            elapsed = now[0] - self._last[0]
            others = (now[1] - self._last[1]) - (now[2] - self._last[2])
            self._figure = max(0.0, others / elapsed)
        self._last = now
        return self._figure


class ThreadTuner:
    """Chooses how many CPU threads evaluate each token, from how long tokens take.

    Why measure instead of a fixed rule: llama.cpp's threads meet at a barrier after every
    operation of a token (hundreds of them) and spin while they wait. On an idle machine
    all cores are fastest (2 threads on 2 cores: about 1.35x the tokens/s of 1). On cores
    busy with other work, a thread that is not scheduled stalls every barrier while its
    partner spins: measured on the same 2 cores under a load average of 12, 2 threads gave
    1.1 tokens/s and 1 thread 17-28; beside several niced jobs too (0.2-1.0 against 6-20).
    Neither count is right everywhere, and the load changes, so the tuner keeps measuring:

    * it starts with the fewest threads (which never stall) and probes more at once;
    * a probe runs `PROBE_TOKENS` fresh tokens at another count and ends at once when one
      of them takes 4x the current count's mean (so a stalling count costs one token); a
      probe that wins makes its count the current one;
    * the current count's recent tokens (median of the last `WINDOW`, so one slow token,
      such as the first after an idle spell, does not decide) are compared with fewer
      threads' last measured tokens, and it moves down when they were faster, or at once
      when its latest token took 4x theirs (a stall); it moves up only through a probe;
    * a probe that loses waits 4x longer before the next of its count (16x when it
      stalled), from `PROBE_EVERY` up to `MAX_PROBE_EVERY` tokens; one that wins resets it;
    * more threads than the current count are only probed while other processes'
      un-niced work (`OtherWork`) leaves a CPU for each (``others + count <= cpus + 0.5``).
      Niced work does not count there (the load average would): only measured token times
      say whether it slows the model.

    Args:
        candidates: thread counts to choose from (e.g. ``[2, 1]``); the largest is the CPUs.
        others: CPUs busy with other processes' un-niced work now, or None when unknown
            (then only measurements decide); default an `OtherWork` reading ``/proc/stat``.
    """

    WINDOW = 5
    PROBE_TOKENS = 3
    FIRST_PROBE = 2
    PROBE_EVERY = 64
    MAX_PROBE_EVERY = 1024

    def __init__(
        self, candidates: Sequence[int], *, others: Callable[[], float | None] | None = None
    ) -> None:
        ordered = sorted({max(1, int(n)) for n in candidates}, reverse=True)
        if not ordered:
            raise ValueError("ThreadTuner needs at least one candidate thread count")
        #: The thread counts it chooses from, largest first.
        self.candidates: list[int] = ordered
        self._others = others if others is not None else OtherWork()
        self._samples: dict[int, deque[float]] = {n: deque(maxlen=self.WINDOW) for n in ordered}
        self._tokens = 0
        self._every = dict.fromkeys(ordered, self.PROBE_EVERY)
        # The fewest first; then each larger count in turn, a few tokens apart.
        self._next_probe = {n: self.FIRST_PROBE * i for i, n in enumerate(reversed(ordered))}
        self._current = ordered[-1]
        self._probe: int | None = None
        self._probe_left = 0

    def estimate(self, threads: int) -> float | None:
        """Median seconds per token of the last `WINDOW` tokens at ``threads``, if any."""
        samples = self._samples[threads]
        return statistics.median(samples) if samples else None

    def _fits(self, threads: int, others: float) -> bool:
        """Whether ``others`` CPUs of other un-niced work leave a CPU for each of ``threads``."""
        return others + threads <= self.candidates[0] + 0.5

    def _room(self, threads: int) -> bool:
        """Whether other un-niced work leaves a CPU for each of ``threads`` (or is unknown)."""
        others = self._others()
        return others is None or self._fits(threads, others)

    def batch(self) -> int:
        """The count to evaluate a prompt (many tokens in one go) with.

        `best` once any token has been measured. Before that (a model's first prompts), the
        most threads that other processes' un-niced work is known to leave a CPU for each
        (`OtherWork`; 1 when that is not known yet): on this 2-core machine 2 threads
        evaluated a 12-token prompt in 0.049 s where 1 took 0.087.
        """
        if self._tokens == 0:
            others = self._others()
            if others is not None:
                fitting = [n for n in self.candidates if self._fits(n, others)]
                return max(fitting, default=self.candidates[-1])
        return self.best()

    def _switch(self, threads: int) -> None:
        left = self._current
        if threads != left:
            self._next_probe[left] = self._tokens + self._every[left]
            self._current = threads

    def best(self) -> int:
        """The count in use: the fastest by recent tokens of it and of fewer threads."""
        measured = [
            (est, n)
            for n in self.candidates
            if n <= self._current and (est := self.estimate(n)) is not None
        ]
        if measured:
            latest = self._samples[self._current]
            fewer = [(est, n) for est, n in measured if n < self._current]
            if fewer and latest and latest[-1] > 4 * min(fewer)[0]:
                self._switch(min(fewer)[1])  # a stall: leave at once
            else:
                self._switch(min(measured)[1])
        return self._current

    def choose(self) -> int:
        """The count to evaluate the next token with (the best, or one being probed)."""
        if self._probe is not None:
            return self._probe
        best = self.best()
        for n in reversed(self.candidates):
            if n != best and self._tokens >= self._next_probe[n]:
                if n > best and not self._room(n):
                    # Check again later, as if it had lost: the other work may end.
                    self._next_probe[n] = self._tokens + self._every[n]
                    continue
                self._probe, self._probe_left = n, self.PROBE_TOKENS
                self._samples[n].clear()  # the probe's own tokens decide, not old ones
                return n
        return best

    def record(self, threads: int, seconds: float) -> None:
        """Note that one token took ``seconds`` at ``threads``."""
        self._tokens += 1
        self._samples[threads].append(seconds)
        if threads != self._probe:
            return
        rival = self.estimate(self._current)
        stalled = rival is not None and seconds > 4 * rival
        self._probe_left -= 1
        if self._probe_left > 0 and not stalled:
            return
        self._probe = None
        mine = self.estimate(threads)
        if rival is None or (not stalled and mine is not None and mine < rival):
            self._every[threads] = self.PROBE_EVERY
            self._switch(threads)
            return
        self._every[threads] = min(
            self._every[threads] * (16 if stalled else 4), self.MAX_PROBE_EVERY
        )
        self._next_probe[threads] = self._tokens + self._every[threads]
        if threads > self._current:
            self._samples[threads].clear()  # never a way up without a new probe
