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
by `jupyter_complete.sweep_runner.Sweep`, the code behind `spread`. This module holds the
run; the result and its chart are in `jupyter_complete.first_tokens_result`, the figures that
compare counts with probabilities in `jupyter_complete.goodness_of_fit` (their names stay
importable from here).
"""

from __future__ import annotations

import time
import weakref
from typing import TYPE_CHECKING, Any

from . import prompt as prompts
from .errors import InvalidParameterError
from .first_tokens_result import DEFAULT_TOP, END_OF_TURN, FirstTokens, chart_html
from .goodness_of_fit import Fit, chi_square_fit, total_variation
from .progress import in_kernel, make_progress
from .settings import check_params
from .spread_figures import Sample
from .sweep import is_builtin_model, keep_result
from .sweep_runner import Progress, Sweep

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

if TYPE_CHECKING:
    from .client import Client
    from .local.model import LocalModel

#: Seconds between two redraws of the live chart.
REDRAW_INTERVAL = 0.3
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
    """The probability of each first-token text the server can return.

    By the explorer's computation: `sampling.stages` on the model's logits after the prompt
    rendered through its chat template (as the server renders it). Only tokens that can be
    drawn appear; tokens with the same text are summed; end-of-turn tokens are `END_OF_TURN`.
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
    """Token -> label, per model, filled as tokens are met.

    Decoding the whole vocabulary costs about a second; a class runs the same model many
    times.
    """
    cache = _LABELS.get(model)
    if cache is None:
        cache = _LABELS[model] = {}
    return cache


def label_of(sample: Sample) -> str:
    """The first-token label of a one-token sample: its text, or `END_OF_TURN`."""
    if not sample.text and sample.stop_reason == "stop_sequence":
        return END_OF_TURN
    return sample.text


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
    """Draw ``n`` one-token completions from the built-in model and count their first tokens.

    They are counted against the exact probabilities (a chart that fills in as they arrive).

    Args:
        prompt: as in ``%%complete`` (plain text becomes a Human turn; text after the last
            ``Assistant:`` is a prefill, which makes the first token a word of the answer).
        n: samples (1 to `MAX_SAMPLES`).
        temperature: the sampling temperature (None: 1).
        top_k: keep only the k likeliest tokens (None: no cut).
        top_p: keep the likeliest tokens up to this total probability (None: no cut).
        raw: send ``prompt`` as written (it must then have Human/Assistant turns).
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
        if in_kernel():
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
    return keep_result(
        ft, result, RESULT_VARIABLE, ft.drawn, show_if_interrupted=False, display=text_line
    )
