"""jupyter_complete: stream text completions (``POST /v1/complete``) into Jupyter.

``%load_ext jupyter_complete`` registers the ``%%complete`` magic. The Python API::

    from jupyter_complete import Client
    client = Client()   # ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL, else the built-in model
    with client.completions.create(prompt="\\n\\nHuman: Hi\\n\\nAssistant:", stream=True) as s:
        for text in s.text_stream:
            print(text, end="")

Importing this package is cheap: the client, widgets and the local model load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from . import errors
    from .client import Client
    from .completion import Completion
    from .first_tokens_result import FirstTokens
    from .settings import CompletionSettings
    from .settling import first_tokens
    from .streaming import CompletionStream
    from .sweep import SpreadResult, spread
    from .widgets.explorer import Explorer
    from .widgets.panel import Panel

# name -> module that defines it; imported on first attribute access (PEP 562).
_LAZY = {
    "Client": ".client",
    "Completion": ".completion",
    "CompletionStream": ".streaming",
    "CompletionSettings": ".settings",
    "Panel": ".widgets.panel",
    "Explorer": ".widgets.explorer",
    "spread": ".sweep",
    "SpreadResult": ".sweep",
    "first_tokens": ".settling",
    "FirstTokens": ".first_tokens_result",
}

__all__ = [
    "Client",
    "Completion",
    "CompletionSettings",
    "CompletionStream",
    "Explorer",
    "FirstTokens",
    "Panel",
    "SpreadResult",
    "__version__",
    "errors",
    "first_tokens",
    "load_ipython_extension",
    "spread",
    "unload_ipython_extension",
]


def __getattr__(name: str) -> Any:
    if name == "errors":
        return importlib.import_module(".errors", __name__)
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'jupyter_complete' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_complete``: register the ``%%complete`` magics.

    With no endpoint configured, the built-in model starts loading on a background thread
    (`jupyter_complete.local.embedded.warm_up`), so the first answer does not wait for it.
    """
    from .local.embedded import warm_up
    from .magics import load

    warm_up()  # first: the weights load while the magics are imported
    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext jupyter_complete``: remove the magics."""
    from .magics import unload

    unload(ipython)
