"""Compare: the same prompt at several settings, answers side by side (one column each)."""

from __future__ import annotations

import html
import numbers
import re
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets

from ...errors import InvalidParameterError
from .._textview import StreamView
from ._history import params_line, status_line
from ._runner import RunResult

_SAMPLES_RE = re.compile(r"[x×*]\s*(\d+)|(\d+)\s*[x×]|(\d+)\s*samples?", re.IGNORECASE)


def parse_compare(text: str) -> dict[str, Any]:
    """What the Compare box asks for: ``0, 0.5, 1`` gives temperatures, ``x3`` three samples.

    Returns ``{"temperatures": [...]}`` or ``{"samples": n}``; raises ValueError otherwise.
    """
    text = text.strip()
    match = _SAMPLES_RE.fullmatch(text)
    if match:
        return {"samples": int(next(g for g in match.groups() if g))}
    words = [w for w in re.split(r"[,;\s]+", text) if w]
    try:
        temperatures = [float(w) for w in words]
    except ValueError:
        temperatures = []
    if not temperatures:
        raise ValueError(
            f"Compare: {text!r} is neither temperatures (like 0, 0.5, 1) nor a number of "
            "samples (like x3)."
        )
    return {"temperatures": temperatures}


def plan(
    settings: dict[str, Any],
    params: dict[str, Any],
    temperatures: Sequence[float] | None,
    samples: int | None,
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """``(title, request params, settings record)`` for each column; raises on bad values."""
    if (temperatures is None) == (samples is None):
        raise ValueError("compare() takes either temperatures=[...] or samples=N")
    if temperatures is not None:
        if not len(temperatures):
            raise ValueError("compare() needs at least one temperature")
        columns: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        for t in temperatures:
            if isinstance(t, bool) or not isinstance(t, numbers.Real) or not 0 <= t <= 1:
                raise InvalidParameterError("temperature", t, "a number from 0 to 1")
            columns.append(
                (
                    f"temperature {t:g}",
                    {**params, "temperature": float(t)},
                    {**settings, "temperature": float(t)},
                )
            )
        return columns
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise InvalidParameterError("samples", samples, "an integer >= 1")
    return [(f"sample {i + 1} of {samples}", params, settings) for i in range(samples)]


class Column:
    """One answer of a compare: a title with its parameters, the streamed text, a status."""

    def __init__(self, title: str, settings: dict[str, Any]) -> None:
        #: The column's label (``compare 2 · temperature 0.5``).
        self.title = title
        self.settings = dict(settings)
        self.status = "waiting"
        self.error: str | None = None
        self.view = StreamView(max_height="20em")
        self.head = widgets.HTML(
            f"<b>{html.escape(title)}</b><br><small>{html.escape(params_line(settings))}</small>"
        )
        self.foot = widgets.HTML("<small>waiting</small>")
        self.box = widgets.VBox(
            [self.head, self.view.box, self.foot], layout=widgets.Layout(min_width="0")
        )

    def show_progress(self, chars: int, elapsed: float) -> None:
        """The live status while this column streams."""
        self._foot(status_line("running", chars=chars, elapsed=elapsed))

    def show_result(self, result: RunResult) -> None:
        """The final status (and the error, if any)."""
        self._foot(result_status(result), result.error)

    def show_skipped(self) -> None:
        """Stop came before this column's turn."""
        self._foot("not run (stopped)")

    def to_state(self) -> dict[str, Any]:
        """The column as JSON-safe data (for the panel's record)."""
        return {
            "title": self.title,
            "settings": self.settings,
            "text": self.view.text,
            "status": self.status,
            "error": self.error,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Show a saved column's text and status (`to_state`)."""
        self.view.set_text(str(state.get("text") or ""))
        self._foot(str(state.get("status") or ""), state.get("error"))

    def _foot(self, text: str, error: str | None = None) -> None:
        self.status, self.error = text, error
        note = (
            f'<br><span style="color:var(--jp-error-color1,#c62828)">{html.escape(error)}</span>'
            if error
            else ""
        )
        self.foot.value = f"<small>{html.escape(text)}{note}</small>"

    def close(self) -> None:
        """Close the column's widgets."""
        self.view.close()
        for w in (self.head, self.foot, self.box):
            w.close()


class CompareGrid:
    """The columns of the last compare, in a grid that is hidden until the first compare."""

    def __init__(self) -> None:
        self.columns: list[Column] = []
        self.box = widgets.GridBox(
            [], layout=widgets.Layout(display="none", width="100%", grid_gap="8px")
        )

    def reset(
        self, columns: list[tuple[str, dict[str, Any], dict[str, Any]]], group: int | None = None
    ) -> list[Column]:
        """Replace the columns by fresh ones for ``columns`` (from `plan`).

        With ``group``, each title starts with ``compare N ·`` so every answer says where it
        comes from.
        """
        old = self.columns
        prefix = f"compare {group} · " if group is not None else ""
        self.columns = [
            Column(title if title.startswith("compare ") else prefix + title, settings)
            for title, _, settings in columns
        ]
        self.box.children = [c.box for c in self.columns]
        # Side by side while each column gets 12em; narrower outputs wrap them onto rows.
        self.box.layout.grid_template_columns = (
            "repeat(auto-fit, minmax(min(12em, 100%), 1fr))" if len(columns) > 1 else "1fr"
        )
        self.box.layout.display = ""
        for column in old:
            column.close()
        return self.columns

    def close(self) -> None:
        """Close every column and the grid."""
        for column in self.columns:
            column.close()
        self.box.close()


def result_status(result: RunResult) -> str:
    """The status line of a finished request."""
    received = result.completion
    return status_line(
        result.outcome,
        stop_reason=received.stop_reason,
        chars=len(result.text),
        time_to_first_token=received.time_to_first_token,
        elapsed=received.elapsed,
        usage=received.usage,
    )
