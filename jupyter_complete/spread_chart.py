"""The chart of a sweep's figures: diversity and answer length against the swept value.

Drawn with matplotlib's object API on a bare `matplotlib.figure.Figure` (no pyplot: no GUI
backend, no global state), imported only when a chart is asked for; matplotlib is the
``plot`` extra.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .spread_figures import SettingStats

#: What to install for the chart.
PLOT_HINT = "pip install 'jupyter_complete[plot]'"


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
        left.plot(xs, [math.nan if y is None else y for y in ys], style, label=label, markersize=4)
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
    right.errorbar(
        xs,
        med,
        yerr=[low, high],
        fmt="o-",
        capsize=4,
        markersize=4,
        label="median (bar: min to max)",
    )
    right.set_ylim(bottom=0)
    right.set_xlabel(parameter)
    right.set_ylabel("answer length (" + ("tokens" if unit == "tokens" else "characters") + ")")
    right.set_title("How long the answers are", fontsize=10)
    right.legend(fontsize=7, loc="best")
    right.grid(alpha=0.3)
    if parameter == "top_k":
        for ax in (left, right):
            ax.xaxis.get_major_locator().set_params(integer=True)
    return fig


__all__ = ["PLOT_HINT", "draw_chart"]
