"""Static records of the widgets: what a saved notebook shows when no kernel is running.

A widget's view in an output (``application/vnd.jupyter.widget-view+json``) needs its model,
which lives in the kernel. In a notebook saved without widget state, JupyterLab and Notebook 7
show "Error displaying widget: model not found", and GitHub, nbviewer and
``jupyter nbconvert --to html`` show nothing useful (nbconvert skips a widget view whose state
is not saved, `nbconvert.filters.WidgetsDataTypeFilter`). So each panel and explorer also puts a
second output right after its widget: a plain HTML record of what it shows (the answers, the
comparison, the history; the explorer's text, chart and steps), with a ``display_id`` so that
it is replaced (``update_display_data``) each time a run ends. Front ends route that update to
the output by its id, whatever cell or thread sends it.

While the live widget is on the page the record would repeat it, so the record carries a CSS
rule that hides it exactly then: ``body:has(.jc-live-ID) .jc-record-ID {display: none}``. With
the widget gone (a saved notebook reopened, a closed widget, nbconvert, nbviewer, GitHub, which
strips styles), the record shows, and a second rule hides the widget's output just before it
(JupyterLab's "Error displaying widget: model not found"). An untrusted notebook drops
``<style>`` elements: then both show.

The record's metadata (``{"jupyter_complete": {"record": "panel", "id": ..., "state": {...}}}``)
holds the widget's state as JSON, so ``Panel.restore(ID)`` in a reopened notebook with a running
kernel rebuilds the panel from the saved file (`find_record`), and ``Panel.from_record(state)``
from a dict.

HTML escaping: `html.escape` on every piece of text.
"""

from __future__ import annotations

import html
import json
import os
import secrets
from pathlib import Path
from typing import Any

from .render import METADATA_KEY

#: Version of the record's ``state`` layout.
RECORD_VERSION = 1


def new_id() -> str:
    """A short random id naming one widget's record (8 hex digits)."""
    return secrets.token_hex(4)


def live_class(record_id: str) -> str:
    """The CSS class the live widget carries, so its record can hide while it is shown."""
    return f"jc-live-{record_id}"


def _style(record_id: str) -> str:
    rid = html.escape(record_id)
    live = f"body:has(.jc-live-{rid})"
    return (
        "<style>"
        f"{live} .jp-OutputArea-child:has(.jc-record-{rid}),{live} .jc-record-{rid}"
        "{display:none}"
        # No live widget (its model is gone): hide the widget's own output, which says only
        # "Error displaying widget: model not found", and let the record speak.
        f".jp-OutputArea-child:has(+ .jp-OutputArea-child .jc-record-{rid})"
        f":not(:has(.jc-live-{rid})){{display:none}}"
        ".jc-record{font-size:13px;line-height:1.4;max-width:100%;overflow-x:auto}"
        ".jc-record pre{white-space:pre-wrap;word-break:normal;overflow-wrap:anywhere;"
        "margin:2px 0;padding:4px 6px;border:1px solid #ddd;max-height:24em;overflow-y:auto}"
        ".jc-record table{border-collapse:collapse;font-size:12px}"
        ".jc-record td,.jc-record th{padding:1px 6px;text-align:left;vertical-align:top;"
        "border-bottom:1px solid #eee}"
        ".jc-record .jc-r-cols{display:flex;flex-wrap:wrap;gap:8px}"
        ".jc-record .jc-r-cols>div{flex:1 1 14em;min-width:0}"
        ".jc-record .jc-r-note{color:#777;font-size:90%}"
        "</style>"
    )


def bundle(
    record_id: str, kind: str, body_html: str, plain: str, state: dict[str, Any]
) -> tuple[dict[str, str], dict[str, Any]]:
    """The record's MIME bundle and metadata.

    Args:
        record_id: from `new_id`; names the CSS classes and the metadata entry.
        kind: ``"panel"`` or ``"explorer"``.
        body_html: the record's HTML, every text already escaped.
        plain: the text/plain form (terminals, GitHub's fallback).
        state: JSON-safe state to restore the widget from.

    Returns ``(data, metadata)`` for ``display(data, raw=True, metadata=...)``.
    """
    rid = html.escape(record_id)
    data = {
        "text/plain": plain,
        "text/html": (
            f'{_style(record_id)}<div class="jc-record jc-record-{rid}" '
            f'data-jc-record="{html.escape(kind)}" data-jc-id="{rid}">{body_html}</div>'
        ),
    }
    meta = {
        METADATA_KEY: {"record": kind, "id": record_id, "version": RECORD_VERSION, "state": state}
    }
    json.dumps(meta)  # fail here, not in the front end, if something is not JSON-safe
    return data, meta


