"""Browser fixtures: JupyterLab on loopback and Debian's chromium driven by Playwright.

Tests using them are marked ``@pytest.mark.browser`` and skipped when ``/usr/bin/chromium``
or the ``playwright`` package is missing (never ``playwright install``: the system chromium is
used). See docs/browser-testing.md in the shared docs for the pitfalls these avoid.

Usage::

    @pytest.mark.browser
    def test_x(jupyter_lab, browser_page):
        path = jupyter_lab.write_notebook("x.ipynb", ["print(1)"])
        jupyter_lab.open(browser_page, path)
        run_all_cells(browser_page)
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_browser() -> None:
    """Skip unless the system chromium and the playwright package are both there."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="needs the playwright package")


@dataclass
class JupyterLab:
    """A running JupyterLab server rooted in a temporary folder."""

    port: int
    token: str
    root: Path
    log: Path
    #: "lab" (JupyterLab) or "notebook" (Notebook 7).
    app: str = "lab"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_notebook(self, name: str, cells: list[str]) -> str:
        """Write a notebook of code cells (with a python3 kernelspec, so no kernel dialog)."""
        nb = {
            "cells": [
                {
                    "cell_type": "code",
                    "execution_count": None,
                    "id": f"cell-{i}",
                    "metadata": {},
                    "outputs": [],
                    "source": source,
                }
                for i, source in enumerate(cells)
            ],
            "metadata": {
                "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                "language_info": {"name": "python"},
            },
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        (self.root / name).write_text(json.dumps(nb, indent=1))
        return name

    def open(self, page: Any, name: str) -> None:
        """Open notebook ``name`` and wait until its kernel is idle."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        # JupyterLab's workspace would reopen the notebooks of earlier tests beside this one
        # (then ".jp-Notebook" matches a hidden one): ?reset starts from an empty workspace.
        where, extra = ("lab/tree", "&reset") if self.app == "lab" else ("notebooks", "")
        page.goto(f"{self.base}/{where}/{name}?token={self.token}{extra}")
        page.wait_for_selector(".jp-Notebook", timeout=90_000)
        # Even with a kernelspec, a "Select Kernel" dialog sometimes opens while the kernel
        # list is still loading; it would swallow every click, so accept it (python3).
        try:
            page.locator(".jp-Dialog .jp-mod-accept").click(timeout=5_000)
        except PlaywrightTimeout:
            pass  # no dialog: the kernel started on its own
        if self.app == "lab":
            page.wait_for_selector(
                ".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000
            )
        else:
            self.wait_kernels_idle()

    def api(self, method: str, path: str) -> Any:
        """Call the server's REST API (``/api/...``); the decoded JSON answer, or None."""
        request = urllib.request.Request(
            f"{self.base}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def wait_kernels_idle(self, timeout: float = 90) -> None:
        """Wait until every kernel of the server reports ``idle`` (and at least one runs)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            kernels = self.api("GET", "/api/kernels")
            if kernels and all(k["execution_state"] == "idle" for k in kernels):
                return
            time.sleep(0.5)
        raise TimeoutError("the kernel did not become idle")

    def shutdown_kernels(self) -> None:
        """Stop every session and kernel (what closing the notebook and its kernel does)."""
        for session in self.api("GET", "/api/sessions") or []:
            self.api("DELETE", f"/api/sessions/{session['id']}")
        for kernel in self.api("GET", "/api/kernels") or []:
            self.api("DELETE", f"/api/kernels/{kernel['id']}")


def run_all_cells(page: Any) -> None:
    """Run > Run All Cells, through the menu (more reliable than Shift+Enter after load).

    On a loaded machine the first click can land while JupyterLab is still settling the
    notebook's focus, and the command then does nothing (every prompt stays ``[ ]:``). So
    the run is confirmed by the first cell's prompt changing, and the menu used again if not.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    started = (
        "() => { const p = document.querySelector('.jp-Notebook .jp-InputPrompt');"
        " return p !== null && p.textContent.trim() !== '[ ]:'; }"
    )
    for attempt in range(3):
        page.locator(".jp-Notebook .jp-Cell").first.click()
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:
            page.wait_for_function(started, timeout=20_000)
            return
        except PlaywrightTimeout:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")  # close the menu if it is still open


@pytest.fixture(scope="module")
def jupyter_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    """JupyterLab on 127.0.0.1 (free port, random token, temporary root, own config dirs)."""
    yield from start_jupyter(tmp_path_factory, "lab")


def start_jupyter(tmp_path_factory: pytest.TempPathFactory, app: str) -> Iterator[JupyterLab]:
    """Start ``jupyter lab`` (``app="lab"``) or Notebook 7 (``"notebook"``); stop it after."""
    require_browser()
    if app == "notebook":
        pytest.importorskip("notebook", reason="needs the notebook package (Notebook 7)")
    base = tmp_path_factory.mktemp(app)
    root, config, runtime, settings, workspaces = (
        base / name for name in ("root", "config", "runtime", "settings", "workspaces")
    )
    for folder in (root, config, runtime, settings, workspaces):
        folder.mkdir()
    # No "news" toast and no update check: the toast can cover the widgets.
    news = settings / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")
    }
    env.update(JUPYTER_CONFIG_DIR=str(config), JUPYTER_RUNTIME_DIR=str(runtime))
    lab = JupyterLab(_free_port(), secrets.token_hex(16), root, base / f"{app}.log", app)
    module, cls = ("jupyterlab", "LabApp") if app == "lab" else ("notebook", "JupyterNotebookApp")
    with lab.log.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                module,
                "--no-browser",
                f"--port={lab.port}",
                "--ServerApp.ip=127.0.0.1",
                f"--IdentityProvider.token={lab.token}",
                f"--ServerApp.root_dir={root}",
                f"--{cls}.user_settings_dir={settings}",
                f"--{cls}.workspaces_dir={workspaces}",
                "--allow-root",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=root,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                url = f"{lab.base}/api/status?token={lab.token}"
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"JupyterLab did not start:\n{lab.log.read_text()[-3000:]}"
                    ) from None
                time.sleep(0.25)
        yield lab
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture(scope="module")
def jupyter_notebook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    """Notebook 7 (``jupyter notebook``) on 127.0.0.1, set up like `jupyter_lab`."""
    yield from start_jupyter(tmp_path_factory, "notebook")


@pytest.fixture
def browser_page() -> Iterator[Any]:
    """A chromium page (1280x1300) from the system browser."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1300})
            yield page
        finally:
            browser.close()
