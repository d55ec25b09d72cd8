"""Shared pytest set-up. Fixtures live in one plugin module per area, so they stay small."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

pytest_plugins = [
    "fixtures_replay",
    "fixtures_local",
    "fixtures_faults",
    "fixtures_kernel",
    "fixtures_panel",
    "fixtures_browser",
    "fixtures_attacks",
    "fixtures_upstream",
]


@pytest.fixture(scope="session", autouse=True)
def _private_cache_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Point ``JUPYTER_COMPLETE_CACHE`` at a folder of the session's own (kernels and servers
    started by the tests inherit it), so the user's cache is neither read nor written."""
    from fixtures_upstream import ENV_LLAMA_SERVER, llama_server_path

    saved = {name: os.environ.get(name) for name in ("JUPYTER_COMPLETE_CACHE", ENV_LLAMA_SERVER)}
    # The llama-server build stays where scripts/build_llama_server.sh cached it.
    os.environ[ENV_LLAMA_SERVER] = str(llama_server_path())
    os.environ["JUPYTER_COMPLETE_CACHE"] = str(tmp_path_factory.mktemp("jupyter_complete_cache"))
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
