"""`FirstTokens`: counted first tokens beside the model's exact probabilities, and its chart.

What `jupyter_complete.first_tokens` returns and redraws while samples arrive. The chart is
HTML with inline styles only (it survives saving and sanitisers): one row per token text, the
model's probability as a pale bar, the observed frequency as a dark bar.
"""

from __future__ import annotations

import dataclasses
import html
import importlib
from typing import Any

from .goodness_of_fit import Fit, chi_square_fit, total_variation
from .spread_result import SpreadResult
from .widgets._explorer_html import pct, show_token

#: The label of the model ending its turn (its end-of-turn token; an empty completion with
#: ``stop_reason`` ``"stop_sequence"`` on the wire).
END_OF_TURN = "<end of turn>"
#: Rows of the chart: the likeliest first tokens.
DEFAULT_TOP = 12


@dataclasses.dataclass
class FirstTokens:
    """Counted first tokens beside the model's probabilities (`jupyter_complete.settling`)."""

    prompt: str
    wire_prompt: str
    temperature: float
    top_k: int | None
    top_p: float | None
    #: Samples asked for.
    n: int
    #: Exact probability of each first-token text (`exact_first_tokens`).
    probabilities: dict[str, float]
    #: Observed first-token text -> count (finished samples only).
    counts: dict[str, int]
    #: Chart rows.
    top: int = DEFAULT_TOP
    #: The samples as a sweep result (``None`` until the run ends).
    sweep: SpreadResult | None = None
    #: Seconds the run has taken.
    elapsed: float = 0.0
    #: The execution count of the cell whose output holds the live chart (so showing the
    #: result as that cell's value does not draw the chart a second time).
    live_cell: int | None = dataclasses.field(default=None, repr=False, compare=False)
    _ranked: list[tuple[str, float]] | None = dataclasses.field(
        default=None, repr=False, compare=False
    )

    @property
    def drawn(self) -> int:
        """Samples counted."""
        return sum(self.counts.values())

    @property
    def partial(self) -> bool:
        """True when the run was stopped before drawing `n` samples."""
        return self.sweep is not None and self.sweep.partial

    @property
    def total_variation(self) -> float | None:
        """`total_variation` of the counts against the probabilities."""
        return total_variation(self.counts, self.probabilities)

    @property
    def ranked(self) -> list[tuple[str, float]]:
        """`probabilities` sorted, likeliest first (computed once)."""
        if self._ranked is None:
            self._ranked = sorted(self.probabilities.items(), key=lambda item: -item[1])
        return self._ranked

    def fit(self) -> Fit | None:
        """`chi_square_fit` of the counts against the probabilities."""
        return chi_square_fit(self.counts, self.probabilities, self.ranked)

    def rows(self) -> list[tuple[str, float, int]]:
        """Rows of ``(text, probability, count)``.

        The `top` likeliest texts, then any text observed outside them (most counted first),
        then ``("all others", rest, rest count)``.
        """
        ranked = self.ranked[: self.top]
        shown = {t for t, _ in ranked}
        rows = [(t, p, self.counts.get(t, 0)) for t, p in ranked]
        extra = sorted(
            ((t, c) for t, c in self.counts.items() if t not in shown and c),
            key=lambda item: -item[1],
        )[:3]
        rows += [(t, self.probabilities.get(t, 0.0), c) for t, c in extra]
        shown |= {t for t, _ in extra}
        rest_p = max(0.0, 1.0 - sum(self.probabilities.get(t, 0.0) for t in shown))
        rest_c = sum(c for t, c in self.counts.items() if t not in shown)
        if rest_p > 1e-9 or rest_c:
            rows.append(("all others", rest_p, rest_c))
        return rows

    def frame(self) -> Any:
        """Every text with a probability or a count, as a pandas DataFrame.

        Columns ``text``, ``probability``, ``count``, ``frequency`` (needs pandas).
        """
        try:
            pd = importlib.import_module("pandas")
        except ImportError as err:
            raise ImportError(
                "FirstTokens.frame() needs pandas (pip install pandas); "
                ".counts and .probabilities hold the same data."
            ) from err
        n = self.drawn or 1
        labels = sorted(
            set(self.counts) | set(self.probabilities),
            key=lambda t: (-self.probabilities.get(t, 0.0), -self.counts.get(t, 0)),
        )
        return pd.DataFrame(
            [
                {
                    "text": t,
                    "probability": self.probabilities.get(t, 0.0),
                    "count": self.counts.get(t, 0),
                    "frequency": self.counts.get(t, 0) / n,
                }
                for t in labels
            ],
            columns=["text", "probability", "count", "frequency"],
        )

    def settings_line(self) -> str:
        """The sampling settings as one line: ``temperature 1 · top_k off · top_p 0.9``."""
        k = "top_k off" if not self.top_k else f"top_k {self.top_k}"
        p = "top_p off" if self.top_p is None else f"top_p {self.top_p:g}"
        return f"temperature {self.temperature:g} · {k} · {p}"

    def _repr_html_(self) -> str:
        return chart_html(self)

    def _ipython_display_(self) -> None:
        from IPython import get_ipython
        from IPython.display import HTML, display

        ip = get_ipython()
        if self.live_cell is not None and ip is not None and ip.execution_count == self.live_cell:
            return  # this cell already shows the chart, drawn live and final
        display(HTML(chart_html(self)))

    def __repr__(self) -> str:
        tv = self.total_variation
        return (
            f"<FirstTokens {self.drawn} of {self.n} samples · {self.settings_line()} · "
            f"total variation {'–' if tv is None else f'{tv:.3f}'}>"
        )