class LiveRecord:
    """The record output of one widget: shown once after the widget, then updated in place."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.id = new_id()
        self.display_id = f"jupyter_complete-{kind}-{self.id}"
        self._shown = False

    def show(self, widget: Any, data: dict[str, str], metadata: dict[str, Any]) -> None:
        """Display ``widget`` and, right after it, the record (with this display id).

        The widget's text/plain is a short line instead of ipywidgets' repr of the widget
        tree (which nbconvert, nbviewer and GitHub would print, having no widget model).
        """
        from IPython import display

        show: Any = display.display  # untyped in IPython
        view = dict(widget._repr_mimebundle_())
        view["text/plain"] = (
            f"[{self.kind} widget {self.id}: live in a running kernel; its saved record follows]"
        )
        show(view, raw=True)
        show(data, raw=True, metadata=metadata, display_id=self.display_id)
        self._shown = True

    def update(self, data: dict[str, str], metadata: dict[str, Any]) -> None:
        """Replace every shown copy of the record (no-op before the first `show`)."""
        if not self._shown:
            return
        from IPython import display

        update: Any = display.update_display  # untyped in IPython
        update(data, raw=True, metadata=metadata, display_id=self.display_id)


# -- reading records back from a saved notebook ------------------------------------------------


def notebook_path(namespace: dict[str, Any] | None = None) -> Path:
    """The path of the running notebook, as Jupyter Server tells the kernel.

    Jupyter Server 2 starts the kernel with ``JPY_SESSION_NAME`` (the notebook's path) and
    ipykernel puts it in the user namespace as ``__session__``. Raises `FileNotFoundError`
    with what to pass instead when neither is there (a console, an old server).
    """
    name = None
    if namespace is not None:
        name = namespace.get("__session__")
    name = name or os.environ.get("JPY_SESSION_NAME")
    if not name or not str(name).endswith(".ipynb"):
        raise FileNotFoundError(
            "cannot tell which notebook this kernel runs (no __session__ / JPY_SESSION_NAME); "
            "pass notebook='path/to/file.ipynb'"
        )
    return Path(str(name))


def records(notebook: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every widget record in a saved notebook, in cell order.

    Each is the metadata entry: ``{"record": "panel" | "explorer", "id": ..., "version": 1,
    "state": {...}}``; entries of another shape are skipped. Raises `FileNotFoundError`, or
    `ValueError` if the file is not a JSON notebook.
    """
    path = Path(notebook)
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a notebook (not JSON: {err})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise ValueError(f"{path} is not a notebook (no list of cells)")
    found = []
    # Anything not shaped like nbformat 4 (a hand-edited file) is skipped, not a crash.
    for cell in nb["cells"]:
        outputs = cell.get("outputs") if isinstance(cell, dict) else None
        for output in outputs if isinstance(outputs, list) else []:
            metadata = output.get("metadata") if isinstance(output, dict) else None
            entry = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
            if (
                isinstance(entry, dict)
                and isinstance(entry.get("record"), str)
                and isinstance(entry.get("id"), str)
                and isinstance(entry.get("state"), dict)
            ):
                found.append(entry)
    return found


def find_record(
    kind: str,
    record_id: str | None = None,
    notebook: str | os.PathLike[str] | None = None,
    namespace: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The saved state of the ``kind`` widget ``record_id`` (None: the last one in the file).

    Raises `LookupError` naming the ids found when there is no such record.
    """
    path = Path(notebook) if notebook is not None else notebook_path(namespace)
    entries = [e for e in records(path) if e["record"] == kind]
    if record_id is not None:
        entries = [e for e in entries if e.get("id") == record_id]
    if not entries:
        ids = ", ".join(e["id"] for e in records(path) if e["record"] == kind) or "none"
        wanted = f" {record_id!r}" if record_id else ""
        raise LookupError(
            f"no saved {kind} record{wanted} in {path} (ids found: {ids}); save the notebook "
            "after the run, or pass the id shown under the record"
        )
    state: dict[str, Any] = entries[-1]["state"]
    return state


def esc(text: object) -> str:
    """``html.escape(str(text))``."""
    return html.escape(str(text))


def pre(text: str) -> str:
    """Text in a wrapping ``<pre>`` (escaped)."""
    return f"<pre>{html.escape(text)}</pre>"


__all__ = [
    "RECORD_VERSION",
    "LiveRecord",
    "bundle",
    "esc",
    "find_record",
    "live_class",
    "new_id",
    "notebook_path",
    "pre",
    "records",
]
