"""The server's HTTP layer: the ASGI app (`ApiApp`) and its uvicorn connection (`ApiProtocol`).

Names load on first use: ``import jupyter_complete``, ``%load_ext`` and reading the limits'
defaults (`HttpLimits`, for ``jupyter-complete serve --help``) never import uvicorn or
Starlette.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import ApiApp
    from .hosts import HostCheck
    from .limits import DEFAULT_MAX_BODY_BYTES, HttpLimits
    from .protocol import ApiProtocol

_LAZY = {
    "ApiApp": ".app",
    "ApiProtocol": ".protocol",
    "HostCheck": ".hosts",
    "HttpLimits": ".limits",
    "DEFAULT_MAX_BODY_BYTES": ".limits",
}

__all__ = ["DEFAULT_MAX_BODY_BYTES", "ApiApp", "ApiProtocol", "HostCheck", "HttpLimits"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'jupyter_complete.local.http' has no attribute {name!r}")
