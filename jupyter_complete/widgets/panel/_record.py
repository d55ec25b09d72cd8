"""The panel's static record: its prompt, last answer, comparison and history as plain HTML.

See `jupyter_complete.record` for how it is shown, kept current and read back.
"""

from __future__ import annotations

from typing import Any

from ...record import bundle, esc, pre
from ._history import label, params_line

#: Characters of each answer shown in the history table of the record.
EXCERPT = 120


def _settings_line(settings: dict[str, Any]) -> str:
    parts = [f"model {settings.get('model') or 'server default'}", params_line(settings)]
    stops = settings.get("stop_sequences") or []
    if stops:
        parts.append("stop " + ", ".join(repr(s) for s in stops))
    if settings.get("system"):
        parts.append(f"system {settings['system']!r}")
    return " · ".join(parts)


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT else flat[: EXCERPT - 1] + "…"


def panel_html(record_id: str, state: dict[str, Any]) -> str:
    """The record's HTML body (every piece of text escaped)."""
    settings = state["settings"]
    out = state.get("output") or {}
    parts = [
        f'<div><b>Completion panel</b> <span class="jc-r-note">(saved record '
        f"<code>{esc(record_id)}</code>; with a kernel running, "
        f"<code>Panel.restore(&quot;{esc(record_id)}&quot;)</code> brings the panel back)"
        "</span></div>",
        f"<div><b>prompt</b></div>{pre(str(state.get('prompt', '')))}",
        f'<div class="jc-r-note">{esc(_settings_line(settings))}</div>',
    ]
    if out.get("text") or out.get("label"):
        parts.append(f"<div><b>{esc(out.get('label') or 'answer')}</b></div>")
        parts.append(pre(str(out.get("text") or "")))
    if out.get("status"):
        parts.append(f'<div class="jc-r-note">{esc(out["status"])}</div>')
    if out.get("error"):
        parts.append(f'<div style="color:#c62828">⚠ {esc(out["error"])}</div>')
    columns = state.get("compare") or []
    if columns:
        cells = []
        for column in columns:
            error = (
                f'<br><span style="color:#c62828">{esc(column["error"])}</span>'
                if column.get("error")
                else ""
            )
            cells.append(
                f"<div><b>{esc(column['title'])}</b><br><small>"
                f"{esc(params_line(column['settings']))}</small>{pre(str(column['text']))}"
                f"<small>{esc(column.get('status') or '')}{error}</small></div>"
            )
        parts.append(f'<div class="jc-r-cols">{"".join(cells)}</div>')
    spread = state.get("spread")
    if spread:
        parts.append(_spread_html(spread))
    history = state.get("history") or []
    if history:
        rows = ["<tr><th>run</th><th>settings and outcome</th><th>answer</th></tr>"]
        for record in reversed(history):
            rows.append(
                f"<tr><td>#{esc(record['run'])}</td><td>{esc(label(record).split(' · ', 1)[1])}"
                f"</td><td>{esc(_excerpt(record['text'] or ''))}</td></tr>"
            )
        parts.append(
            f"<details><summary>history ({len(history)} run{'s' * (len(history) != 1)})"
            f"</summary><table>{''.join(rows)}</table></details>"
        )
    return "".join(parts)


def _spread_html(data: dict[str, Any]) -> str:
    """The last "n samples per setting" result.

    Its table and chart (PNG), as `spread` shows it; a note if the saved data cannot be
    read.
    """
    from ...sweep import SpreadResult, result_html

    try:
        result = SpreadResult.from_dict(data)
    except ValueError as err:
        return f'<div class="jc-r-note">(n samples per setting: {esc(str(err))})</div>'
    return "<div><b>n samples per setting</b></div>" + result_html(result)


def panel_plain(record_id: str, state: dict[str, Any]) -> str:
    """The record as text (terminals; front ends without HTML)."""
    out = state.get("output") or {}
    lines = [f"Completion panel (record {record_id}, {len(state.get('history') or [])} runs)"]
    if out.get("text"):
        lines.append(f"{out.get('label') or 'answer'}:")
        lines.append(str(out["text"]))
    for column in state.get("compare") or []:
        lines.append(f"-- {column['title']}: {column['text']}")
    spread = state.get("spread")
    if spread:
        lines.append(
            f"-- n samples per setting: {spread.get('parameter')} "
            f"{spread.get('values')}, {spread.get('n')} each"
        )
    return "\n".join(lines)


def panel_bundle(record_id: str, state: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """``(data, metadata)`` of the panel's record output."""
    return bundle(
        record_id, "panel", panel_html(record_id, state), panel_plain(record_id, state), state
    )
