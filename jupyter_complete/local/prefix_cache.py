"""The chat template's leading tokens, evaluated once per machine and kept on disk.

Every prompt the built-in model answers begins with the same tokens: the chat template's
markup and default system message before the caller's first text
(`jupyter_complete.local.model.LocalModel.render_public`; 24 tokens for SmolLM2). A fresh
kernel evaluates them while it warms up (`jupyter_complete.local.embedded`), and a cell run
at once waits for that: 0.17 s of the 0.74 s to its first answer, measured here.
`prime_prefix` evaluates them once, saves their KV-cache entries (llama.cpp's
``llama_state_seq_get_data`` for sequence 0: the keys and values of those positions, 0.55 MB
for SmolLM2) and, in later processes, loads them with ``llama_state_seq_set_data`` instead
(under a millisecond). The next token's logits are then bit for bit those of a model that
evaluated the tokens itself. It is what llama.cpp's ``llama-server`` does with a slot's
``--slot-save-path``, for the one prefix every caller shares.

A saved state is used only by the same model file (path, size, modification and change
times, inode: ``cp -p`` or ``rsync -t`` can give other weights the old size and modification
time, but not the change time), the same
llama-cpp-python and llama.cpp build and CPU features (``llama_print_system_info``), the same
attention kernel and the same tokens: all of them are hashed into the file's name. The file
carries a SHA-256 of its contents and is at most `MAX_BYTES`; a file that fails either
check, or that llama.cpp refuses, is ignored and the tokens are evaluated (and saved) again.
A state decides what the model says next, so, as ssh does with its keys, one is read only
from a folder and a (regular, not symlinked) file that belong to this user and that nobody
else may write to.
Location: `cache_folder`.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._constants import ENV_CACHE

if TYPE_CHECKING:
    from .model import LocalModel

log = logging.getLogger(__name__)

#: The most bytes a saved state may have (SmolLM2's 24 tokens: 0.55 MB; a 7B model's ~12 MB).
MAX_BYTES = 64 * 1024 * 1024
#: What a saved state file starts with; then the SHA-256 of what follows, then the state.
MAGIC = b"jupyter_complete prefix state 1\n"
_DIGEST = 32

#: What `prime_prefix` did: loaded a saved state, or evaluated the tokens (and saved them,
#: or could not: the folder is not writable).
LOADED, SAVED, EVALUATED = "loaded", "saved", "evaluated"


def cache_folder() -> Path:
    """Where saved prefix states live: ``$JUPYTER_COMPLETE_CACHE/prefix``.

    ``JUPYTER_COMPLETE_CACHE`` defaults to ``$XDG_CACHE_HOME/jupyter_complete``, else
    ``~/.cache/jupyter_complete`` (the XDG Base Directory default; as that specification
    says, a relative ``XDG_CACHE_HOME`` is ignored). A relative ``JUPYTER_COMPLETE_CACHE``
    is relative to the current folder. ``~`` is expanded in both.

    Raises:
        RuntimeError: the default is needed and there is no home folder (``Path.home``).
    """
    root = os.environ.get(ENV_CACHE)
    if not root:
        xdg = Path(os.environ.get("XDG_CACHE_HOME") or "").expanduser()
        base = xdg if xdg.is_absolute() else Path.home() / ".cache"
        root = str(base / "jupyter_complete")
    return Path(root).expanduser() / "prefix"


def state_name(model: LocalModel, tokens: Sequence[int]) -> str:
    """The file name for ``tokens``' state under ``model``: a SHA-256 of all it depends on."""
    import llama_cpp

    info = model.path.stat()
    identity = {
        "model": [
            str(model.path.resolve()),
            info.st_size,
            info.st_mtime_ns,
            info.st_ctime_ns,
            info.st_ino,
        ],
        "llama_cpp": llama_cpp.__version__,
        "system": llama_cpp.llama_print_system_info().decode("utf-8", "replace"),
        "flash_attn": model.flash_attn,
        "tokens": [int(t) for t in tokens],
    }
    encoded = json.dumps(identity, sort_keys=True).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest() + ".state"


def _private(fd: int) -> bool:
    """Whether the open file ``fd`` belongs to this user and no one else may write to it."""
    info = os.fstat(fd)
    return info.st_uid == os.getuid() and not info.st_mode & 0o022


