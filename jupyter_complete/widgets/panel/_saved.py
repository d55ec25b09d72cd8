"""`SavedPanel`: the panel as JSON-safe state, for its static record and for `from_record`.

A saved notebook has no live widgets, so each panel keeps a static HTML record after itself
(`jupyter_complete.record`) whose metadata holds `SavedPanel.to_state`. `settings_from_state`
and `SavedPanel._restore` read that state back into a new panel, part by part, turning a
malformed part into one ValueError line that names it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from traitlets import TraitError

from ...settings import CompletionSettings
from ...sweep import SpreadResult
from ._record import panel_bundle
from ._view import PanelView

log = logging.getLogger("jupyter_complete")


@contextlib.contextmanager
def _state_part(part: str) -> Iterator[None]:
    """Turn a failure to read ``part`` of a saved panel state into one ValueError line."""
    try:
        yield
    except (TypeError, ValueError, KeyError, AttributeError, TraitError) as err:
        what = f"missing key {err}" if isinstance(err, KeyError) else str(err).splitlines()[0]
        raise ValueError(
            f"from_record(): the saved {part!r} is not what Panel.to_state() writes ({what}); "
            "was the record edited by hand?"
        ) from None


def settings_from_state(state: Any) -> CompletionSettings:
    """The settings of a saved panel state (`SavedPanel.to_state`'s dict).

    Raises:
        ValueError: ``state`` is not a dict with ``prompt`` and ``settings``, or a saved
            setting is refused.
    """
    if not isinstance(state, dict) or "settings" not in state or "prompt" not in state:
        raise ValueError(
            "from_record() takes a panel state: a dict with 'prompt' and "
            "'settings' (Panel.to_state(), or a record's metadata 'state')"
        )
    with _state_part("settings"):
        settings = CompletionSettings()
        for name, value in state["settings"].items():
            if name in (*CompletionSettings.PARAMS, "system"):
                setattr(settings, name, value)
    return settings


class SavedPanel(PanelView):
    """What a panel saves in its record, and how a new panel shows a saved one."""

    def to_state(self) -> dict[str, Any]:
        """What the panel shows, as JSON-safe data (what its record saves; see `from_record`).

        Keys: ``prompt``, ``settings`` (`CompletionSettings.to_dict`), ``history`` (the
        records of `history`), ``output`` (``text``, ``label``, ``status``, ``error``) and
        ``compare`` (one dict per column: ``title``, ``settings``, ``text``, ``status``,
        ``error``; empty before the first compare) and ``spread`` (the last "n samples per
        setting" result, `SpreadResult.to_dict` without its figures; None before the first).
        """
        shown = self.spread_view.result
        return {
            "prompt": str(self.prompt_box.value),
            "settings": self.settings.to_dict(),
            "history": self._history.records(),
            "output": {
                "text": self.output.text,
                "label": self._answer_label_text,
                "status": self._status_text,
                "error": self._error_text,
            },
            "compare": [column.to_state() for column in self.compare_grid.columns],
            "spread": None
            if shown is None
            else {k: v for k, v in shown.to_dict().items() if k != "stats"},
        }

    def record_bundle(self) -> tuple[dict[str, str], dict[str, Any]]:
        """The record's MIME bundle (text/html, text/plain) and metadata, as of now."""
        return panel_bundle(self.record.id, self.to_state())

    def _refresh_record(self) -> None:
        try:
            self.record.update(*self.record_bundle())
        except Exception:  # noqa: BLE001 - the live panel must keep working without it
            log.exception("panel record update failed")

    def _restore(self, state: dict[str, Any]) -> None:
        """Show a saved state's history, last answer, compare and samples (nothing re-runs).

        Raises:
            ValueError: a part is not what `to_state` writes; the panel is closed.
        """
        try:
            with _state_part("history"):
                self._history.restore(state.get("history") or [])
                self._show_history()
            with _state_part("output"):
                output = state.get("output") or {}
                if output.get("text"):
                    self.output.set_text(str(output["text"]))
                self._set_answer_label(str(output.get("label") or ""))
                self._set_status(str(output.get("status") or "idle"))
                error = output.get("error")
                self._show_error(None if error is None else str(error))
            with _state_part("compare"):
                columns = state.get("compare") or []
                if columns:
                    views = self.compare_grid.reset(
                        [(str(c["title"]), {}, c["settings"]) for c in columns]
                    )
                    for view, column in zip(views, columns, strict=True):
                        view.restore(column)
            with _state_part("spread"):
                if state.get("spread"):
                    restored = SpreadResult.from_dict(state["spread"])
                    self._spreads.append(restored)
                    self.spread_view.show(restored, final=True)
            with _state_part("state"):
                self.record_bundle()  # everything restored can be shown in the record
        except ValueError:
            self.close()
            raise
