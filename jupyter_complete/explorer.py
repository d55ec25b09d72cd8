"""The sampling explorer's public import path from before the widgets moved.

``from jupyter_complete.explorer import Explorer`` keeps working; the explorer lives in
`jupyter_complete.widgets.explorer` (docs/architecture.md, the notebook layer). Importing this
module imports ipywidgets, as it always did.
"""

from __future__ import annotations

from .widgets.explorer import Candidate, Explorer, Step, default_model

__all__ = ["Candidate", "Explorer", "Step", "default_model"]
