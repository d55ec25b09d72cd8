"""`UpstreamConfig`: which engine ``jupyter-complete serve --upstream URL`` talks to, and how.

Plain data, checked when it is created (the ``serve`` command builds one from its flags);
`jupyter_complete.local.upstream.UpstreamBackend` reads it.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Literal

UpstreamAPI = Literal["openai", "anthropic"]
UPSTREAM_APIS: tuple[UpstreamAPI, ...] = ("openai", "anthropic")


@dataclasses.dataclass(frozen=True)
class UpstreamConfig:
    """Where and how to reach the engine.

    Attributes:
        url: the engine's base URL (``http://127.0.0.1:8080``); ``/v1/...`` is appended, and
            a trailing ``/v1`` in it is accepted too.
        api: ``"openai"`` or ``"anthropic"`` (the protocol the engine is spoken to in).
        key_env: the environment variable holding the engine's API key, read once at
            start; the key goes only to ``url``'s host, as ``Authorization: Bearer`` for
            ``openai`` and ``x-api-key`` for ``anthropic``.
        model: the model name sent to the engine (default: the name each request gives).
        max_outstanding: requests in flight to the engine at once; past it, 529.
        connect_timeout, read_timeout: seconds (a read waits for the engine's next event).
    """

    url: str
    api: UpstreamAPI = "openai"
    key_env: str | None = None
    model: str | None = None
    max_outstanding: int = 64
    connect_timeout: float = 5.0
    read_timeout: float = 600.0

    def __post_init__(self) -> None:
        if self.api not in UPSTREAM_APIS:
            raise ValueError(
                f"upstream api must be one of {', '.join(UPSTREAM_APIS)}, not {self.api!r}"
            )
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"upstream URL must start with http:// or https://: {self.url!r}")
        if self.max_outstanding < 1:
            raise ValueError("max outstanding upstream requests must be at least 1")
        if self.key_env is not None and not os.environ.get(self.key_env):
            raise ValueError(
                f"the environment variable {self.key_env} named by --upstream-key-env is not set"
            )

    @property
    def base(self) -> str:
        """The URL without a trailing ``/`` or ``/v1``."""
        base = self.url.rstrip("/")
        return base[:-3] if base.endswith("/v1") else base


__all__ = ["UPSTREAM_APIS", "UpstreamAPI", "UpstreamConfig"]
