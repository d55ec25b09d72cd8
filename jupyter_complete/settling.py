"""`first_tokens`: counted first tokens settling on the model's own next-token probabilities.

A teaching view for the built-in model. Many one-token completions (``max_tokens_to_sample
= 1``) go to the local server, through HTTP, exactly as ``%%complete`` sends them; their
first tokens are counted, and a chart shows the observed frequencies next to the exact
probabilities the sampling explorer computes for the same prompt and settings
(`jupyter_complete.sampling.stages` on the same model's logits). As samples arrive the
chart fills in and the frequencies settle on the model's own numbers: sampling made visible,
and a check that the server samples what the explorer shows. ::

    from jupyter_complete import first_tokens
    first_tokens("Human: Name a fruit.\\nAssistant: My favourite fruit is", n=200,
                 temperature=0.7)

Tokens are compared by their text, as the server returns it: two tokens with the same text
count as one, and the model ending its turn counts as `END_OF_TURN`. The samples are drawn
by `jupyter_complete.sweep.Sweep`, the code behind `spread`.
"""

from __future__ import annotations

import dataclasses
import html
import importlib
import time
import weakref
from typing import TYPE_CHECKING, Any

from . import prompt as prompts
from .errors import InvalidParameterError
from .sampling import chi_square_p_value
from .settings import check_params
from .sweep import (
    Progress,
    Sample,
    SpreadResult,
    Sweep,
    SweepInterrupted,
    is_builtin_model,
    keep_in_ipython,
)
from .widgets._explorer_html import pct as _pct
from .widgets._explorer_html import show_token

if TYPE_CHECKING:
    from .client import Client
    from .local.model import LocalModel

#: The label of the model ending its turn (its end-of-turn token; an empty completion with
#: ``stop_reason`` ``"stop_sequence"`` on the wire).
END_OF_TURN = "<end of turn>"
#: Rows of the chart: the likeliest first tokens.
DEFAULT_TOP = 12
#: Seconds between two redraws of the live chart.
REDRAW_INTERVAL = 0.3
#: Bins expected fewer times than this are pooled for the chi-square test (Cochran's rule).
MIN_EXPECTED = 5.0
#: The IPython variable that holds the last result.
RESULT_VARIABLE = "_first_tokens"
#: Upper bound on samples in one run.
MAX_SAMPLES = 5_000


def exact_first_tokens(
    model: LocalModel,
    wire_prompt: str,
    temperature: float | None,
    top_k: int | None,
    top_p: float | None,
) -> dict[str, float]:
    """The probability of each first-token text the server can return, by the explorer's
    computation: `sampling.stages` on the model's logits after the prompt rendered through
    its chat template (as the server renders it). Only tokens that can be drawn appear;
    tokens with the same text are summed; end-of-turn tokens are `END_OF_TURN`.
    """
    import numpy as np

    from .sampling import stages

    tokens = model.apply_chat_template(prompts.parse(wire_prompt))
    logits = model.next_logits(tokens)
    final = stages(logits, temperature, top_k, top_p).final
    kept = np.flatnonzero(final)
    # Decode the likeliest first: a distribution with no cut has one entry per vocabulary
    # token, and most of its mass is in the first few hundred.
    kept = kept[np.argsort(-final[kept], kind="stable")]
    labels = _labels(model)
    out: dict[str, float] = {}
    for token in kept.tolist():
        label = labels.get(token)
        if label is None:
            label = labels[token] = END_OF_TURN if model.is_end(token) else model.token_text(token)
        out[label] = out.get(label, 0.0) + float(final[token])
    return out


_LABELS: weakref.WeakKeyDictionary[Any, dict[int, str]] = weakref.WeakKeyDictionary()


def _labels(model: LocalModel) -> dict[int, str]:
    """Token -> label, per model, filled as tokens are met (decoding the whole vocabulary
    costs about a second; a class runs the same model many times)."""
    cache = _LABELS.get(model)
    if cache is None:
        cache = _LABELS[model] = {}
    return cache


def label_of(sample: Sample) -> str:
    """The first-token label of a one-token sample: its text, or `END_OF_TURN`."""
    if not sample.text and sample.stop_reason == "stop_sequence":
        return END_OF_TURN
    return sample.text


@dataclasses.dataclass(frozen=True)
class Fit:
    """Pearson's chi-square goodness-of-fit of the counts against the exact probabilities."""

    stat: float
    dof: int
    p_value: float
    #: ``(label, observed, expected)`` per bin after pooling (``"other"`` holds the pool).
    bins: list[tuple[str, int, float]]
    #: Texts observed that the exact distribution says cannot be drawn, with their counts.
    impossible: dict[str, int]


