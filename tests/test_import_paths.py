"""Every name a user could import from a public module before issue 17's refactor still imports.

The widgets moved under ``jupyter_complete.widgets``; notebooks and scripts written against the
earlier layout (``from jupyter_complete.panel import Panel``) keep working through the old
public paths, which re-export the same objects.
"""

from __future__ import annotations

import importlib

import pytest

#: (old public module, name) -> (module that defines it now, name).
MOVED = {
    ("jupyter_complete.panel", "Panel"): ("jupyter_complete.widgets.panel", "Panel"),
    ("jupyter_complete.panel", "COLUMNS"): ("jupyter_complete.widgets.panel", "COLUMNS"),
    ("jupyter_complete.panel", "StreamView"): ("jupyter_complete.widgets.panel", "StreamView"),
    ("jupyter_complete.panel", "parse_compare"): (
        "jupyter_complete.widgets.panel",
        "parse_compare",
    ),
    ("jupyter_complete.explorer", "Explorer"): ("jupyter_complete.widgets.explorer", "Explorer"),
    ("jupyter_complete.explorer", "Candidate"): (
        "jupyter_complete.widgets.explorer",
        "Candidate",
    ),
    ("jupyter_complete.explorer", "Step"): ("jupyter_complete.widgets.explorer", "Step"),
    ("jupyter_complete.explorer", "default_model"): (
        "jupyter_complete.widgets.explorer",
        "default_model",
    ),
}


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_a_name_imported_from_its_old_public_module_is_the_object_that_moved(
    old: tuple[str, str], new: tuple[str, str]
) -> None:
    before = getattr(importlib.import_module(old[0]), old[1])
    assert before is getattr(importlib.import_module(new[0]), new[1])


@pytest.mark.parametrize("module", sorted({old for old, _ in MOVED}))
def test_an_old_public_module_lists_what_it_re_exports(module: str) -> None:
    names = {name for old, name in MOVED if old == module}
    assert set(importlib.import_module(module).__all__) == names
