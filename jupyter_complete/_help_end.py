"""Keeping IPython's help transformer off a ``%complete`` line that ends in ``?``.

IPython's help transformer (``HelpEnd``, priority 5) turns any line ending in ``?`` or ``??``
into ``%pinfo`` of its last word, so ``%complete What is a monad?`` would look up ``monad``.
`CompleteLineTransformer` runs first at the same place (priority 4) and makes the line the
same ``run_line_magic("complete", ...)`` call that IPython's escaped-command transformer
makes for any other ``%complete`` line. ``%complete?`` and ``%complete??`` (nothing but
question marks after the name) are left to IPython: they show the help. Which lines are
taken, and the call they become, are the pure rules of `jupyter_complete._magic_line`
(`question_start`, `run_call`); IPython's transformer API is documented at
https://ipython.readthedocs.io/en/stable/config/inputtransforms.html.
"""

from __future__ import annotations

import sys
from typing import Any

from IPython.core import inputtransformer2 as it2

from . import _magic_line as magic_line


class CompleteLineTransformer(it2.TokenTransformBase):  # type: ignore[misc]  # IPython skipped
    """The token transformer that sends ``%complete ...?`` to the magic (see the module)."""

    priority = 4

    @classmethod
    def find(cls, tokens_by_line: list[list[Any]]) -> Any:
        start = magic_line.question_start(tokens_by_line)
        return None if start is None else cls(start)

    def transform(self, lines: list[str]) -> list[str]:
        start_line, start_col = self.start_line, self.start_col
        indent = lines[start_line][:start_col]
        end_line = it2.find_end_of_continued_line(lines, start_line)
        line = it2.assemble_continued_line(lines, (start_line, start_col), end_line)
        call = magic_line.run_call(line)
        return [*lines[:start_line], indent + call + "\n", *lines[end_line + 1 :]]


def _transformers(ipython: Any) -> list[Any] | None:
    manager = getattr(ipython, "input_transformer_manager", None)
    transformers = getattr(manager, "token_transformers", None)
    return transformers if isinstance(transformers, list) else None


def install(ipython: Any) -> None:
    """Put `CompleteLineTransformer` first in ``ipython``'s token transformers (once).

    In the cell that runs the install, IPython already turned any ``%complete ...?`` line
    into help (it transforms a whole cell before running any of it): that cannot be undone,
    so this says so on stderr and asks the user to run the line again.
    """
    transformers = _transformers(ipython)
    if transformers is not None and CompleteLineTransformer not in transformers:
        transformers.insert(0, CompleteLineTransformer)
    history = getattr(getattr(ipython, "history_manager", None), "input_hist_raw", None)
    cell = history[-1] if history else ""
    if isinstance(cell, str) and magic_line.has_question_line(cell):
        sys.stderr.write(
            "jupyter_complete: a %complete line ending in ? in this cell was read by IPython "
            "as a help request before the extension was loaded; run that line again (in a "
            "new cell) to send it.\n"
        )


def uninstall(ipython: Any) -> None:
    """Remove `CompleteLineTransformer` from ``ipython``'s token transformers."""
    transformers = _transformers(ipython)
    if transformers is not None and CompleteLineTransformer in transformers:
        transformers.remove(CompleteLineTransformer)


__all__ = ["CompleteLineTransformer", "install", "uninstall"]