def chi_square_fit(
    counts: dict[str, int],
    probs: dict[str, float],
    ranked: list[tuple[str, float]] | None = None,
) -> Fit | None:
    """Pearson's test of ``counts`` against ``probs``; None with fewer than two bins.

    Each text expected at least `MIN_EXPECTED` times gets its own bin; the rest (and any
    observed text outside ``probs``) share an ``"other"`` bin, merged into the smallest bin
    when it is itself expected fewer than `MIN_EXPECTED` times. A text with probability 0
    that was observed makes the p-value 0 (it cannot happen under ``probs``). ``ranked`` is
    ``probs`` sorted by probability, most likely first, when the caller has it already.
    """
    n = sum(counts.values())
    if n == 0:
        return None
    if ranked is None:
        ranked = sorted(probs.items(), key=lambda item: -item[1])
    impossible = {t: c for t, c in counts.items() if c and probs.get(t, 0.0) <= 0.0}
    bins: list[tuple[str, int, float]] = []
    for text, p in ranked:
        expected = p * n
        if expected < MIN_EXPECTED:
            break  # ranked: every later text is expected less often still
        bins.append((text, counts.get(text, 0), expected))
    other_obs = n - sum(obs for _, obs, _ in bins)
    other_exp = max(0.0, n - sum(exp for _, _, exp in bins))
    if other_exp >= MIN_EXPECTED or (bins == [] and other_exp > 0):
        bins.append(("other", other_obs, other_exp))
    elif bins and (other_obs or other_exp > 1e-9):
        i = min(range(len(bins)), key=lambda j: bins[j][2])
        label, obs, exp = bins[i]
        bins[i] = (label + " + other", obs + other_obs, exp + other_exp)
    if impossible:
        return Fit(
            stat=float("inf"),
            dof=max(1, len(bins) - 1),
            p_value=0.0,
            bins=bins,
            impossible=impossible,
        )
    if len(bins) < 2:
        return None
    stat = sum((obs - exp) ** 2 / exp for _, obs, exp in bins if exp > 0)
    return Fit(
        stat=stat,
        dof=len(bins) - 1,
        p_value=chi_square_p_value(stat, len(bins) - 1),
        bins=bins,
        impossible=impossible,
    )


def total_variation(counts: dict[str, int], probs: dict[str, float]) -> float | None:
    """Total variation distance between the observed frequencies and ``probs``:
    ``0.5 * sum(|f(t) - p(t)|)`` over every text either one has (0: identical; 1:
    disjoint). None before the first sample. ``probs`` sums to 1, so the texts never observed
    add exactly the probability the observed ones leave: the work is O(observed texts)."""
    n = sum(counts.values())
    if n == 0:
        return None
    seen = [t for t, c in counts.items() if c]
    unseen_mass = max(0.0, 1.0 - sum(probs.get(t, 0.0) for t in seen))
    return 0.5 * (sum(abs(counts[t] / n - probs.get(t, 0.0)) for t in seen) + unseen_mass)


@dataclasses.dataclass
class FirstTokens:
    """Counted first tokens next to the model's exact probabilities (see the module doc)."""

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
        """``(text, probability, count)``: the `top` likeliest texts, then any text observed
        outside them (most counted first), then ``("all others", rest, rest count)``."""
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
        """Every text with a probability or a count: columns ``text``, ``probability``,
        ``count``, ``frequency`` (needs pandas)."""
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
    """Two bars in one cell: the model's probability (pale, full height) and the observed
    frequency (dark, half height, on top)."""
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
    """The chart as HTML with inline styles (it survives saving and sanitisers): one row per
    text, the model's probability as a pale bar, the observed frequency as a dark bar."""
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
            f'<td style="{_TD}">{_bar(p, f)}</td><td style="{_TD}">{_pct(p)}</td>'
            f'<td style="{_TD}">{"–" if f is None else _pct(f)}</td>'
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