_TD = "padding:1px 6px;text-align:right;white-space:nowrap"


def _show(text: str) -> str:
    if text in (END_OF_TURN, "all others"):
        return f"<i>{html.escape(text)}</i>"
    return f"<code>{show_token(text)}</code>"


def _bar(p: float, f: float | None) -> str:
    """Two bars in one cell.

    The model's probability (pale, full height) and the observed frequency (dark, half
    height, on top).
    """
    dark = (
        ""
        if f is None
        else (
            f'<div style="position:absolute;left:0;top:25%;height:50%;width:{100 * f:.1f}%;'
            'background:#2171b5"></div>'
        )
    )
    return (
        '<div style="position:relative;width:240px;height:14px;background:#f0f0f0">'
        f'<div style="position:absolute;left:0;top:0;height:100%;width:{100 * p:.1f}%;'
        f'background:#c6dbef"></div>{dark}</div>'
    )


def chart_html(ft: FirstTokens) -> str:
    """The chart as HTML with inline styles (it survives saving and sanitisers).

    One row per text, the model's probability as a pale bar, the observed frequency as a
    dark bar.
    """
    n = ft.drawn
    head = (
        f"<b>first tokens</b> · {html.escape(ft.settings_line())} · <b>{n}</b> of {ft.n} "
        f"samples · {ft.elapsed:.1f} s"
    )
    if ft.partial:
        head += " · <b>partial</b> (stopped)"
    tv = ft.total_variation
    fit = ft.fit() if n else None
    stats = []
    if tv is not None:
        stats.append(f"total variation distance <b>{tv:.3f}</b>")
    if fit is not None:
        stats.append(f"chi-square p = {fit.p_value:.3g} ({fit.dof} dof)")
    rows = [
        f'<tr><th style="{_TD};text-align:left">first token</th>'
        f'<th style="{_TD}"></th><th style="{_TD}">model</th>'
        f'<th style="{_TD}">observed</th><th style="{_TD}">count</th></tr>'
    ]
    for text, p, c in ft.rows():
        f = c / n if n else None
        rows.append(
            f'<tr><td style="{_TD};text-align:left">{_show(text)}</td>'
            f'<td style="{_TD}">{_bar(p, f)}</td><td style="{_TD}">{pct(p)}</td>'
            f'<td style="{_TD}">{"–" if f is None else pct(f)}</td>'
            f'<td style="{_TD}">{c}</td></tr>'
        )
    legend = (
        '<small><span style="background:#c6dbef">&nbsp;&nbsp;&nbsp;</span> the model\'s '
        "probability (what the explorer shows) &nbsp; "
        '<span style="background:#2171b5">&nbsp;&nbsp;&nbsp;</span> observed frequency '
        "of the server's first tokens</small>"
    )
    return (
        f'<div class="jc-first-tokens"><div>{head}</div>'
        f"<div><small>{' · '.join(stats)}</small></div>"
        f'<table style="border-collapse:collapse;font-size:12px">{"".join(rows)}</table>'
        f"{legend}</div>"
    )


__all__ = ["DEFAULT_TOP", "END_OF_TURN", "FirstTokens", "chart_html"]
