"""Run a demo notebook headless and show its answers in the terminal.

::

    python scripts/run_notebook.py notebooks/01-quickstart.ipynb

``scripts/run.sh --headless`` runs this, and tests/test_notebooks.py uses `run_notebook`. It is
development tooling, so it lives in ``scripts/``, outside the wheel. The
notebook runs in a fresh ``python3`` kernel (nbclient), from its own folder, with
``ANTHROPIC_API_KEY`` and ``ANTHROPIC_BASE_URL`` removed from the kernel's environment, so it
always uses the built-in model. Cells tagged ``raises-exception`` may fail (they show an
error on purpose); any other failure is reported and makes the exit status 1.

Needs nbclient, nbformat and ipykernel (installed by ``scripts/setup.sh``); they are imported
only here, never by the package.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from jupyter_complete._constants import ENV_API_KEY, ENV_BASE_URL

#: The tag that allows a cell to fail (nbclient's own convention).
RAISES = "raises-exception"
#: The tag on cells whose printed output is a model's answer.
ANSWER = "answer"
#: Seconds a single cell may run.
DEFAULT_TIMEOUT = 120


@dataclasses.dataclass
class CellReport:
    """What one executed code cell produced."""

    index: int
    source: str
    tags: list[str]
    stdout: str
    stderr: str
    #: ``ename: evalue`` of each error output, plus the failure of the cell itself.
    errors: list[str]
    seconds: float
    #: The text/plain of the cell's display outputs (notes, footers), joined.
    displays: str = ""

    @property
    def allowed_to_fail(self) -> bool:
        """Tagged ``raises-exception``."""
        return RAISES in self.tags

    @property
    def failed(self) -> bool:
        """The cell raised (or showed an error output)."""
        return bool(self.errors)

    @property
    def is_completion(self) -> bool:
        """A ``%%complete``/``%complete`` cell that sends a prompt.

        Not ``--panel``, nor a command that sends nothing: ``--reset``, ``--keep``,
        ``--models``.
        """
        first = self.source.lstrip().split("\n", 1)[0]
        words = first.split()
        return first.startswith(("%%complete", "%complete")) and not any(
            w in words for w in ("--panel", "--reset", "--keep", "--models")
        )

    @property
    def is_answer(self) -> bool:
        """Its stdout is a model's answer: a completion cell, or tagged ``answer``."""
        return (self.is_completion or ANSWER in self.tags) and not self.allowed_to_fail


@dataclasses.dataclass
class NotebookRun:
    """A notebook executed by `run_notebook`."""

    path: Path
    cells: list[CellReport]
    seconds: float
    #: The failure that stopped the run (a cell not allowed to fail), if any.
    stopped_by: str | None = None

    @property
    def unexpected_errors(self) -> list[CellReport]:
        """Cells that failed without the ``raises-exception`` tag."""
        return [c for c in self.cells if c.failed and not c.allowed_to_fail]

    @property
    def answers(self) -> list[CellReport]:
        """Cells whose output is a model's answer, in order."""
        return [c for c in self.cells if c.is_answer]

    @property
    def ok(self) -> bool:
        """No unexpected failure, and every answer cell printed something."""
        return (
            self.stopped_by is None
            and not self.unexpected_errors
            and all(c.stdout.strip() for c in self.answers)
        )


def kernel_env() -> dict[str, str]:
    """This process's environment without the variables that would leave the built-in model."""
    return {k: v for k, v in os.environ.items() if k not in (ENV_API_KEY, ENV_BASE_URL)}


def _report(cell: Any, index: int, seconds: float, failure: str | None) -> CellReport:
    stdout: list[str] = []
    stderr: list[str] = []
    errors: list[str] = []
    displays: list[str] = []
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "display_data":
            displays.append(str(out.get("data", {}).get("text/plain", "")) + "\n")
        if kind == "stream":
            (stdout if out.get("name") == "stdout" else stderr).append(out.get("text", ""))
        elif kind == "error":
            errors.append(f"{out.get('ename')}: {out.get('evalue')}")
    if failure and not errors:
        errors.append(failure)
    return CellReport(
        index=index,
        source=str(cell.get("source", "")),
        tags=list(cell.get("metadata", {}).get("tags", [])),
        stdout="".join(stdout),
        stderr="".join(stderr),
        errors=errors,
        seconds=seconds,
        displays="".join(displays),
    )