class _LiveChart:
    """Redraws the chart in one output (a display handle) while samples arrive."""

    def __init__(self, ft: FirstTokens) -> None:
        from IPython.display import HTML, display

        self._ft = ft
        self._html = HTML
        self._handle = display(HTML(chart_html(ft)), display_id=True)
        self._last = time.monotonic()

    def update(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= REDRAW_INTERVAL:
            self._last = now
            if self._handle is not None:
                self._handle.update(self._html(chart_html(self._ft)))


def first_tokens(
    prompt: str,
    n: int = 200,
    *,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    system: str = "",
    raw: bool = False,
    client: Client | None = None,
    model: LocalModel | None = None,
    top: int = DEFAULT_TOP,
    live: bool = True,
) -> FirstTokens:
    """Draw ``n`` one-token completions from the built-in model and count their first tokens
    against the exact probabilities (a chart that fills in as they arrive).

    Args:
        prompt: as in ``%%complete`` (plain text becomes a Human turn; text after the last
            ``Assistant:`` is a prefill, which makes the first token a word of the answer).
            ``raw=True`` sends it as written (it must then have Human/Assistant turns).
        n: samples (1 to `MAX_SAMPLES`).
        temperature, top_k, top_p: the settings (None: temperature 1, no cut).
        system: a system prompt.
        client: a `Client` for the built-in model (default ``Client()``, which must resolve
            to it: no ``ANTHROPIC_API_KEY`` or ``ANTHROPIC_BASE_URL``).
        model: the `LocalModel` for the exact probabilities; default the one that answers
            (`jupyter_complete.widgets.explorer.default_model`).
        top: rows in the chart.
        live: in Jupyter, show the chart now and redraw it as samples arrive; elsewhere a
            progress line on stderr. False: just return the result.

    Returns:
        `FirstTokens` (displays as the final chart); in IPython also kept in
        ``_first_tokens``.

    Raises:
        ValueError: the client does not talk to the built-in model.
        InvalidParameterError: a setting outside the API's range, or a bad ``n``.
        SweepInterrupted: a kernel interrupt stopped the run; what was counted is in its
            ``result`` and in ``_first_tokens`` (the live chart shows it, marked partial).
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SAMPLES:
        raise InvalidParameterError("n", n, f"an integer from 1 to {MAX_SAMPLES:,}")
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise InvalidParameterError("top", top, "an integer >= 1")
    t = 1.0 if temperature is None else temperature
    check_params({"temperature": t, "top_k": top_k, "top_p": top_p})
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidParameterError("prompt", prompt, "a non-empty string")
    wire = prompts.build(prompt, system=system, raw=raw)
    if client is None:
        from .client import Client

        client = Client()
    if not is_builtin_model(client):
        raise ValueError(
            "first_tokens() compares samples with the built-in model's exact probabilities, "
            "so it needs the built-in model (unset ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL); "
            "for another endpoint use spread()."
        )
    _ = client.base_url  # start the built-in server (and its model) now
    if model is None:
        from .widgets._explorer_state import default_model

        model = default_model()
    probs = exact_first_tokens(model, wire, t, top_k, top_p)
    ft = FirstTokens(
        prompt=prompt,
        wire_prompt=wire,
        temperature=float(t),
        top_k=top_k,
        top_p=top_p,
        n=n,
        probabilities=probs,
        counts={},
        top=top,
    )
    params: dict[str, Any] = {"max_tokens_to_sample": 1}
    if top_k is not None:
        params["top_k"] = top_k
    if top_p is not None:
        params["top_p"] = top_p
    sweep = Sweep(client, wire, "temperature", [float(t)], n, params, concurrency=1, prompt=prompt)
    chart: _LiveChart | None = None
    text_line = None
    if live:
        from .sweep import _in_kernel, make_progress

        if _in_kernel():
            chart = _LiveChart(ft)
            from IPython import get_ipython

            ft.live_cell = get_ipython().execution_count
        else:
            text_line = make_progress("text", "first tokens")

    def on_progress(p: Progress) -> None:
        ft.elapsed = p.elapsed
        if p.latest is not None and p.latest.outcome == "done":
            label = label_of(p.latest)
            ft.counts[label] = ft.counts.get(label, 0) + 1
        if chart is not None:
            chart.update(force=p.finished == p.total)
        if text_line is not None:
            text_line.update(p)

    result = sweep.run(on_progress)
    ft.sweep = result
    ft.elapsed = result.elapsed
    if chart is not None:
        chart.update(force=True)
    if text_line is not None:
        text_line.finish(result)
    interrupted = result.stopped_by == "interrupted"
    keep_in_ipython(ft, RESULT_VARIABLE, show=False)
    if interrupted:
        raise SweepInterrupted(ft, ft.drawn, RESULT_VARIABLE)
    return ft


__all__ = [
    "END_OF_TURN",
    "FirstTokens",
    "Fit",
    "chi_square_fit",
    "chart_html",
    "exact_first_tokens",
    "first_tokens",
    "label_of",
    "total_variation",
]
