"""`spread`: many samples at each value of one sampling parameter, and how different they are.

One answer per setting says little about a sampling parameter: at temperature 0.2 five draws
may be word for word the same, at 1.0 five different stories. The Text Completions API gives
no token probabilities, so for Claude or any upstream engine the honest view of a setting is
many samples. ::

    from jupyter_complete import spread
    result = spread("Name a colour.", n=5, temperature=[0.2, 0.6, 1.0], max_tokens=20)
    result              # per setting: the distinct answers, diversity, lengths, a chart
    result.frame()      # every sample as a pandas DataFrame

This module holds the function, the check of its arguments and what a notebook keeps of a
sweep. The samples are drawn by `jupyter_complete.sweep_runner.Sweep` (which also runs the
panel's "n samples per setting" mode), shown while they arrive by
`jupyter_complete.progress`; the figures are defined in `jupyter_complete.spread_figures`;
the result, its table and chart are in `jupyter_complete.spread_result`. The names of those
modules that the panel and earlier code import from here stay importable from here.

Requests run concurrently (up to ``concurrency`` at once, default `DEFAULT_CONCURRENCY`)
except on the built-in model, which generates one answer at a time and would only queue them
(and so inflate their time to first token): there the default is 1. A kernel interrupt
(Jupyter's stop button, Ctrl-C) or `Sweep.stop` ends the sweep at once: the open streams are
closed, every sample already drawn is kept, and the result says it is partial.
"""

from __future__ import annotations

import numbers
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from . import prompt as prompts
from .errors import InvalidParameterError, OneLineTraceback
from .progress import Display, make_progress
from .settings import check_params
from .spread_figures import (
    Sample,
    SettingStats,
    count_answers,
    distinct_n,
    min_median_max,
    normalize,
    setting_stats,
)
from .spread_result import SWEEPABLE, SpreadResult, draw_chart, result_html
from .sweep_runner import Progress, Sweep

if TYPE_CHECKING:
    from .client import Client
    from .settings import CompletionSettings

_Kept = TypeVar("_Kept")

#: Requests in flight at once against an endpoint that serves several (an upstream engine,
#: the Anthropic API); the built-in model gets 1.
DEFAULT_CONCURRENCY = 4
#: Upper bound on ``concurrency`` (each request holds a thread and a connection).
MAX_CONCURRENCY = 32
#: Upper bound on samples in one sweep (values x n), so a typo cannot queue a day of work.
MAX_SAMPLES = 10_000
#: Default ``max_tokens`` for a sweep: short answers, so many samples stay quick.
DEFAULT_MAX_TOKENS = 128
#: The IPython variable that always holds the last `spread` result (like ``_completion``).
RESULT_VARIABLE = "_spread"


# -- the endpoint, and what a notebook keeps of a sweep ------------------------------------
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
            f"the sweep was stopped; the {drawn:,} samples drawn are kept in {variable}."
        )


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


def keep_result(
    kept: _Kept,
    sweep: SpreadResult,
    variable: str,
    drawn: int,
    *,
    show_if_interrupted: bool,
    display: Display | None,
) -> _Kept:
    """Finish ``display``, keep ``kept`` in the IPython namespace, and return it.

    ``display`` (the progress shown while ``sweep`` ran) ends with its summary; ``kept``
    (what the sweep made: ``sweep`` itself, or a view built on it) is kept as ``variable``.

    Raises:
        SweepInterrupted: a kernel interrupt ended ``sweep``; it carries ``kept`` (shown
            first when ``show_if_interrupted``) and the ``drawn`` count its message names.
    """
    if display is not None:
        display.finish(sweep)
    interrupted = sweep.stopped_by == "interrupted"
    keep_in_ipython(kept, variable, show=interrupted and show_if_interrupted)
    if interrupted:
        raise SweepInterrupted(kept, drawn, variable)
    return kept


# -- checking the call ---------------------------------------------------------------------
def _swept(name: str, value: object) -> bool:
    """Is ``value`` a list of values (swept) rather than one value (fixed)?"""
    if value is None or isinstance(value, (numbers.Real, bool)):
        return False
    if isinstance(value, (str, bytes)):
        raise InvalidParameterError(name, value, "a number, or a list of numbers to sweep")
    return isinstance(value, Iterable)


def check_sweep(
    parameter_values: dict[str, object],
    n: object,
    concurrency: object,
) -> tuple[str, list[float]]:
    """The swept parameter and its values; a one-line error for anything wrong.

    ``parameter_values`` maps each of `SWEEPABLE` to what the caller passed (None, a
    number, or a list of numbers).
    """
    swept = [name for name, v in parameter_values.items() if _swept(name, v)]
    if not swept:
        raise ValueError(
            "spread() sweeps one parameter: give a list of values for one of temperature, "
            "top_p or top_k (e.g. temperature=[0.2, 0.6, 1.0])."
        )
    if len(swept) > 1:
        raise ValueError(
            f"spread() sweeps one parameter at a time, but {' and '.join(swept)} are both "
            "lists: give one of them a single value."
        )
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
        raise ValueError(
            f"spread(): {n} samples x {len(values)} values is more than "
            f"{MAX_SAMPLES:,} requests; lower n or the number of values."
        )
    if concurrency is not None and (
        isinstance(concurrency, bool)
        or not isinstance(concurrency, int)
        or not 1 <= concurrency <= MAX_CONCURRENCY
    ):
        raise InvalidParameterError(
            "concurrency", concurrency, f"an integer from 1 to {MAX_CONCURRENCY}"
        )
    return name, values


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
    default, or ``settings``'). The figures are defined in the docstring of
    `jupyter_complete.spread_figures`.

    Args:
        prompt: the prompt; plain text is sent as a Human turn, as ``%%complete`` does
            (`jupyter_complete.prompt.build`); ``raw=True`` sends it exactly as written.
        n: samples per value (>= 1).
        temperature: a list to sweep, a number to fix, None for unset.
        top_p: a list to sweep, a number to fix, None for unset.
        top_k: a list to sweep, a number to fix, None for unset.
        max_tokens: ``max_tokens_to_sample`` of each sample (default: ``settings``', else
            `DEFAULT_MAX_TOKENS`).
        model: as in ``%%complete``; None takes ``settings``'.
        stop_sequences: as in ``%%complete``; None takes ``settings``'.
        system: as in ``%%complete``; None takes ``settings``'.
        raw: send ``prompt`` exactly as written (it must then have Human/Assistant turns).
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
        {"temperature": temperature, "top_p": top_p, "top_k": top_k}, n, concurrency
    )
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
    sweep = Sweep(
        client, wire, parameter, values, n, params, concurrency=concurrency, prompt=prompt
    )
    display = make_progress(progress, f"spread {parameter}")
    try:
        result = sweep.run(display.update if display is not None else None)
    except BaseException:
        if display is not None:
            display.close()
        raise
    return keep_result(
        result, result, RESULT_VARIABLE, result.drawn, show_if_interrupted=True, display=display
    )


__all__ = [
    "DEFAULT_CONCURRENCY",
    "MAX_CONCURRENCY",
    "MAX_SAMPLES",
    "SWEEPABLE",
    "Progress",
    "Sample",
    "SettingStats",
    "SpreadResult",
    "Sweep",
    "SweepInterrupted",
    "check_sweep",
    "count_answers",
    "distinct_n",
    "draw_chart",
    "is_builtin_model",
    "keep_in_ipython",
    "keep_result",
    "min_median_max",
    "normalize",
    "result_html",
    "setting_stats",
    "spread",
]
