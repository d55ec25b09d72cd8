"""Progress displays for a running sweep: a widget bar in a Jupyter kernel, a line elsewhere.

Both are fed `jupyter_complete.sweep_runner.Progress` snapshots and throttle themselves, so a
sweep can report after every sample without flooding the front end.
"""

from __future__ import annotations

import html
import sys
import time
from typing import Any

from .errors import InvalidParameterError
from .spread_result import SpreadResult
from .sweep_runner import Progress


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
    """An ipywidgets progress bar with a line of counts and elapsed time.

    When the sweep ends it is replaced by a static line (so a saved notebook keeps no dead
    widget).
    """

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


def in_kernel() -> bool:
    """True inside a Jupyter kernel (an IPython shell with a ``kernel``), not a terminal."""
    ipython_mod = sys.modules.get("IPython")
    if ipython_mod is None:
        return False
    ip = ipython_mod.get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


#: A progress display: ``update(Progress)`` while the sweep runs, then ``finish(result)`` (or
#: ``close()`` when it raised).
Display = _TextProgress | _WidgetProgress


def make_progress(kind: bool | str, label: str) -> Display | None:
    """The progress display for ``kind``.

    True picks a widget in a Jupyter kernel and a text line elsewhere; ``"widget"``,
    ``"text"``; False for none.
    """
    if kind is False:
        return None
    if kind not in (True, "widget", "text"):
        raise InvalidParameterError("progress", kind, 'True, False, "widget" or "text"')
    if kind == "text" or (kind is True and not in_kernel()):
        return _TextProgress(label)
    return _WidgetProgress(label)


__all__ = ["Display", "in_kernel", "make_progress"]
