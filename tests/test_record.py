"""The widgets' static records: HTML kept current when a run ends, read back from a saved file.

Headless tests drive a `Panel` against the replay server; the notebook tests execute a real
notebook with nbclient (a real kernel), save it, convert it with nbconvert, and restore the
panel from the saved file in a second kernel.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures_panel import paced_script, wait_until
from fixtures_replay import ReplayServer

from jupyter_complete import Client
from jupyter_complete.record import find_record, records
from jupyter_complete.render import METADATA_KEY
from jupyter_complete.widgets.panel import Panel


@pytest.fixture
def panels() -> Iterator[list[Panel]]:
    made: list[Panel] = []
    yield made
    for panel in made:
        panel.close()
        assert panel.wait(5)


def make(server: ReplayServer, made: list[Panel], prompt: str = "Name a colour.") -> Panel:
    panel = Panel(prompt, client=Client(base_url=server.url, api_key="k", max_retries=0))
    made.append(panel)
    return panel


def test_the_record_holds_the_answer_comparison_and_history_escaped(
    replay: ReplayServer, panels: list[Panel]
) -> None:
    replay.enqueue(
        paced_script([" Blue <b>&", " green."]), paced_script([" Red."]), paced_script([" Cyan."])
    )
    panel = make(replay, panels, "Colours <please>")
    panel.run()
    assert panel.wait(30)
    panel.compare(temperatures=[0, 1])
    assert panel.wait(30)
    data, meta = panel.record_bundle()
    page = data["text/html"]
    assert "Blue &lt;b&gt;&amp; green." in page and "<b>&" not in page
    assert "Colours &lt;please&gt;" in page
    assert "compare 1 · temperature 0" in page and "compare 1 · temperature 1" in page
    assert " Red." in page and " Cyan." in page
    assert "history (3 runs)" in page
    # The earlier single answer is labelled as such while the compare is shown.
    assert "earlier answer (run #1" in page
    assert "Blue <b>& green." in data["text/plain"]
    entry = meta[METADATA_KEY]
    assert entry["record"] == "panel" and entry["id"] == panel.record.id
    json.dumps(meta)  # JSON-safe, as notebook metadata must be
    # A live-widget class on the panel hides the record while the panel is on the page.
    assert f"jc-live-{panel.record.id}" in panel.widget._dom_classes
    assert f"body:has(.jc-live-{panel.record.id})" in page


def test_from_record_rebuilds_the_panel_without_sending_anything(
    replay: ReplayServer, panels: list[Panel]
) -> None:
    replay.enqueue(paced_script([" One", " answer."]), paced_script([" A."]), paced_script([" B."]))
    panel = make(replay, panels)
    panel.settings.temperature = 0.3
    panel.settings.top_k = 7
    panel.settings.stop_sequences = ["\n\n"]
    panel.run()
    assert panel.wait(30)
    panel.compare(samples=2)
    assert panel.wait(30)
    state = json.loads(json.dumps(panel.to_state()))  # as read back from a saved file
    sent = len(replay.received)
    back = Panel.from_record(state, client=Client(base_url=replay.url, api_key="k"))
    panels.append(back)
    assert len(replay.received) == sent
    assert back.text == " One answer."
    assert back.settings.to_dict() == panel.settings.to_dict()
    assert back.top_k_slider.value == 7 and back.top_k_check.value
    assert back.history == panel.history
    assert [c.view.text for c in back.compare_grid.columns] == [" A.", " B."]
    assert [c.title for c in back.compare_grid.columns] == [
        c.title for c in panel.compare_grid.columns
    ]
    assert back.to_state() == state
    # The restored panel runs like any other, and its history goes on from the saved one.
    replay.enqueue(paced_script([" Again."]))
    back.run()
    assert back.wait(30)
    assert [r["run"] for r in back.history] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="panel state"):
        Panel.from_record({"nope": 1})


@pytest.mark.parametrize(
    ("part", "state"),
    [
        ("settings", {"prompt": "x", "settings": []}),
        ("settings", {"prompt": "x", "settings": {"max_tokens": -5}}),
        ("settings", {"prompt": "x", "settings": {"temperature": "hot"}}),
        ("history", {"prompt": "x", "settings": {}, "history": "abc"}),
        ("history", {"prompt": "x", "settings": {}, "history": [5]}),
        ("history", {"prompt": "x", "settings": {}, "history": [{"run": 1, "text": 5}]}),
        ("history", {"prompt": "x", "settings": {}, "history": [{"run": 1}]}),
        ("output", {"prompt": "x", "settings": {}, "output": [1]}),
        ("compare", {"prompt": "x", "settings": {}, "compare": [{"text": "a"}]}),
        ("compare", {"prompt": "x", "settings": {}, "compare": 5}),
    ],
)
def test_a_tampered_record_gives_one_line_naming_the_part_not_a_crash(
    part: str, state: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match=f"saved '{part}' is not what") as caught:
        Panel.from_record(state)
    assert "\n" not in str(caught.value)


def test_restore_from_a_hand_edited_notebook_skips_odd_entries_or_says_it_is_no_notebook(
    tmp_path: Path,
) -> None:
    def saved(metadata: list[Any]) -> Path:
        path = tmp_path / "edited.ipynb"
        outputs = [{"output_type": "display_data", "data": {}, "metadata": m} for m in metadata]
        path.write_text(
            json.dumps(
                {
                    "cells": [
                        {"cell_type": "code", "outputs": outputs},
                        {"cell_type": "code", "outputs": {"x": 1}},
                        "not a cell",
                    ]
                }
            )
        )
        return path

    state = {"prompt": "kept", "settings": {}}
    odd = saved(
        [
            {METADATA_KEY: {"record": "panel", "id": 5, "state": state}},
            {METADATA_KEY: {"record": "panel", "state": state}},
            "not metadata",
        ]
    )
    with pytest.raises(LookupError, match="no saved panel record 'abc'"):
        Panel.restore("abc", notebook=str(odd))
    good = saved([{METADATA_KEY: {"record": "panel", "id": "abc", "state": state}}])
    panel = Panel.restore("abc", notebook=str(good))
    assert panel.prompt_box.value == "kept"
    panel.close()
    for text in ("[1, 2]", '{"cells": 5}'):
        good.write_text(text)
        with pytest.raises(ValueError, match="is not a notebook"):
            records(good)
    good.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(ValueError, match="is not a notebook"):
        records(good)


def test_the_record_output_is_updated_in_place_when_a_run_ends(
    replay: ReplayServer, panels: list[Panel], monkeypatch: pytest.MonkeyPatch
) -> None:
    from IPython import display

    shown: list[tuple[str, Any]] = []
    monkeypatch.setattr(display, "display", lambda obj, **kw: shown.append(("display", (obj, kw))))
    monkeypatch.setattr(
        display, "update_display", lambda obj, **kw: shown.append(("update", (obj, kw)))
    )
    replay.enqueue(paced_script([" Shown", " later."]))
    panel = make(replay, panels)
    panel._ipython_display_()
    assert [k for k, _ in shown] == ["display", "display"]
    view = shown[0][1][0]
    assert view["application/vnd.jupyter.widget-view+json"]["model_id"] == panel.widget.model_id
    assert view["text/plain"].startswith("[panel widget")
    record_id = shown[1][1][1]["display_id"]
    assert record_id == panel.record.display_id
    panel.run()
    assert panel.wait(30)
    assert wait_until(lambda: any(k == "update" for k, _ in shown))
    kind, (data, kw) = shown[-1]
    assert kind == "update" and kw["display_id"] == record_id and kw["raw"]
    assert " Shown later." in data["text/html"]
    assert kw["metadata"][METADATA_KEY]["state"]["output"]["text"] == " Shown later."


# -- a real notebook: executed, saved, converted, restored ----------------------------------

NOTEBOOK_CELLS = [
    "import sys\nfrom jupyter_complete import Client, Panel\n"
    "client = Client(base_url={url!r}, api_key='k', max_retries=0)\n"
    "panel = Panel('Write <one> word.', client=client)\npanel",
    "panel.run(); assert panel.wait(60)\npanel.compare(temperatures=[0, 1]); assert panel.wait(60)",
]


def _execute_notebook(replay: ReplayServer, path: Path) -> Any:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(c.format(url=replay.url)) for c in NOTEBOOK_CELLS]
    # Widget state is not saved (JupyterLab's default): the record must stand on its own.
    nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", store_widget_state=False
    ).execute(cwd=str(path.parent))
    nbformat.write(nb, str(path))
    return nb


@pytest.mark.kernel
def test_a_saved_notebook_keeps_the_panels_record_and_nbconvert_shows_it(
    replay: ReplayServer, tmp_path: Path
) -> None:
    pytest.importorskip("nbconvert")
    replay.enqueue(
        paced_script([" Saved", " <answer>."]), paced_script([" Cold."]), paced_script([" Hot."])
    )
    path = tmp_path / "saved.ipynb"
    nb = _execute_notebook(replay, path)
    outputs = nb.cells[0].outputs
    # The widget view, then the record (updated by the runs of the second cell).
    assert "application/vnd.jupyter.widget-view+json" in outputs[0]["data"]
    record = outputs[1]
    assert " Saved &lt;answer&gt;." in record["data"]["text/html"]
    assert " Cold." in record["data"]["text/html"] and " Hot." in record["data"]["text/html"]
    [entry] = records(path)
    assert entry["record"] == "panel" and len(entry["state"]["history"]) == 3

    from nbconvert import HTMLExporter

    page, _ = HTMLExporter().from_filename(str(path))
    assert " Saved &lt;answer&gt;." in page
    assert "compare 1 · temperature 0" in page and " Hot." in page
    assert "history (3 runs)" in page
    # The widget's own output falls back to one short line, not a repr of the widget tree.
    assert "VBox(children" not in page and "live in a running kernel" in page
    # The widget's own output falls back to one short line, not a repr of the widget tree.
    assert "VBox(children" not in page and "live in a running kernel" in page


@pytest.mark.kernel
def test_a_reopened_notebook_restores_the_panel_from_its_saved_record(
    replay: ReplayServer, tmp_path: Path
) -> None:
    from fixtures_kernel import kernel_env, running_kernel

    replay.enqueue(
        paced_script([" Kept", " answer."]), paced_script([" T0."]), paced_script([" T1."])
    )
    path = tmp_path / "reopen.ipynb"
    _execute_notebook(replay, path)
    record_id = records(path)[0]["id"]
    assert find_record("panel", record_id, path)["output"]["text"] == " Kept answer."
    # A new kernel that knows its notebook as Jupyter Server tells it (JPY_SESSION_NAME).
    with running_kernel(kernel_env({"JPY_SESSION_NAME": str(path)})) as kernel:
        run = kernel.execute(
            "from jupyter_complete import Panel\n"
            f"p = Panel.restore({record_id!r})\n"
            "import json; print(json.dumps([p.text, len(p.history), "
            "[c.view.text for c in p.compare_grid.columns]]))"
        )
        assert run.status == "ok", run.error_text
        assert json.loads(run.stream_text()) == [" Kept answer.", 3, [" T0.", " T1."]]
        missing = kernel.execute("Panel.restore('00000000')")
        assert missing.status == "error" and "no saved panel record" in missing.error_text


def test_a_panel_state_saved_before_the_widgets_moved_loads_and_saves_back_unchanged() -> None:
    # Written by Panel.to_state() at commit 5cb84db (0.1.0, before issue 17's refactor moved
    # the panel under widgets/): a run, then a compare of two samples, against the replay server.
    saved_file = Path(__file__).parent / "data" / "panel_state_0.1.0.json"
    state = json.loads(saved_file.read_text(encoding="utf-8"))
    back = Panel.from_record(state)
    try:
        assert back.text == " One answer."
        assert [c.view.text for c in back.compare_grid.columns] == [" A.", " B."]
        assert back.settings.temperature == 0.3 and back.settings.top_k == 7
        assert back.settings.stop_sequences == ["\n\n"]
        assert [r["run"] for r in back.history] == [1, 2, 3]
        assert back.to_state() == state
    finally:
        back.close()
        assert back.wait(5)
