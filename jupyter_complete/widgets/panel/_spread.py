"""The panel's "n samples per setting" mode: `jupyter_complete.sweep` run from the panel.

The box beside the **Samples** button says what to sweep: ``temperature 0.2, 0.6, 1 x5``
(five answers at each of three temperatures). The parameter name may be left out
(temperature), or shortened (``t``, ``p``, ``k``); ``x5``, ``×5`` or ``5 samples`` gives the
samples per value (default `DEFAULT_SAMPLES`). The other settings are the panel's.
"""

from __future__ import annotations

import re
import time
from typing import Any

import ipywidgets as widgets

from ...completion import Completion
from ...sweep import SpreadResult, result_html
from ._runner import RunResult

#: Samples per value when the box does not say.
DEFAULT_SAMPLES = 5
#: Seconds between two redraws of the figures while a sweep runs.
LIVE_INTERVAL = 0.5

_NAMES = {
    "temperature": "temperature",
    "temp": "temperature",
    "t": "temperature",
    "top_p": "top_p",
    "p": "top_p",
    "top-p": "top_p",
    "top_k": "top_k",
    "k": "top_k",
    "top-k": "top_k",
}
_NAME_RE = re.compile(r"^\s*([a-z_-]+)\s*[=:]?\s*", re.IGNORECASE)
_COUNT_RE = re.compile(r"(?:[x×*]\s*(\d+)|(\d+)\s*samples?|n\s*=\s*(\d+))\s*$", re.IGNORECASE)
_EXAMPLE = "temperature 0.2, 0.6, 1 x5"


def parse_spread(text: str) -> dict[str, Any]:
    """What the Samples box asks for: ``{"parameter": ..., "values": [...], "n": ...}``.

    ``"temperature 0.2, 0.6, 1 x5"``, ``"top_p 0.5 0.9 ×3"``, ``"k 1, 5, 50"`` (n 5),
    ``"0.2, 1"`` (temperature, n 5). Raises ValueError (one line) for anything else; the
    values' ranges are checked by `jupyter_complete.sweep.check_sweep`.
    """
    rest = text.strip()
    parameter = "temperature"
    match = _NAME_RE.match(rest)
    if match:
        name = match.group(1).lower()
        if name not in _NAMES:
            raise ValueError(
                f"Samples: {name!r} is not temperature, top_p or top_k (write e.g. {_EXAMPLE!r})."
            )
        parameter = _NAMES[name]
        rest = rest[match.end() :]
    n = DEFAULT_SAMPLES
    count = _COUNT_RE.search(rest)
    if count:
        n = int(next(g for g in count.groups() if g))
        rest = rest[: count.start()]
    words = [w for w in re.split(r"[,;\s]+", rest) if w]
    values: list[float] = []
    for word in words:
        try:
            number = float(word)
        except ValueError:
            raise ValueError(
                f"Samples: {word!r} is not a number (write e.g. {_EXAMPLE!r})."
            ) from None
        values.append(int(number) if parameter == "top_k" and number.is_integer() else number)
    if not values:
        raise ValueError(
            f"Samples: no values to sweep in {text.strip()!r} (write e.g. {_EXAMPLE!r})."
        )
    return {"parameter": parameter, "values": values, "n": n}


def run_result(sample: Any) -> RunResult:
    """A sweep's `~jupyter_complete.spread_figures.Sample` as a `RunResult` (for history)."""
    received = Completion(sample.text, stop_reason=sample.stop_reason, model=sample.model)
    received.time_to_first_token, received.elapsed = sample.time_to_first_token, sample.elapsed
    return RunResult(outcome=sample.outcome, completion=received, error=sample.error)


class SpreadView:
    """The panel's view of the last sweep. Hidden until the first sweep.

    The figures filling in while samples arrive, then the same with its chart.
    """

    def __init__(self) -> None:
        self.html = widgets.HTML()
        self.box = widgets.VBox([self.html], layout=widgets.Layout(display="none", width="100%"))
        #: The result shown (None before the first sweep).
        self.result: SpreadResult | None = None
        #: Seconds between two redraws of a sweep in progress.
        self.interval = LIVE_INTERVAL
        self._drawn_at = float("-inf")

    def show(self, result: SpreadResult, *, final: bool) -> None:
        """Show ``result``; the chart (matplotlib) is drawn only for the ``final`` one.

        A live (not ``final``) result is drawn at most once per `interval` seconds: its
        HTML grows with the samples (about 1 MB and a second for 10,000), so drawing it for
        every sample would keep the panel busy long after the sweep ended.
        """
        now = time.monotonic()
        if not final and now - self._drawn_at < self.interval:
            return
        self._drawn_at = now
        self.result = result
        self.box.layout.display = ""
        self.html.value = result_html(result, chart=final)

    def clear(self) -> None:
        """Hide the view."""
        self.result = None
        self.html.value = ""
        self.box.layout.display = "none"

    def close(self) -> None:
        """Close the view's widgets."""
        self.html.close()
        self.box.close()


__all__ = ["DEFAULT_SAMPLES", "SpreadView", "parse_spread", "run_result"]
