"""The panel's run history: one flat record per request, and the one-line texts shown for it."""

from __future__ import annotations

import datetime
import importlib
import threading
from typing import Any

from ._runner import RunResult

#: The columns of a history record, in the order `History.frame` shows them.
COLUMNS = (
    "run",
    "kind",
    "group",
    "prompt",
    "system",
    "model",
    "max_tokens",
    "temperature",
    "top_k",
    "top_p",
    "stop_sequences",
    "text",
    "outcome",
    "stop_reason",
    "error",
    "chars",
    "time_to_first_token",
    "elapsed",
    "response_model",
    "started",
)


def status_line(
    state: str,
    *,
    stop_reason: str | None = None,
    chars: int = 0,
    time_to_first_token: float | None = None,
    elapsed: float | None = None,
    usage: dict[str, int] | None = None,
) -> str:
    """``done · stop_sequence · 1,234 chars · first token 0.31 s · total 2.04 s``.

    With ``usage`` (token counts the server reported), ``12 in / 34 out tokens`` follows the
    characters.
    """
    from ...render import tokens_text

    parts = [state]
    if stop_reason:
        parts.append(stop_reason)
    parts.append(f"{chars:,} chars")
    tokens = tokens_text(usage)
    if tokens:
        parts.append(tokens)
    if time_to_first_token is not None:
        parts.append(f"first token {time_to_first_token:.2f} s")
    if elapsed is not None:
        parts.append(f"total {elapsed:.2f} s" if state != "running" else f"{elapsed:.1f} s")
    return " · ".join(parts)


def params_line(record: dict[str, Any]) -> str:
    """The sampling parameters of a record, compactly: ``T 0.5 · top_k – · top_p 0.9 · max 256``."""

    def opt(value: Any) -> str:
        return "–" if value is None else f"{value:g}"

    return (
        f"T {record['temperature']:g} · top_k {opt(record['top_k'])} · "
        f"top_p {opt(record['top_p'])} · max {record['max_tokens']}"
    )


def record_status(record: dict[str, Any]) -> str:
    """The status line a finished record had."""
    return status_line(
        record["outcome"],
        stop_reason=record["stop_reason"],
        chars=record["chars"],
        time_to_first_token=record["time_to_first_token"],
        elapsed=record["elapsed"],
    )


def label(record: dict[str, Any]) -> str:
    """The record's line in the history drop-down."""
    kind = "" if record["kind"] == "run" else f" {record['kind']} {record['group']}"
    end = record["stop_reason"] or record["outcome"]
    elapsed = "" if record["elapsed"] is None else f" · {record['elapsed']:.1f} s"
    return (
        f"#{record['run']}{kind} · {params_line(record)} · {end} · "
        f"{record['chars']:,} chars{elapsed}"
    )


class History:
    """Every run of a panel, oldest first, as flat JSON-safe dicts (see `COLUMNS`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[dict[str, Any]] = []
        self._groups = 0

    def new_group(self) -> int:
        """A number for the next compare, so its runs can be told apart."""
        with self._lock:
            self._groups += 1
            return self._groups

    def add(
        self,
        *,
        kind: str,
        prompt: str,
        settings: dict[str, Any],
        result: RunResult,
        started: datetime.datetime,
        group: int | None = None,
    ) -> dict[str, Any]:
        """Record one finished request; returns the record."""
        with self._lock:
            record: dict[str, Any] = {
                "run": len(self._records) + 1,
                "kind": kind,
                "group": group,
                "prompt": prompt,
                "system": settings["system"],
                "model": settings["model"],
                "max_tokens": settings["max_tokens"],
                "temperature": settings["temperature"],
                "top_k": settings["top_k"],
                "top_p": settings["top_p"],
                "stop_sequences": list(settings["stop_sequences"]),
                "text": result.text,
                "outcome": result.outcome,
                "stop_reason": result.stop_reason,
                "error": result.error,
                "chars": len(result.text),
                "time_to_first_token": result.time_to_first_token,
                "elapsed": result.elapsed,
                "response_model": result.model,
                "started": started.isoformat(timespec="seconds"),
            }
            self._records.append(record)
            return dict(record)

    def restore(self, records: list[dict[str, Any]]) -> None:
        """Replace the records by saved ones (`records` of another history, e.g. a record's).

        Missing keys become None; the run numbers are kept; the next compare gets a group
        number after the largest saved one.
        """
        rows = []
        for saved in records:
            row = {name: saved.get(name) for name in COLUMNS}
            row["stop_sequences"] = list(saved.get("stop_sequences") or [])
            row["chars"] = len(row["text"] or "") if row["chars"] is None else row["chars"]
            row["text"] = row["text"] or ""
            rows.append(row)
        with self._lock:
            self._records = rows
            self._groups = max([r["group"] or 0 for r in rows], default=0)

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        with self._lock:
            record = self._records[index]
        return {**record, "stop_sequences": list(record["stop_sequences"])}

    def records(self) -> list[dict[str, Any]]:
        """Copies of every record (changing them does not change the history)."""
        with self._lock:
            return [{**r, "stop_sequences": list(r["stop_sequences"])} for r in self._records]

    def options(self) -> list[tuple[str, int]]:
        """``(label, index)`` pairs for a drop-down, newest first."""
        with self._lock:
            return [(label(r), i) for i, r in reversed(list(enumerate(self._records)))]

    def frame(self) -> Any:
        """The records as a pandas DataFrame, one row per run (needs pandas)."""
        try:
            pd = importlib.import_module("pandas")  # optional: not a dependency
        except ImportError as err:
            raise ImportError(
                "history_frame() needs pandas (pip install pandas); "
                "panel.history gives the same records as a list of dicts."
            ) from err
        return pd.DataFrame(self.records(), columns=list(COLUMNS))
