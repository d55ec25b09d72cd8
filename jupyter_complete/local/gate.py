"""`Gate`: one generation at a time, a bounded first-come-first-served queue behind it.

A 135M model on two cores runs one generation at full speed; two at once would each run at
half speed and both answer late. So requests take turns, and when too many are already
waiting the server says so at once (529 overloaded_error) instead of letting them pile up.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Callable


class Gate:
    """Admit one holder at a time; at most ``max_queue`` others may wait their turn."""

    def __init__(self, max_queue: int = 8) -> None:
        if max_queue < 0:
            raise ValueError("max_queue must be >= 0")
        self.max_queue = max_queue
        self._cond = threading.Condition()
        self._busy = False
        self._waiting: collections.deque[object] = collections.deque()

    @property
    def busy(self) -> bool:
        """True while a holder has the gate."""
        with self._cond:
            return self._busy

    @property
    def waiting(self) -> int:
        """How many admitted requests are waiting their turn."""
        with self._cond:
            return len(self._waiting)

    def admit(self) -> object | None:
        """Join the queue: a ticket for `wait`, or None when the queue is full (overloaded)."""
        with self._cond:
            if self._busy and len(self._waiting) >= self.max_queue:
                return None
            ticket = object()
            self._waiting.append(ticket)
            return ticket

    def wait(
        self,
        ticket: object,
        cancelled: Callable[[], bool] | None = None,
        poll: float = 0.1,
    ) -> bool:
        """Block until it is ``ticket``'s turn and take the gate; True once held.

        ``cancelled`` is called about every ``poll`` seconds while waiting, outside the lock
        (it may do I/O, such as a keep-alive ping). When it returns True the ticket leaves
        the queue (a client that hung up gives up its place) and this returns False.
        """
        while True:
            with self._cond:
                if not self._busy and self._waiting[0] is ticket:
                    self._waiting.popleft()
                    self._busy = True
                    return True
                self._cond.wait(poll)
                if not self._busy and self._waiting[0] is ticket:
                    continue  # our turn came during the wait: take it above
            if cancelled is not None and cancelled():
                with self._cond:
                    self._waiting.remove(ticket)
                    self._cond.notify_all()
                return False

    def leave(self, ticket: object) -> None:
        """Give up a place in the queue without waiting (the request was abandoned)."""
        with self._cond:
            with contextlib.suppress(ValueError):
                self._waiting.remove(ticket)
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until no one holds the gate (or ``timeout`` seconds pass); True if idle."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._busy, timeout)

    def release(self) -> None:
        """Give the gate to the next ticket in line."""
        with self._cond:
            self._busy = False
            self._cond.notify_all()


__all__ = ["Gate"]
