"""The panel's run history: one `RunRecord` per request, and the one-line texts shown for it."""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import threading
from typing import Any

from ...completion import Completion
from ...render import footer_text
from ._runner import RunResult

#: The settings a record keeps (and `jupyter_complete.widgets.panel.Panel.load` puts back).
SETTINGS = ("system", "model", "max_tokens", "temperature", "top_k", "top_p", "stop_sequences")


@dataclasses.dataclass
class RunRecord:
    """One request of a panel: its settings, what came back, and when (JSON-safe fields)."""

    #: 1 for the panel's first request.
    run: int
    #: ``"run"``, ``"compare"`` or ``"spread"``.
    kind: str
    #: The compare or spread it belongs to (None for a plain run).
    group: int | None
    #: The prompt as typed (before the wire form and any chat turns).
    prompt: str
    # The settings, as `SETTINGS` names them.
    system: str | None
    model: str | None
    max_tokens: int
    temperature: float
    top_k: int | None
    top_p: float | None
    stop_sequences: list[str]
    #: Everything received, and how it ended (see `RunResult`).
    text: str
    outcome: str
    stop_reason: str | None
    error: str | None
    chars: int
    #: Seconds, measured on our side.
    time_to_first_token: float | None
    elapsed: float | None
    #: The model the server reported.
    response_model: str | None
    #: When the request started, ISO 8601 UTC to the second.
    started: str


#: The keys of a history record, in the order `History.frame` shows them.
COLUMNS = tuple(field.name for field in dataclasses.fields(RunRecord))


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

    What follows the characters (``12 in / 34 out tokens`` when the server reported token
    counts, the first token, the total) is `jupyter_complete.render.footer_text`'s, so the
    panel words its measurements as ``%%complete`` does. While ``state`` is ``"running"``,
    ``elapsed`` is shown as ``1.2 s`` (no total yet).
    """
    running = state == "running"
    measured = Completion(
        completion="",
        model="-",
        stop_reason="-",
        usage=usage,
        time_to_first_token=time_to_first_token,
        elapsed=None if running else elapsed,
    )
    # footer_text: model · stop reason · chars · [tokens] · [first token] · [total]
    _, _, _, *measures = footer_text(measured).split(" · ", 3)
    parts = [state, *([stop_reason] if stop_reason else []), f"{chars:,} chars", *measures]
    if running and elapsed is not None:
        parts.append(f"{elapsed:.1f} s")
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
    """Every run of a panel, oldest first; handed out as flat JSON-safe dicts (see `COLUMNS`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RunRecord] = []
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
        received = result.completion
        with self._lock:
            record = RunRecord(
                run=len(self._records) + 1,
                kind=kind,
                group=group,
                prompt=prompt,
                **{name: settings[name] for name in SETTINGS},
                text=result.text,
                outcome=result.outcome,
                stop_reason=received.stop_reason,
                error=result.error,
                chars=len(result.text),
                time_to_first_token=received.time_to_first_token,
                elapsed=received.elapsed,
                response_model=received.model,
                started=started.isoformat(timespec="seconds"),
            )
            record.stop_sequences = list(record.stop_sequences)
            self._records.append(record)
            return dataclasses.asdict(record)

    def restore(self, records: list[dict[str, Any]]) -> None:
        """Replace the records by saved ones (`records` of another history, e.g. a record's).

        Missing keys become None; the run numbers are kept; the next compare gets a group
        number after the largest saved one.
        """
        rows = []
        for saved in records:
            values: dict[str, Any] = {name: saved.get(name) for name in COLUMNS}
            row = RunRecord(**values)
            row.stop_sequences = list(saved.get("stop_sequences") or [])
            row.chars = len(row.text or "") if row.chars is None else row.chars
            row.text = row.text or ""
            rows.append(row)
        with self._lock:
            self._records = rows
            self._groups = max([r.group or 0 for r in rows], default=0)

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        with self._lock:
            record = self._records[index]
        return dataclasses.asdict(record)

    def records(self) -> list[dict[str, Any]]:
        """Copies of every record (changing them does not change the history)."""
        with self._lock:
            return [dataclasses.asdict(r) for r in self._records]

    def options(self) -> list[tuple[str, int]]:
        """``(label, index)`` pairs for a drop-down, newest first."""
        with self._lock:
            rows = [(i, dataclasses.asdict(r)) for i, r in enumerate(self._records)]
        return [(label(r), i) for i, r in reversed(rows)]

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
