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

How the figures are defined (on the samples of one setting that finished, ``outcome ==
"done"``; stopped and failed samples are kept in `SpreadResult.samples` and the frame but
not counted):

* **answers**: the distinct texts with their counts, most frequent first (ties in the order
  first drawn). **normalised answers**: the same after `normalize` (whitespace runs collapsed
  to one space, ends stripped, Unicode canonical caseless match), so "Blue." and " blue."
  count as one.
* **distinct**: distinct answers / answers drawn (1.0: every answer differs; 1/n: all the
  same); **distinct_normalized** the same on normalised answers.
* **distinct-1, distinct-2**: distinct-n as defined by Li et al. (2016), "A Diversity-Promoting
  Objective Function for Neural Conversation Models" (NAACL): the number of distinct word
  n-grams in the pooled answers divided by the total number of word n-grams in them. Words
  are the normalised answer split on whitespace; n-grams do not cross from one answer into
  the next. None when the answers hold no n-gram at all (every answer shorter than n words).
* **length**: min, median and max answer length, in tokens when the server reports them for
  every answer (the Messages API's ``usage.output_tokens``), else in characters.
* **stop reasons**: how many answers ended with each ``stop_reason``.
* **time to first token**: min, median and max seconds from sending the request to the first
  text.

Requests run concurrently (up to ``concurrency`` at once, default `DEFAULT_CONCURRENCY`)
except on the built-in model, which generates one answer at a time and would only queue them
(and so inflate their time to first token): there the default is 1. A kernel interrupt
(Jupyter's stop button, Ctrl-C) or `Sweep.stop` ends the sweep at once: the open streams are
closed, every sample already drawn is kept, and the result says it is partial.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import html
import importlib
import io
import logging
import math
import numbers
import statistics
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from . import prompt as prompts
from .errors import APIStatusError, CompleteError, InvalidParameterError, OneLineTraceback
from .settings import check_params

if TYPE_CHECKING:
    from .client import Client
    from .settings import CompletionSettings
    from .streaming import CompletionStream

log = logging.getLogger("jupyter_complete")

#: The parameters `spread` can sweep (one at a time), as the API names them.
SWEEPABLE = ("temperature", "top_p", "top_k")
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
#: Characters of an answer shown in the HTML table before it is cut with an ellipsis.
ANSWER_CHARS = 120
#: Most common answers listed per setting in the table (all are in the details below it).
TOP_ANSWERS = 3
#: The IPython variable that always holds the last `spread` result (like ``_completion``).
RESULT_VARIABLE = "_spread"
#: What to install for the chart.
PLOT_HINT = "pip install 'jupyter_complete[plot]'"

_WHY_PARTIAL = {
    "interrupted": "interrupted (kernel interrupt)",
    "stopped": "stopped",
    "error": "stopped by an error",
}


# -- the figures (pure functions, no I/O) --------------------------------------------------
def normalize(text: str) -> str:
    """``text`` with whitespace runs collapsed to one space, ends stripped, case folded.

    Case folding is Unicode's canonical caseless match (The Unicode Standard, 3.13, D145:
    NFD, fold, NFD), so "é" typed as one code point and as "e" + a combining accent count
    as one; the result is given in NFC.
    """
    folded = unicodedata.normalize("NFD", unicodedata.normalize("NFD", text).casefold())
    return unicodedata.normalize("NFC", " ".join(folded.split()))


def count_answers(texts: Iterable[str]) -> list[tuple[str, int]]:
    """``(text, count)`` for each distinct text, most frequent first, ties in first-seen order.

    >>> count_answers(["b", "a", "b"])
    [('b', 2), ('a', 1)]
    """
    counts: dict[str, int] = {}
    for text in texts:
        counts[text] = counts.get(text, 0) + 1
    # sorted() is stable and dicts keep insertion order, so ties keep first-seen order.
    return sorted(counts.items(), key=lambda item: -item[1])


def distinct_n(texts: Sequence[str], n: int) -> float | None:
    """distinct-n of ``texts`` (Li et al. 2016): distinct word n-grams / all word n-grams.

    Each text is `normalize`\\ d and split on whitespace; n-grams are taken within each text.
    None when the texts hold no n-gram (each is shorter than ``n`` words).

    >>> distinct_n(["a b a", "a b"], 1)   # words a b a a b: 2 distinct of 5
    0.4
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        words = normalize(text).split()
        for i in range(len(words) - n + 1):
            seen.add(tuple(words[i:i + n]))
            total += 1
    return None if total == 0 else len(seen) / total


def min_median_max(values: Sequence[float]) -> tuple[float, float, float] | None:
    """``(min, median, max)`` of ``values`` (the median of an even count is the mean of the
    middle two, as `statistics.median`); None when there are none."""
    if not values:
        return None
    return (min(values), statistics.median(values), max(values))


@dataclasses.dataclass
class Sample:
    """One drawn (or attempted) answer of a sweep."""

    #: Position of the swept value in `SpreadResult.values`.
    setting: int
    #: The swept parameter's value for this sample.
    value: float
    #: 0-based index of the sample within its setting.
    index: int
    #: The text received (all of it, also when stopped or failed part-way).
    text: str
    #: ``"done"`` (the server ended it), ``"stopped"`` (the sweep was stopped while it
    #: streamed) or ``"error"``.
    outcome: str
    stop_reason: str | None = None
    #: ``ErrorClass: message`` when ``outcome == "error"``.
    error: str | None = None
    #: Output tokens when the server reports them (the Messages API does), else None.
    output_tokens: int | None = None
    #: Seconds from sending the request to the first text (None if no text came).
    time_to_first_token: float | None = None
    #: Seconds from sending the request to the end of the answer.
    elapsed: float | None = None
    #: Seconds from the start of the sweep to sending this request.
    started: float = 0.0
    #: The model the server reported.
    model: str | None = None
    request_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The sample as a JSON-safe dict."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class SettingStats:
    """The figures for one value of the swept parameter (see the module docstring)."""

    #: The swept parameter's name and this value of it.
    parameter: str
    value: float
    #: Samples asked for, finished (``done``), stopped part-way, failed.
    requested: int
    drawn: int
    stopped: int
    failed: int
    #: ``(text, count)``, most frequent first.
    answers: list[tuple[str, int]]
    #: ``(normalised text, count)``, most frequent first.
    normalized_answers: list[tuple[str, int]]
    #: distinct answers / drawn (None when nothing was drawn).
    distinct: float | None
    distinct_normalized: float | None
    distinct_1: float | None
    distinct_2: float | None
    #: ``"tokens"`` or ``"chars"``.
    length_unit: str
    #: ``(min, median, max)`` answer length in `length_unit` (None when nothing was drawn).
    length: tuple[float, float, float] | None
    #: ``stop_reason`` -> count.
    stop_reasons: dict[str, int]
    #: ``(min, median, max)`` seconds to the first text.
    time_to_first_token: tuple[float, float, float] | None


def setting_stats(
    parameter: str, value: float, requested: int, samples: Sequence[Sample],
    length_unit: str | None = None,
) -> SettingStats:
    """The figures of one setting from its samples (any order; only ``done`` ones count).

    ``length_unit`` None picks tokens when every counted sample has ``output_tokens``.
    """
    done = [s for s in samples if s.outcome == "done"]
    texts = [s.text for s in done]
    if length_unit is None:
        length_unit = _length_unit(done)
    lengths: list[float] = [
        float(s.output_tokens if length_unit == "tokens" and s.output_tokens is not None
              else len(s.text))
        for s in done
    ]
    answers = count_answers(texts)
    normalized = count_answers(normalize(t) for t in texts)
    reasons = count_answers(s.stop_reason or "none" for s in done)
    ttfts = [s.time_to_first_token for s in done if s.time_to_first_token is not None]
    return SettingStats(
        parameter=parameter, value=value, requested=requested, drawn=len(done),
        stopped=sum(s.outcome == "stopped" for s in samples),
        failed=sum(s.outcome == "error" for s in samples),
        answers=answers, normalized_answers=normalized,
        distinct=len(answers) / len(done) if done else None,
        distinct_normalized=len(normalized) / len(done) if done else None,
        distinct_1=distinct_n(texts, 1), distinct_2=distinct_n(texts, 2),
        length_unit=length_unit, length=min_median_max(lengths),
        stop_reasons=dict(reasons), time_to_first_token=min_median_max(ttfts),
    )


def _length_unit(samples: Sequence[Sample]) -> str:
    done = [s for s in samples if s.outcome == "done"]
    return "tokens" if done and all(s.output_tokens is not None for s in done) else "chars"


# -- the result ----------------------------------------------------------------------------
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
        """``"tokens"`` if the server reported token counts for every answer, else
        ``"chars"`` (one unit for the whole result, so settings compare)."""
        return _length_unit(self.samples)

    @property
    def stats(self) -> list[SettingStats]:
        """The figures of each setting, in the order of `values`."""
        unit = self.length_unit
        by_setting: dict[int, list[Sample]] = collections.defaultdict(list)
        for s in self.samples:
            by_setting[s.setting].append(s)
        return [setting_stats(self.parameter, v, self.n, by_setting[i], unit)
                for i, v in enumerate(self.values)]

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
        rows = [{
            self.parameter: s.value, "setting": s.setting, "sample": s.index, "text": s.text,
            "outcome": s.outcome, "stop_reason": s.stop_reason, "error": s.error,
            "chars": len(s.text), "output_tokens": s.output_tokens,
            "time_to_first_token": s.time_to_first_token, "elapsed": s.elapsed,
            "started": s.started, "model": s.model, "request_id": s.request_id,
        } for s in self.samples]
        columns = [self.parameter, "setting", "sample", "text", "outcome", "stop_reason",
                   "error", "chars", "output_tokens", "time_to_first_token", "elapsed",
                   "started", "model", "request_id"]
        return pd.DataFrame(rows, columns=columns)

    def figure(self) -> Any:
        """The chart as a `matplotlib.figure.Figure`: diversity and answer length against
        the swept value. Drawn without pyplot (no GUI backend, no global state).

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
            "prompt": self.prompt, "wire_prompt": self.wire_prompt,
            "parameter": self.parameter, "values": list(self.values),
            "n": self.n, "params": dict(self.params), "concurrency": self.concurrency,
            "elapsed": self.elapsed, "stopped_by": self.stopped_by, "error": self.error,
            "partial": self.partial, "samples": [s.to_dict() for s in self.samples],
            "stats": [dataclasses.asdict(st) for st in self.stats],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpreadResult:
        """A result from `to_dict`'s data (e.g. a saved panel record); raises ValueError
        for data that is not one."""
        try:
            samples = [Sample(**s) for s in data["samples"]]
            return cls(
                prompt=str(data["prompt"]), wire_prompt=str(data.get("wire_prompt", "")),
                parameter=str(data["parameter"]), values=list(data["values"]),
                n=int(data["n"]), params=dict(data.get("params") or {}), samples=samples,
                concurrency=int(data.get("concurrency") or 1),
                elapsed=float(data.get("elapsed") or 0.0), stopped_by=data.get("stopped_by"),
                error=data.get("error"),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a spread result ({type(err).__name__}: {err})") from None

    def summary_line(self) -> str:
        """``temperature 0.2, 0.6, 1 · 5 samples each · 15 drawn in 9.3 s`` (and why partial)."""
        total = self.n * len(self.values)
        line = (f"{self.parameter} {', '.join(_num(v) for v in self.values)} · "
                f"{self.n} sample{'s' if self.n != 1 else ''} each · {self.drawn} of {total} "
                f"drawn in {self.elapsed:.1f} s")
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
            length = ("–" if st.length is None
                      else f"{_num(st.length[0])}/{_num(st.length[1])}/{_num(st.length[2])}")
            lines.append(
                f"  {self.parameter} {_num(st.value)}: {st.drawn} drawn, "
                f"{len(st.answers)} distinct ({len(st.normalized_answers)} normalised), "
                f"distinct-1 {_ratio(st.distinct_1)}, distinct-2 {_ratio(st.distinct_2)}, "
                f"{st.length_unit} min/median/max {length}"
            )
        return "\n".join(lines)


# -- the chart and the table ---------------------------------------------------------------
def draw_chart(parameter: str, stats: Sequence[SettingStats]) -> Any:
    """A two-panel matplotlib Figure: diversity (left) and length (right) per value.

    Left: distinct answers / n (exact and normalised), distinct-1 and distinct-2, all in
    [0, 1]. Right: median answer length, with a bar from min to max. Settings with nothing
    drawn are left out.

    Raises:
        ImportError: matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(f"The chart needs matplotlib: {PLOT_HINT}") from err
    shown = [st for st in stats if st.drawn]
    xs = [st.value for st in shown]
    fig = Figure(figsize=(8.4, 3.0), layout="constrained")
    left, right = fig.subplots(1, 2)
    series = (
        ("distinct answers / n", "distinct", "o-"),
        ("same, normalised", "distinct_normalized", "s--"),
        ("distinct-1", "distinct_1", "^-"),
        ("distinct-2", "distinct_2", "v-"),
    )
    for label, attr, style in series:
        ys = [getattr(st, attr) for st in shown]
        left.plot(xs, [math.nan if y is None else y for y in ys], style, label=label,
                  markersize=4)
    left.set_ylim(-0.03, 1.05)
    left.set_xlabel(parameter)
    left.set_ylabel("diversity")
    left.set_title("How different the answers are", fontsize=10)
    left.legend(fontsize=7, loc="best")
    left.grid(alpha=0.3)
    unit = shown[0].length_unit if shown else "chars"
    med = [st.length[1] if st.length else math.nan for st in shown]
    low = [st.length[1] - st.length[0] if st.length else 0.0 for st in shown]
    high = [st.length[2] - st.length[1] if st.length else 0.0 for st in shown]
    right.errorbar(xs, med, yerr=[low, high], fmt="o-", capsize=4, markersize=4,
                   label="median (bar: min to max)")
    right.set_ylim(bottom=0)
    right.set_xlabel(parameter)
    right.set_ylabel("answer length (" + ("tokens" if unit == "tokens" else "characters")
                     + ")")
    right.set_title("How long the answers are", fontsize=10)
    right.legend(fontsize=7, loc="best")
    right.grid(alpha=0.3)
    if parameter == "top_k":
        for ax in (left, right):
            ax.xaxis.get_major_locator().set_params(integer=True)
    return fig


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
        shown = shown[:limit - 1] + "…"
    return html.escape(shown) if shown.strip() else "<i>(empty)</i>"


_CELL = "padding:2px 8px;text-align:left;vertical-align:top;border-bottom:1px solid #ddd"


def result_html(result: SpreadResult, *, chart: bool = True) -> str:
    """The HTML a notebook shows for ``result``: a summary line, the chart (a PNG ``data:``
    URI, or a note saying how to get one), the table of figures, and every answer in a
    collapsed list. Inline styles only, so it survives sanitisers (GitHub, nbviewer)."""
    parts = [f'<div class="jc-spread"><div style="margin:2px 0 6px 0"><b>spread</b> · '
             f"{html.escape(result.summary_line())}<br><small>{html.escape(_fixed(result))}"
             "</small></div>"]
    if result.partial:
        parts.append(
            '<div style="color:#b26a00;margin:4px 0"><b>Partial result</b>: the sweep was '
            f"{html.escape(_WHY_PARTIAL.get(result.stopped_by or '', 'stopped'))} after "
            f"{result.drawn} of {result.n * len(result.values)} samples; the figures below "
            "use the samples drawn.</div>")
    if result.error:
        parts.append(f'<div style="color:#c62828">{html.escape(result.error)}</div>')
    if chart:
        png = result.chart_png()
        if png is not None:
            data = base64.b64encode(png).decode("ascii")
            parts.append(
                f'<img src="data:image/png;base64,{data}" alt="diversity and answer length '
                f'against {html.escape(result.parameter)}" style="max-width:100%">')
        elif result.drawn:
            parts.append(f"<div><small>No chart: matplotlib is not installed ({PLOT_HINT})."
                         "</small></div>")
    parts.append(stats_table_html(result.parameter, result.stats))
    parts.append(_answers_html(result))
    parts.append("</div>")
    return "".join(parts)


def _fixed(result: SpreadResult) -> str:
    p = result.params
    bits = [f"model {result.model or 'server default'}",
            f"max_tokens {p.get('max_tokens_to_sample')}"]
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
    head = (parameter, "drawn", "distinct answers", "distinct-1", "distinct-2",
            f"length ({unit}) min · median · max", "stop reasons", "first token (median)",
            "most common answers")
    rows = ["<tr>" + "".join(f'<th style="{_CELL}">{html.escape(h)}</th>' for h in head)
            + "</tr>"]
    for st in stats:
        drawn = f"{st.drawn} of {st.requested}"
        if st.failed:
            drawn += f" ({st.failed} failed)"
        if st.stopped:
            drawn += f" ({st.stopped} stopped)"
        distinct = ("–" if st.distinct is None else
                    f"{len(st.answers)} ({_ratio(st.distinct)}); normalised "
                    f"{len(st.normalized_answers)} ({_ratio(st.distinct_normalized)})")
        length = ("–" if st.length is None else
                  " · ".join(_num(round(x, 1)) for x in st.length))
        reasons = ", ".join(f"{k} {v}" for k, v in st.stop_reasons.items()) or "–"
        common = "<br>".join(f"<b>{c}×</b> {_visible(t)}" for t, c in st.answers[:TOP_ANSWERS])
        cells = (_num(st.value), drawn, distinct, _ratio(st.distinct_1), _ratio(st.distinct_2),
                 length, reasons, _seconds(st.time_to_first_token))
        rows.append("<tr>" + "".join(f'<td style="{_CELL}">{html.escape(c)}</td>'
                                     for c in cells)
                    + f'<td style="{_CELL};min-width:16em">{common or "–"}</td></tr>')
    # In a box that scrolls sideways: a narrow output area never clips the answers.
    return ('<div style="overflow-x:auto;max-width:100%"><table style="border-collapse:'
            'collapse;font-size:12px;margin-top:4px">' + "".join(rows) + "</table></div>")


def _answers_html(result: SpreadResult) -> str:
    blocks = []
    for st in result.stats:
        items = "".join(f"<li><b>{c}×</b> {_visible(t, 2000)}</li>" for t, c in st.answers)
        blocks.append(f"<div><b>{html.escape(result.parameter)} {_num(st.value)}</b>"
                      f'<ul style="margin:2px 0">{items or "<li>none drawn</li>"}</ul></div>')
    return (f"<details><summary>every distinct answer ({result.drawn} samples)</summary>"
            f"{''.join(blocks)}</details>")


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
        self, client: Client, wire_prompt: str, parameter: str, values: Sequence[float],
        n: int, params: dict[str, Any], *, concurrency: int, prompt: str | None = None,
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
                finished=len(self._samples), total=self._total,
                failed=sum(s.outcome == "error" for s in self._samples),
                running=self._running, elapsed=end - self._started if self._started else 0.0,
                per_setting=tuple(per),
            )

    def result(self) -> SpreadResult:
        """The result so far (complete once `run` has returned)."""
        with self._cond:
            samples = sorted(self._samples, key=lambda s: (s.setting, s.index))
            end = self._ended if self._ended is not None else time.monotonic()
            return SpreadResult(
                prompt=self.prompt, wire_prompt=self.wire_prompt, parameter=self.parameter,
                values=list(self.values), n=self.n, params=dict(self.params),
                samples=samples, concurrency=self.concurrency,
                elapsed=end - self._started if self._started else 0.0,
                stopped_by=self._stopped_by, error=self._error,
            )

    # -- running -----------------------------------------------------------------------
    def run(
        self, on_progress: Callable[[Progress], None] | None = None,
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
            threading.Thread(target=self._work, args=(self.client.copy(),), daemon=True,
                             name=f"jupyter_complete-spread-{i}")
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
        self, workers: list[threading.Thread],
        on_progress: Callable[[Progress], None] | None, interval: float,
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
        return (self._stopped_by is not None and bool(self._connecting)
                and self._workers_left == len(self._connecting))

    def _abandon_connecting(self) -> list[Sample]:
        """(Under the lock) the requests still waiting for an answer, as stopped samples."""
        now = time.monotonic()
        samples = [
            Sample(setting=setting, value=self.values[setting], index=index, text="",
                   outcome="stopped", elapsed=now - sent, started=sent - self._started)
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
                stream = client.completions.create(prompt=self.wire_prompt, stream=True,
                                                   **params)
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
        snap = (stream.snapshot(interrupted=self.stopping) if stream is not None
                else getattr(error, "partial", None))
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
            setting=setting, value=value, index=index,
            text=snap.completion if snap is not None else "",
            outcome=outcome, stop_reason=snap.stop_reason if snap is not None else None,
            error=f"{type(error).__name__}: {error}" if outcome == "error" else None,
            output_tokens=(usage or {}).get("output_tokens"),
            time_to_first_token=snap.time_to_first_token if snap is not None else None,
            elapsed=(snap.elapsed if snap is not None and snap.elapsed is not None
                     else time.monotonic() - sent),
            started=sent - self._started, model=snap.model if snap is not None else None,
            request_id=snap.request_id if snap is not None else None,
        )


def _refused(error: BaseException | None) -> bool:
    """A 4xx other than 408/409/429: the request itself is wrong, retrying cannot help."""
    return (isinstance(error, APIStatusError) and error.status_code is not None
            and 400 <= error.status_code < 500 and error.status_code not in (408, 409, 429))


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
            f"the sweep was stopped; the {drawn:,} samples drawn are kept in {variable}.")


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
    parameter_values: dict[str, object], n: object, concurrency: object,
) -> tuple[str, list[float]]:
    """The swept parameter and its values; a one-line error for anything wrong.

    ``parameter_values`` maps each of `SWEEPABLE` to what the caller passed (None, a
    number, or a list of numbers).
    """
    swept = [name for name, v in parameter_values.items() if _swept(name, v)]
    if not swept:
        raise ValueError(
            "spread() sweeps one parameter: give a list of values for one of temperature, "
            "top_p or top_k (e.g. temperature=[0.2, 0.6, 1.0]).")
    if len(swept) > 1:
        raise ValueError(
            f"spread() sweeps one parameter at a time, but {' and '.join(swept)} are both "
            "lists: give one of them a single value.")
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
        raise ValueError(f"spread(): {n} samples x {len(values)} values is more than "
                         f"{MAX_SAMPLES:,} requests; lower n or the number of values.")
    if concurrency is not None and (
        isinstance(concurrency, bool) or not isinstance(concurrency, int)
        or not 1 <= concurrency <= MAX_CONCURRENCY
    ):
        raise InvalidParameterError("concurrency", concurrency,
                                    f"an integer from 1 to {MAX_CONCURRENCY}")
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
        self._out.write("\r" + f"spread: {result.summary_line()}".ljust(len(self._shown))
                        + "\n")
        self._out.flush()


class _WidgetProgress:
    """An ipywidgets progress bar with a line of counts and elapsed time; when the sweep
    ends it is replaced by a static line (so a saved notebook keeps no dead widget)."""

    def __init__(self, label: str) -> None:
        import ipywidgets as widgets
        from IPython.display import display

        self._label = label
        self._bar = widgets.IntProgress(value=0, min=0, max=1, bar_style="info",
                                        layout=widgets.Layout(width="16em"))
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
            self._handle.update(HTML(f"<small>spread · {html.escape(result.summary_line())}"
                                     "</small>"))
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
    default, or ``settings``'). The figures are defined in the module docstring
    (`jupyter_complete.sweep`).

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
        {"temperature": temperature, "top_p": top_p, "top_k": top_k}, n, concurrency)
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
    sweep = Sweep(client, wire, parameter, values, n, params, concurrency=concurrency,
                  prompt=prompt)
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
    "DEFAULT_CONCURRENCY", "SWEEPABLE", "Progress", "Sample", "SettingStats", "SpreadResult",
    "Sweep", "SweepInterrupted", "check_sweep", "count_answers", "distinct_n", "draw_chart",
    "is_builtin_model", "keep_in_ipython", "min_median_max", "normalize", "result_html",
    "setting_stats", "spread",
]
