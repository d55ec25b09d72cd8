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
    # The p-value moved out with the chi-square fit; sampling listed it in __all__.
    ("jupyter_complete.sampling", "chi_square_p_value"): (
        "jupyter_complete.goodness_of_fit",
        "chi_square_p_value",
    ),
}
#: Old modules that are now only an import path for what moved out of them.
FORWARDERS = ("jupyter_complete.explorer", "jupyter_complete.panel")


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_a_name_imported_from_its_old_public_module_is_the_object_that_moved(
    old: tuple[str, str], new: tuple[str, str]
) -> None:
    before = getattr(importlib.import_module(old[0]), old[1])
    assert before is getattr(importlib.import_module(new[0]), new[1])


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_an_old_public_module_still_lists_the_name_it_re_exports(
    old: tuple[str, str], new: tuple[str, str]
) -> None:
    assert old[1] in importlib.import_module(old[0]).__all__


@pytest.mark.parametrize("module", FORWARDERS)
def test_an_old_module_kept_as_an_import_path_lists_only_what_it_re_exports(module: str) -> None:
    names = {name for old, name in MOVED if old == module}
    assert set(importlib.import_module(module).__all__) == names
