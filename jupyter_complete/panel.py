"""The tuning panel's public import path from before the widgets moved: ``jupyter_complete.panel``.

``from jupyter_complete.panel import Panel`` keeps working; the panel lives in
`jupyter_complete.widgets.panel` (docs/architecture.md, the notebook layer). Importing this
module imports ipywidgets, as it always did.
"""

from __future__ import annotations

from .widgets.panel import COLUMNS, Panel, StreamView, parse_compare

__all__ = ["COLUMNS", "Panel", "StreamView", "parse_compare"]
