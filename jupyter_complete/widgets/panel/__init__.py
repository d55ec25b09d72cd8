"""The tuning panel: ``Panel(prompt, client=None, settings=None)``.

::

    from jupyter_complete import Panel
    panel = Panel("Write a haiku about tea.")
    panel                       # sliders, Run/Stop, streamed output, compare, history

Also opened by ``%%complete --panel`` with the cell as the prompt. Importing this package
imports ipywidgets; ``import jupyter_complete`` does not.
"""

from __future__ import annotations

from .._textview import StreamView
from ._compare import parse_compare
from ._history import COLUMNS
from ._panel import Panel

__all__ = ["COLUMNS", "Panel", "StreamView", "parse_compare"]
