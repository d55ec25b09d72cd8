"""Loading a GGUF with llama-cpp-python without swapping ``sys.stdout`` (safe on any thread).

``llama_cpp.Llama(verbose=False)`` hides llama.cpp's loading log by pointing ``sys.stdout``,
``sys.stderr`` and file descriptors 1 and 2 at ``/dev/null`` while it loads
(``llama_cpp._utils.suppress_stdout_stderr``). All of those are process-wide: during a load
on a background thread (the kernel's warm-up, `jupyter_complete.local.embedded.warm_up`)
whatever the notebook prints is lost, and an output stream that picked up ``sys.stdout``
meanwhile keeps writing to ``/dev/null`` (measured: a ``%%complete`` answer that never
showed). llama.cpp's own log already goes through llama-cpp-python's log callback, which
drops all but errors when not verbose (nothing reached file descriptor 1 or 2 with the swap
lifted), so `load_llama` lifts the swap while it loads.
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType
from typing import Any

# llama-cpp-python's modules that wrap loading in suppress_stdout_stderr (0.3.x).
_WRAPPERS = ("llama_cpp.llama", "llama_cpp._internals")
_NAME = "suppress_stdout_stderr"
_lock = threading.Lock()


class _Unchanged:
    """Stands in for ``suppress_stdout_stderr``: leaves every stream where it is."""

    def __init__(self, disable: bool = True) -> None:
        self.disable = disable

    def __enter__(self) -> _Unchanged:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def load_llama(llama_cpp: ModuleType, **options: Any) -> Any:
    """``llama_cpp.Llama(**options)``, with no stream swapped while it loads.

    Loads are serialized (the stand-in is put in place and taken out under one lock).
    Raises what ``llama_cpp.Llama`` raises (``ValueError`` for a file it cannot load).
    """
    modules = []
    for name in _WRAPPERS:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, _NAME):
            modules.append(module)
    with _lock:
        saved = [getattr(module, _NAME) for module in modules]
        for module in modules:
            setattr(module, _NAME, _Unchanged)
        try:
            return llama_cpp.Llama(**options)
        finally:
            for module, original in zip(modules, saved, strict=True):
                setattr(module, _NAME, original)
