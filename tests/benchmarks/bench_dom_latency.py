"""DOM latency: from the server writing an event to its text in JupyterLab's page.

    python tests/benchmarks/bench_dom_latency.py --full      # needs /usr/bin/chromium

JupyterLab runs on loopback with Debian's chromium driven by Playwright (as the browser tests
do). A server thread in this process writes completion events at a steady rate (20 and 200
events/s); each event's text is the ``time.perf_counter_ns()`` reading taken just before its
write. A MutationObserver in the page notes ``performance.timeOrigin + performance.now()``
when each stamp first appears in the DOM. The two clocks are tied together by round trips
(``page.evaluate`` between two ``perf_counter_ns`` readings; the shortest round trip wins,
and half of it is the calibration's uncertainty, printed).

Contenders, run in rounds (one notebook, freshly opened, per round; the contenders' order
rotates from round to round):

* ``%%complete`` (the magic: `StreamRenderer` into ``sys.stdout``);
* the panel (`StreamRenderer` into the panel's text view of HTML widgets);
* a cell that prints and flushes every event as it arrives: one IOPub message per event,
  no coalescing at all; the floor of the kernel -> server -> browser pipeline.

Each stream runs twice: with its first event written the moment the request arrives (what
the page does as a cell starts, setting up its output area, falls on the first events), and
after a time to first token of `FIRST_TOKEN_DELAY` (as from a model, which evaluates the
prompt first: the built-in model takes 0.06-0.12 s for a short prompt here, the real API
longer). Each round is a notebook of its own, opened fresh: in one page holding every
round's outputs, each new output costs more layout (measured: p95 at 200 events/s went
from 55-59 ms to 131-167 ms, and the floor's from 124-198 to 295-394).

Goal (issue 15): ``%%complete`` p50 under 10 ms at 20 events/s, p95 under 60 ms at 200/s.
Chromium is needed, so ``--short`` (CI) only says it was skipped.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: the fixtures

from _bench import banner, median, parse_mode, percentile, table  # noqa: E402
from _servers import (  # noqa: E402
    STAMP_SLOT,
    LoopbackServer,
    completion_event,
    end,
    frame,
    head,
)
from fixtures_browser import CHROMIUM, CHROMIUM_ARGS, JupyterLab, run_all_cells  # noqa: E402

RATES = (20, 200)
#: Seconds from the request to the first event in the second run of each stream.
FIRST_TOKEN_DELAY = 0.15
DELAYS = (0.0, FIRST_TOKEN_DELAY)
#: Seconds each stream lasts.
SECONDS = 3.0
GOALS = {20: ("p50", 10.0), 200: ("p95", 60.0)}
KEY = "bench-key"

# Records, in the page, when each stamp (19 digits) first shows up in any output.
OBSERVER = r"""
() => {
  const seen = new Map();
  const stamp = /\d{19}/g;
  const scan = (node) => {
    const text = node.textContent || "";
    const now = performance.timeOrigin + performance.now();
    for (const m of text.matchAll(stamp)) {
      if (!seen.has(m[0])) seen.set(m[0], now);
    }
  };
  const observer = new MutationObserver((records) => {
    const touched = new Set();
    for (const r of records) {
      const el = r.type === "characterData" ? r.target.parentNode : r.target;
      if (el) touched.add(el);
    }
    for (const el of touched) scan(el);
  });
  observer.observe(document.body, {childList: true, subtree: true, characterData: true});
  window.__jcSeen = seen;
}
"""


class PacedServer:
    """Streams ``/{label}/{rate}/{n}/{delay_ms}/v1/complete``: n stamped events at ``rate``
    per second, the first ``delay_ms`` after the request.

    Events follow a fixed schedule (start + i / rate), so a late wake-up does not slow the
    whole stream down. Every stamp written is remembered with its request's label, rate and
    delay.
    """

    def __init__(self) -> None:
        self.sent: dict[str, tuple[str, int, float]] = {}
        self._lock = threading.Lock()
        self._server = LoopbackServer(self._respond)

    def url(self, label: str, rate: int, n: int, delay: float) -> str:
        return self._server.url(f"/{label}/{rate}/{n}/{round(delay * 1000)}")

    def close(self) -> None:
        self._server.close()

    def _respond(self, conn: socket.socket, path: str) -> None:
        _, label, rate_text, n_text, delay_text, *_ = path.split("/")
        rate, n, delay_ms = int(rate_text), int(n_text), int(delay_text)
        template = frame(completion_event(" " + STAMP_SLOT.decode()), "chunked")
        conn.sendall(head("chunked"))
        time.sleep(delay_ms / 1000)
        started = time.perf_counter()
        for i in range(n):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            stamp = b"%019d" % time.perf_counter_ns()
            with self._lock:
                self.sent[stamp.decode()] = (label, rate, delay_ms / 1000)
            conn.sendall(template.replace(STAMP_SLOT, stamp))
        conn.sendall(frame(completion_event("", "max_tokens"), "chunked") + end("chunked"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def jupyter_lab(base: Path) -> Iterator[JupyterLab]:
    """JupyterLab on loopback, as tests/fixtures_browser.py starts it, with every cell kept
    in the DOM (no windowing), so an output below the fold is rendered like any other."""
    root, config, runtime, settings, workspaces = (
        base / name for name in ("root", "config", "runtime", "settings", "workspaces")
    )
    for folder in (root, config, runtime, settings, workspaces):
        folder.mkdir()
    news = settings / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    notebook = settings / "@jupyterlab" / "notebook-extension"
    notebook.mkdir(parents=True)
    (notebook / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_BASE_URL"}
    env.update(
        JUPYTER_CONFIG_DIR=str(config), JUPYTER_RUNTIME_DIR=str(runtime), ANTHROPIC_API_KEY=KEY
    )
    lab = JupyterLab(_free_port(), secrets.token_hex(16), root, base / "lab.log")
    with lab.log.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                f"--port={lab.port}",
                "--ServerApp.ip=127.0.0.1",
                f"--IdentityProvider.token={lab.token}",
                f"--ServerApp.root_dir={root}",
                f"--LabApp.user_settings_dir={settings}",
                f"--LabApp.workspaces_dir={workspaces}",
                "--allow-root",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=root,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{lab.base}/api/status?token={lab.token}", timeout=2):
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


def cells_for(server: PacedServer, r: int) -> list[str]:
    """Round ``r``'s notebook: set-up, then every contender at every rate and first-event
    delay (the contenders' order rotated each round)."""
    cells = [
        "%load_ext jupyter_complete\n"
        "import time\n"
        "from IPython.display import display\n"
        "from jupyter_complete import Client\n"
        "from jupyter_complete.widgets.panel import Panel\n"
        "print('ready')",
    ]
    kinds = ["magic", "panel", "floor"]
    order = kinds[r % 3 :] + kinds[: r % 3]
    for rate, delay in ((rate, delay) for delay in DELAYS for rate in RATES):
        n = int(rate * SECONDS)
        for kind in order:
            url = server.url(kind, rate, n, delay)
            if kind == "magic":
                cells.append(f"%%complete --base-url {url} -m bench-1 -n {n + 10}\nGo.")
            elif kind == "floor":
                cells.append(
                    f"_c = Client(base_url={url!r}, max_retries=0)\n"
                    f"with _c.completions.create(prompt='\\n\\nHuman: Go.\\n\\nAssistant:',"
                    f" model='bench-1', max_tokens_to_sample={n + 10}, stream=True) as _s:\n"
                    "    for _e in _s:\n"
                    "        print(_e.completion, end='', flush=True)\n"
                    "_c.close()"
                )
            else:
                cells.append(
                    f"_c = Client(base_url={url!r}, max_retries=0)\n"
                    "_p = Panel('Go.', client=_c)\n"
                    f"_p.settings.model = 'bench-1'\n_p.settings.max_tokens = {n + 10}\n"
                    "display(_p)\n"
                    "time.sleep(1.0)  # let the page build the panel's views first\n"
                    "_p.run()\n"
                    "assert _p.wait(120) and _p.state == 'done', _p.state\n"
                    "_c.close()"
                )
    cells.append("print('all ' + 'done')")
    return cells


def calibrate(page: Any, samples: int = 40) -> tuple[float, float]:
    """(offset, uncertainty) in ms: browser clock = perf_counter_ns() / 1e6 + offset."""
    best: tuple[float, float] | None = None
    for _ in range(samples):
        before = time.perf_counter_ns()
        browser = float(page.evaluate("() => performance.timeOrigin + performance.now()"))
        after = time.perf_counter_ns()
        half = (after - before) / 2e6
        offset = browser - (before + after) / 2e6
        if best is None or half < best[1]:
            best = (offset, half)
    assert best is not None
    return best


def main() -> int:
    args = parse_mode(__doc__.splitlines()[0])
    if args.short:
        print("skipped in --short mode: needs chromium and JupyterLab (run with --full)")
        return 0
    if not os.path.exists(CHROMIUM):
        print(f"skipped: {CHROMIUM} is not installed")
        return 0
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("skipped: the playwright package is not installed")
        return 0
    banner(
        f"DOM latency in JupyterLab, {SECONDS:g} s streams at {' and '.join(map(str, RATES))}"
        " events/s",
        args,
    )
    server = PacedServer()
    # One notebook (and page load) per round: a page holding every earlier round's outputs
    # lays out more with each new one (measured: p95 doubled from 9 streams to 60).
    shown: dict[str, float] = {}  # stamp -> when it showed, on perf_counter's clock (ms)
    ties: list[tuple[float, float, float]] = []  # per round: uncertainty before, after, drift
    with (
        tempfile.TemporaryDirectory() as tmp,
        jupyter_lab(Path(tmp)) as lab,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1300})
            for r in range(args.rounds):
                name = lab.write_notebook(f"latency-{r}.ipynb", cells_for(server, r))
                lab.open(page, name)
                page.evaluate(OBSERVER)
                offset, uncertainty = calibrate(page)
                run_all_cells(page)
                page.wait_for_selector("text=all done", timeout=900_000)
                seen: dict[str, float] = dict(page.evaluate("() => [...window.__jcSeen]"))
                offset_after, uncertainty_after = calibrate(page)
                ties.append((uncertainty, uncertainty_after, abs(offset_after - offset)))
                shown.update({stamp: at - offset for stamp, at in seen.items()})
        finally:
            browser.close()
    server.close()

    lags: dict[tuple[str, int, float], list[float]] = {}
    missing: dict[tuple[str, int, float], int] = {}
    for stamp, key in server.sent.items():
        at = shown.get(stamp)
        if at is None:
            missing[key] = missing.get(key, 0) + 1
            continue
        lags.setdefault(key, []).append(at - int(stamp) / 1e6)
    labels = {"magic": "%%complete", "panel": "panel", "floor": "print+flush per event"}
    rows = []
    for delay in DELAYS:
        for rate in RATES:
            floor = lags.get(("floor", rate, delay), [])
            for kind in ("magic", "panel", "floor"):
                values = lags.get((kind, rate, delay), [])
                first = f"{delay * 1000:.0f} ms" if delay else "at once"
                if not values:
                    rows.append([labels[kind], first, rate, "-", "-", "-", "-", "-", "-"])
                    continue
                which, goal = GOALS[rate]
                figure = median(values) if which == "p50" else percentile(values, 95)
                floor_figure = (
                    (median(floor) if which == "p50" else percentile(floor, 95))
                    if floor
                    else float("nan")
                )
                rows.append(
                    [
                        labels[kind],
                        first,
                        rate,
                        len(values),
                        f"{median(values):.1f}",
                        f"{percentile(values, 95):.1f}",
                        f"{max(values):.1f}",
                        f"{which} {figure / goal:.2f}x of {goal:g} ms",
                        f"{figure / floor_figure:.2f}x" if kind != "floor" else "1",
                    ]
                )
    print(
        table(
            [
                "output",
                "first event",
                "events/s",
                "events",
                "p50 ms",
                "p95 ms",
                "max ms",
                "vs goal",
                "vs floor",
            ],
            rows,
        )
    )
    worst = [max(tie[i] for tie in ties) for i in range(3)]
    print(
        f"(clock tie, worst round: {worst[0] * 1000:.0f} us before, {worst[1] * 1000:.0f} us "
        f"after, drift {worst[2] * 1000:.0f} us; {args.rounds} rounds, one notebook each, "
        "pooled)"
    )
    if missing:
        print(f"events never seen in the page: {missing}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
