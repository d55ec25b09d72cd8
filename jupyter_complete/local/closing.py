"""`AsyncClosing`: ``async with`` for an object that has ``aclose`` (every backend's `Job`).

The `jupyter_complete.local.api.backend.Job` protocol asks each job to be an async context
manager whose exit calls its ``aclose``; the built-in model's and the upstream engine's
jobs take these two methods from here. (`contextlib.aclosing` would wrap a job at each use
instead of making it one.)
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from types import TracebackType

_Self = TypeVar("_Self", bound="AsyncClosing")


class AsyncClosing(abc.ABC):
    """A base class: ``async with obj:`` gives ``obj`` and awaits ``obj.aclose()`` on exit."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Stop and free what the object holds (idempotent)."""

    async def __aenter__(self: _Self) -> _Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


__all__ = ["AsyncClosing"]