def run_notebook(
    path: str | os.PathLike[str],
    *,
    timeout: int = DEFAULT_TIMEOUT,
    kernel_name: str = "python3",
    on_cell: Callable[[CellReport], None] | None = None,
) -> NotebookRun:
    """Execute the notebook at ``path`` in a fresh kernel; report every code cell.

    ``on_cell`` is called with each cell's report as soon as the cell has run. A cell that
    fails without the ``raises-exception`` tag stops the run (as *Run All* does), and the
    result says so in `NotebookRun.stopped_by`.
    """
    nbformat = importlib.import_module("nbformat")
    nbclient = importlib.import_module("nbclient")
    nb_path = Path(path).resolve()
    nb = nbformat.read(nb_path, as_version=4)
    reports: list[CellReport] = []
    started_at: dict[int, float] = {}

    def cell_start(cell: Any, cell_index: int) -> None:  # noqa: ARG001 (nbclient passes both by name)
        started_at[cell_index] = time.monotonic()

    def cell_executed(cell: Any, cell_index: int, execute_reply: Any) -> None:
        seconds = time.monotonic() - started_at.get(cell_index, time.monotonic())
        # The reply says whether the cell raised: a UsageError, for one, shows no error
        # output (IPython prints it to stderr), only an "error" status.
        content = (execute_reply or {}).get("content", {})
        failure = (
            f"{content.get('ename')}: {content.get('evalue')}"
            if content.get("status") == "error"
            else None
        )
        report = _report(cell, cell_index, seconds, failure)
        reports.append(report)
        if on_cell is not None:
            on_cell(report)

    client = nbclient.NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(nb_path.parent)}},
        on_cell_start=cell_start,
        on_cell_executed=cell_executed,
    )
    stopped_by = None
    began = time.monotonic()
    try:
        client.execute(env=kernel_env())
    except nbclient.exceptions.CellExecutionError as err:
        stopped_by = str(err).strip().splitlines()[-1] if str(err).strip() else repr(err)
    except nbclient.exceptions.CellTimeoutError as err:
        stopped_by = f"a cell ran longer than {timeout} s: {err}"
    return NotebookRun(nb_path, reports, time.monotonic() - began, stopped_by)


def _print_cell(out: TextIO) -> Callable[[CellReport], None]:
    def show(report: CellReport) -> None:
        first = report.source.strip().splitlines()[0] if report.source.strip() else ""
        if report.is_answer:
            out.write(f"\n\x1b[1m[{report.index}] {first}\x1b[0m  ({report.seconds:.1f} s)\n")
            out.write(report.stdout.rstrip() + "\n")
        if report.failed:
            note = "(expected)" if report.allowed_to_fail else "(UNEXPECTED)"
            out.write(f"\n[{report.index}] {first}\n  error {note}: {report.errors[0]}\n")
        out.flush()

    return show


def main(argv: Sequence[str] | None = None) -> int:
    """Run a notebook and print its answers; exit status 1 if it did not run cleanly."""
    parser = argparse.ArgumentParser(
        prog="python scripts/run_notebook.py",
        description="Execute a demo notebook headless and print its answers.",
    )
    parser.add_argument("notebook", help="path of the .ipynb to run")
    parser.add_argument(
        "--timeout",
        type=int,
        default=DEFAULT_TIMEOUT,
        help="seconds a single cell may run (default %(default)s)",
    )
    args = parser.parse_args(argv)
    out = sys.stdout
    out.write(f"running {args.notebook} with the built-in model (no key)...\n")
    out.flush()
    run = run_notebook(args.notebook, timeout=args.timeout, on_cell=_print_cell(out))
    empty = [c.index for c in run.answers if not c.stdout.strip()]
    out.write(
        f"\n{len(run.answers)} answers from {len(run.cells)} code cells in {run.seconds:.1f} s\n"
    )
    if run.stopped_by:
        out.write(f"stopped: {run.stopped_by}\n")
    if empty:
        out.write(f"cells with an empty answer: {empty}\n")
    return 0 if run.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
