"""`SpreadResult`: what a sweep drew, its figures per setting, a table and a chart.

Shown in a notebook as HTML with the chart embedded as a PNG, so a saved notebook keeps it.
The figures are defined in `jupyter_complete.spread_figures`, the chart is drawn by
`jupyter_complete.spread_chart`, and `jupyter_complete.sweep_runner` draws the samples.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import html
import importlib
import io
from collections.abc import Sequence
from typing import Any

from .spread_chart import PLOT_HINT, draw_chart
from .spread_figures import Sample, SettingStats, common_length_unit, setting_stats

#: The parameters `spread` can sweep (one at a time), as the API names them.
SWEEPABLE = ("temperature", "top_p", "top_k")
#: Characters of an answer shown in the HTML table before it is cut with an ellipsis.
ANSWER_CHARS = 120
#: Most common answers listed per setting in the table (all are in the details below it).
TOP_ANSWERS = 3

_WHY_PARTIAL = {
    "interrupted": "interrupted (kernel interrupt)",
    "stopped": "stopped",
    "error": "stopped by an error",
}


@dataclasses.dataclass
class SpreadResult:
    """What a sweep drew: every sample, the figures per setting, a table and a chart.

    Shown in a notebook as an HTML table with the chart embedded as a PNG (``data:`` URI), so
    a saved notebook, ``nbconvert --to html``, GitHub and nbviewer show it without a kernel.
    """

    #: The prompt as given, and as sent (Human/Assistant turns).
    prompt: str
    wire_prompt: str
    #: The swept parameter and its values, in the order given.
    parameter: str
    values: list[float]
    #: Samples asked for per value.
    n: int
    #: The fixed request parameters (wire names, e.g. ``max_tokens_to_sample``).
    params: dict[str, Any]
    #: Every sample drawn or attempted, by setting then index.
    samples: list[Sample]
    #: How many requests were allowed in flight at once.
    concurrency: int
    #: Seconds the sweep took.
    elapsed: float
    #: None if the sweep ran to its end; else ``"interrupted"`` (kernel interrupt),
    #: ``"stopped"`` (`Sweep.stop`, the panel's Stop) or ``"error"`` (a request was refused,
    #: e.g. a bad key, so the rest would have been too; see `error`).
    stopped_by: str | None = None
    #: The error that stopped the sweep, as ``ErrorClass: message``.
    error: str | None = None

    @property
    def partial(self) -> bool:
        """True when the sweep ended before every requested sample was drawn."""
        return self.stopped_by is not None and self.drawn < self.n * len(self.values)

    @property
    def drawn(self) -> int:
        """Samples that finished (``outcome == "done"``)."""
        return sum(s.outcome == "done" for s in self.samples)

    @property
    def model(self) -> str | None:
        """The model the server reported (the first one seen)."""
        return next((s.model for s in self.samples if s.model), self.params.get("model"))

    @property
    def length_unit(self) -> str:
        """``"tokens"`` if the server reported token counts for every answer, else ``"chars"``.

        One unit for the whole result, so settings compare.
        """
        return common_length_unit(self.samples)

    @property
    def stats(self) -> list[SettingStats]:
        """The figures of each setting, in the order of `values`."""
        unit = self.length_unit
        by_setting: dict[int, list[Sample]] = collections.defaultdict(list)
        for s in self.samples:
            by_setting[s.setting].append(s)
        return [
            setting_stats(self.parameter, v, self.n, by_setting[i], unit)
            for i, v in enumerate(self.values)
        ]

    def frame(self) -> Any:
        """Every sample as a pandas DataFrame, one row each (needs pandas).

        Columns: the parameter's name (its value), ``setting``, ``sample``, ``text``,
        ``outcome``, ``stop_reason``, ``error``, ``chars``, ``output_tokens``,
        ``time_to_first_token``, ``elapsed``, ``started`` (seconds), ``model``,
        ``request_id``.

        Raises:
            ImportError: pandas is not installed (`samples` has the same data).
        """
        try:
            pd = importlib.import_module("pandas")
        except ImportError as err:
            raise ImportError(
                "SpreadResult.frame() needs pandas (pip install pandas); "
                "result.samples holds the same data as a list."
            ) from err
        rows = [
            {
                self.parameter: s.value,
                "setting": s.setting,
                "sample": s.index,
                "text": s.text,
                "outcome": s.outcome,
                "stop_reason": s.stop_reason,
                "error": s.error,
                "chars": len(s.text),
                "output_tokens": s.output_tokens,
                "time_to_first_token": s.time_to_first_token,
                "elapsed": s.elapsed,
                "started": s.started,
                "model": s.model,
                "request_id": s.request_id,
            }
            for s in self.samples
        ]
        columns = [
            self.parameter,
            "setting",
            "sample",
            "text",
            "outcome",
            "stop_reason",
            "error",
            "chars",
            "output_tokens",
            "time_to_first_token",
            "elapsed",
            "started",
            "model",
            "request_id",
        ]
        return pd.DataFrame(rows, columns=columns)

    def figure(self) -> Any:
        """The chart as a `matplotlib.figure.Figure`.

        Diversity and answer length against the swept value. Drawn without pyplot (no GUI
        backend, no global state).

        Raises:
            ImportError: matplotlib is not installed (``pip install 'jupyter_complete[plot]'``).
        """
        return draw_chart(self.parameter, self.stats)

    def chart_png(self) -> bytes | None:
        """The chart as PNG bytes, or None without matplotlib (or with nothing drawn)."""
        if not self.drawn:
            return None
        try:
            fig = self.figure()
        except ImportError:
            return None
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=96)
        return buf.getvalue()

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-safe data (the figures included, under ``stats``)."""
        return {
            "prompt": self.prompt,
            "wire_prompt": self.wire_prompt,
            "parameter": self.parameter,
            "values": list(self.values),
            "n": self.n,
            "params": dict(self.params),
            "concurrency": self.concurrency,
            "elapsed": self.elapsed,
            "stopped_by": self.stopped_by,
            "error": self.error,
            "partial": self.partial,
            "samples": [s.to_dict() for s in self.samples],
            "stats": [dataclasses.asdict(st) for st in self.stats],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpreadResult:
        """A result from `to_dict`'s data (e.g. a saved panel record).

        Raises:
            ValueError: the data is not one.
        """
        try:
            samples = [Sample(**s) for s in data["samples"]]
            return cls(
                prompt=str(data["prompt"]),
                wire_prompt=str(data.get("wire_prompt", "")),
                parameter=str(data["parameter"]),
                values=list(data["values"]),
                n=int(data["n"]),
                params=dict(data.get("params") or {}),
                samples=samples,
                concurrency=int(data.get("concurrency") or 1),
                elapsed=float(data.get("elapsed") or 0.0),
                stopped_by=data.get("stopped_by"),
                error=data.get("error"),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a spread result ({type(err).__name__}: {err})") from None

    def summary_line(self) -> str:
        """``temperature 0.2, 0.6, 1 · 5 samples each · 15 drawn in 9.3 s`` (and why partial)."""
        total = self.n * len(self.values)
        line = (
            f"{self.parameter} {', '.join(_num(v) for v in self.values)} · "
            f"{self.n} sample{'s' if self.n != 1 else ''} each · {self.drawn} of {total} "
            f"drawn in {self.elapsed:.1f} s"
        )
        failed = sum(s.outcome == "error" for s in self.samples)
        if failed:
            line += f" · {failed} failed"
        if self.partial:
            line += f" · partial: {_WHY_PARTIAL.get(self.stopped_by or '', 'stopped')}"
        return line

    def _repr_html_(self) -> str:
        return result_html(self)

    def __repr__(self) -> str:
        lines = [f"<SpreadResult {self.summary_line()}>"]
        for st in self.stats:
            length = (
                "–"
                if st.length is None
                else f"{_num(st.length[0])}/{_num(st.length[1])}/{_num(st.length[2])}"
            )
            lines.append(
                f"  {self.parameter} {_num(st.value)}: {st.drawn} drawn, "
                f"{len(st.answers)} distinct ({len(st.normalized_answers)} normalised), "
                f"distinct-1 {_ratio(st.distinct_1)}, distinct-2 {_ratio(st.distinct_2)}, "
                f"{st.length_unit} min/median/max {length}"
            )
        return "\n".join(lines)


# -- the table --------------------------------------------------------------------------------
def _num(value: float) -> str:
    return f"{value:g}"


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _seconds(triple: tuple[float, float, float] | None) -> str:
    return "–" if triple is None else f"{triple[1]:.2f} s"


def _visible(text: str, limit: int = ANSWER_CHARS) -> str:
    """An answer for a table cell: newlines shown as ↵, cut at ``limit``, HTML-escaped."""
    shown = text.replace("\r\n", "\n").replace("\n", "↵ ")
    if len(shown) > limit:
        shown = shown[: limit - 1] + "…"
    return html.escape(shown) if shown.strip() else "<i>(empty)</i>"


_CELL = "padding:2px 8px;text-align:left;vertical-align:top;border-bottom:1px solid #ddd"


def result_html(result: SpreadResult, *, chart: bool = True) -> str:
    """The HTML a notebook shows for ``result``.

    A summary line, the chart (a PNG ``data:`` URI, or a note saying how to get one), the
    table of figures, and every answer in a collapsed list. Inline styles only, so it
    survives sanitisers (GitHub, nbviewer).
    """
    parts = [
        f'<div class="jc-spread"><div style="margin:2px 0 6px 0"><b>spread</b> · '
        f"{html.escape(result.summary_line())}<br><small>{html.escape(_fixed(result))}"
        "</small></div>"
    ]
    if result.partial:
        parts.append(
            '<div style="color:#b26a00;margin:4px 0"><b>Partial result</b>: the sweep was '
            f"{html.escape(_WHY_PARTIAL.get(result.stopped_by or '', 'stopped'))} after "
            f"{result.drawn} of {result.n * len(result.values)} samples; the figures below "
            "use the samples drawn.</div>"
        )
    if result.error:
        parts.append(f'<div style="color:#c62828">{html.escape(result.error)}</div>')
    if chart:
        png = result.chart_png()
        if png is not None:
            data = base64.b64encode(png).decode("ascii")
            parts.append(
                f'<img src="data:image/png;base64,{data}" alt="diversity and answer length '
                f'against {html.escape(result.parameter)}" style="max-width:100%">'
            )
        elif result.drawn:
            parts.append(
                f"<div><small>No chart: matplotlib is not installed ({PLOT_HINT}).</small></div>"
            )
    parts.append(stats_table_html(result.parameter, result.stats))
    parts.append(_answers_html(result))
    parts.append("</div>")
    return "".join(parts)


def _fixed(result: SpreadResult) -> str:
    p = result.params
    bits = [
        f"model {result.model or 'server default'}",
        f"max_tokens {p.get('max_tokens_to_sample')}",
    ]
    for name in SWEEPABLE:
        if name != result.parameter:
            bits.append(f"{name} {_num(p[name]) if p.get(name) is not None else 'unset'}")
    if p.get("stop_sequences"):
        bits.append(f"stop {p['stop_sequences']!r}")
    bits.append(f"{result.concurrency} at a time")
    return " · ".join(bits)


def stats_table_html(parameter: str, stats: Sequence[SettingStats]) -> str:
    """The figures as an HTML table, one row per setting."""
    unit = stats[0].length_unit if stats else "chars"
    head = (
        parameter,
        "drawn",
        "distinct answers",
        "distinct-1",
        "distinct-2",
        f"length ({unit}) min · median · max",
        "stop reasons",
        "first token (median)",
        "most common answers",
    )
    rows = ["<tr>" + "".join(f'<th style="{_CELL}">{html.escape(h)}</th>' for h in head) + "</tr>"]
    for st in stats:
        drawn = f"{st.drawn} of {st.requested}"
        if st.failed:
            drawn += f" ({st.failed} failed)"
        if st.stopped:
            drawn += f" ({st.stopped} stopped)"
        distinct = (
            "–"
            if st.distinct is None
            else f"{len(st.answers)} ({_ratio(st.distinct)}); normalised "
            f"{len(st.normalized_answers)} ({_ratio(st.distinct_normalized)})"
        )
        length = "–" if st.length is None else " · ".join(_num(round(x, 1)) for x in st.length)
        reasons = ", ".join(f"{k} {v}" for k, v in st.stop_reasons.items()) or "–"
        common = "<br>".join(f"<b>{c}×</b> {_visible(t)}" for t, c in st.answers[:TOP_ANSWERS])
        cells = (
            _num(st.value),
            drawn,
            distinct,
            _ratio(st.distinct_1),
            _ratio(st.distinct_2),
            length,
            reasons,
            _seconds(st.time_to_first_token),
        )
        rows.append(
            "<tr>"
            + "".join(f'<td style="{_CELL}">{html.escape(c)}</td>' for c in cells)
            + f'<td style="{_CELL};min-width:16em">{common or "–"}</td></tr>'
        )
    # In a box that scrolls sideways: a narrow output area never clips the answers.
    return (
        '<div style="overflow-x:auto;max-width:100%"><table style="border-collapse:'
        'collapse;font-size:12px;margin-top:4px">' + "".join(rows) + "</table></div>"
    )


def _answers_html(result: SpreadResult) -> str:
    blocks = []
    for st in result.stats:
        items = "".join(f"<li><b>{c}×</b> {_visible(t, 2000)}</li>" for t, c in st.answers)
        blocks.append(
            f"<div><b>{html.escape(result.parameter)} {_num(st.value)}</b>"
            f'<ul style="margin:2px 0">{items or "<li>none drawn</li>"}</ul></div>'
        )
    return (
        f"<details><summary>every distinct answer ({result.drawn} samples)</summary>"
        f"{''.join(blocks)}</details>"
    )


__all__ = [
    "ANSWER_CHARS",
    "PLOT_HINT",
    "SWEEPABLE",
    "TOP_ANSWERS",
    "SpreadResult",
    "draw_chart",
    "result_html",
    "stats_table_html",
]
