"""The built-in local model and its ``/v1/complete`` server (the ``[local]`` extra).

::

    from jupyter_complete.local import LocalModel, serve
    server = serve()                  # SmolLM2-135M-Instruct on 127.0.0.1, a free port
    client = Client(base_url=server.url)
    ...
    server.close()

    from jupyter_complete.local.generation import Generation, Sampling
    from jupyter_complete.prompt import parse
    model = LocalModel()              # or the model itself, a token at a time
    tokens = model.apply_chat_template(parse("\\n\\nHuman: Hi\\n\\nAssistant:"))
    for delta in Generation(model, tokens, Sampling(max_tokens=32, temperature=0.7)):
        ...

Names load on first use, so importing this package does not import llama_cpp.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .model import LocalModel
    from .server import LocalServer, serve

_LAZY = {"LocalModel": ".model", "LocalServer": ".server", "serve": ".server"}

__all__ = ["LocalModel", "LocalServer", "serve"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'jupyter_complete.local' has no attribute {name!r}")