def _read(path: Path) -> bytes | None:
    """The state saved at ``path``, if it is there, private, not too big and intact.

    The folder is opened first and the file opened in it, and both checked once open, so
    that neither can be swapped (a symlink along the path repointed) between the check and
    the read. The file must be a regular file, not a symlink (one is never saved): opening
    never waits (``O_NONBLOCK``: a FIFO in its place would wait for a writer forever).
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW
    try:
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            folder_private = _private(folder)
            fd = os.open(path.name, flags, dir_fd=folder)
        finally:
            os.close(folder)
        with os.fdopen(fd, "rb") as file:
            if not (folder_private and _private(fd)):
                log.warning("ignoring a saved prefix state others may write to: %s", path)
                return None
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            head = file.read(len(MAGIC) + _DIGEST)
            body = file.read(MAX_BYTES + 1)
    except OSError:  # missing, or a symlink (ELOOP)
        return None
    if len(head) != len(MAGIC) + _DIGEST or not head.startswith(MAGIC):
        return None
    if len(body) > MAX_BYTES or hashlib.sha256(body).digest() != head[len(MAGIC) :]:
        log.warning("ignoring a damaged saved prefix state: %s", path)
        return None
    return body


def _write(path: Path, state: bytes) -> bool:
    """Save ``state`` at ``path`` (atomically, readable by this user only); False on failure."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(MAGIC + hashlib.sha256(state).digest() + state)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as err:
        log.debug("could not save the prefix state at %s: %s", path, err)
        return False
    return True


def _state_of_sequence(llm: Any) -> bytes:
    import llama_cpp

    size = llama_cpp.llama_state_seq_get_size(llm.ctx, 0)
    buffer = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_seq_get_data(llm.ctx, buffer, size, 0)
    return ctypes.string_at(buffer, written)


def _load_sequence(llm: Any, tokens: Sequence[int], state: bytes) -> bool:
    import llama_cpp

    source = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
    memory = llama_cpp.llama_get_memory(llm.ctx)
    # A state llama.cpp reads may still hold other positions than 0 .. len(tokens) - 1 (a
    # file copied to another's name): evaluating on top of it would then fail, every time.
    if llama_cpp.llama_state_seq_set_data(llm.ctx, source, len(state), 0) != len(state) or (
        llama_cpp.llama_memory_seq_pos_min(memory, 0),
        llama_cpp.llama_memory_seq_pos_max(memory, 0),
    ) != (0, len(tokens) - 1):
        llm.reset()
        llama_cpp.llama_memory_clear(memory, True)
        return False
    # What llama-cpp-python's own prefix matching (and `LocalModel.prime`) reads.
    llm.input_ids[: len(tokens)] = tokens
    llm.n_tokens = len(tokens)
    return True


def _state_path(model: LocalModel, tokens: Sequence[int], folder: Path | None) -> Path | None:
    try:
        return (folder or cache_folder()) / state_name(model, tokens)
    except (OSError, RuntimeError):
        # The model file went away (nothing to name the state by), or there is no home
        # folder to put the cache in (Path.home: no $HOME, uid not in passwd).
        return None


def prime_prefix(model: LocalModel, tokens: Sequence[int], folder: Path | None = None) -> str:
    """Put ``tokens`` in ``model``'s KV cache: from a saved state, else evaluated and saved.

    Args:
        model: a `LocalModel`; its KV cache is replaced (it should be fresh, as after
            loading; one that holds anything already is just primed as `LocalModel.prime`
            does).
        tokens: the leading tokens every prompt shares (`LocalModel.render_public`).
        folder: where states are saved (default `cache_folder`).

    Returns:
        `LOADED`, `SAVED` or `EVALUATED` (evaluated, but the state could not be saved).
        Never raises for a cache problem: a missing, damaged or foreign file, or a folder
        that cannot be written, only means the tokens are evaluated.
    """
    if not tokens:
        return EVALUATED
    with model.lock:
        path = _state_path(model, tokens, folder) if model.context_used == 0 else None
        state = _read(path) if path is not None else None
        if state is not None and _load_sequence(model.llm, tokens, state):
            return LOADED
        model.prime(tokens)
        if path is None or not _write(path, _state_of_sequence(model.llm)):
            return EVALUATED
        return SAVED


__all__ = ["EVALUATED", "LOADED", "MAX_BYTES", "SAVED", "cache_folder", "prime_prefix"]
