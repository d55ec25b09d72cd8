"""Real-kernel fixtures: start an ipykernel, run code in it, collect what it sends on IOPub.

Two views of IOPub are kept side by side:

* the messages as jupyter_client decodes them (`Execution.messages`, what a front end sees);
* the raw ZeroMQ frames, counted and sized by an independent SUB socket (`IOPubSniffer`), so
  message counts and bytes are measured on the wire, not estimated.

Usage::

    def test_x(kernel):
        run = kernel.execute("print(1)")
        assert run.stream_text() == "1\\n"
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from queue import Empty
from typing import Any

import pytest
import zmq
from fixtures_replay import ReplayServer
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager, start_new_kernel

#: The marker of a test that starts a real kernel: ``pytest -m "not kernel"`` leaves them out.
KERNEL_MARK = "kernel"


def _starts_kernel(fixture: str) -> bool:
    """The naming rule for kernel fixtures: ``kernel`` itself, or any ``*_kernel``."""
    return fixture == KERNEL_MARK or fixture.endswith("_kernel")


@pytest.hookimpl(tryfirst=True)  # before -m deselects, so the marks it adds count
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``kernel`` every test that uses a kernel fixture, so none can be forgotten."""
    for item in items:
        if any(_starts_kernel(name) for name in getattr(item, "fixturenames", ())):
            item.add_marker(KERNEL_MARK)


#: The test being set up or run (set by `pytest_runtest_setup`), for `running_kernel`'s check.
_current: list[pytest.Item] = []


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _current[:] = [item]


def _check_marked() -> None:
    """Fail a test that starts a kernel without the ``kernel`` marker (it would slow the fast
    lane): mark it, or start the kernel from a fixture named ``*_kernel``."""
    if _current and _current[0].get_closest_marker(KERNEL_MARK) is None:
        pytest.fail(
            f"{_current[0].nodeid} starts a kernel but is not marked: add "
            "@pytest.mark.kernel, or start it from a fixture named *_kernel",
            pytrace=False,
        )


#: A recognisable fake key: any IOPub message containing it is a leak.
FAKE_KEY = "sk-ant-FAKE-api03-" + "leakcheck" * 4 + "-XYZ"

Message = dict[str, Any]


@dataclass
class WireRecord:
    """One IOPub message as it crossed the socket."""

    received: float
    msg_type: str
    parent_id: str | None
    nbytes: int
    raw: bytes


class IOPubSniffer:
    """Subscribes to a kernel's IOPub socket and records every message's frames and size."""

    def __init__(self, url: str) -> None:
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.SUBSCRIBE, b"")
        self._sock.setsockopt(zmq.RCVTIMEO, 100)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.connect(url)
        self.records: list[WireRecord] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                frames = self._sock.recv_multipart()
            except zmq.Again:
                continue
            except zmq.ZMQError:
                return
            now = time.monotonic()
            try:
                delim = frames.index(b"<IDS|MSG>")
                header = json.loads(frames[delim + 2])
                parent = json.loads(frames[delim + 3])
            except (ValueError, IndexError):
                continue
            self.records.append(
                WireRecord(
                    received=now,
                    msg_type=header.get("msg_type", "?"),
                    parent_id=parent.get("msg_id"),
                    nbytes=sum(len(f) for f in frames),
                    raw=b"".join(frames),
                )
            )

    def for_parent(self, msg_id: str) -> list[WireRecord]:
        """Every message sent on behalf of the request ``msg_id``."""
        return [r for r in list(self.records) if r.parent_id == msg_id]

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self._sock.close()
        self._ctx.term()


@dataclass
class Execution:
    """One ``execute_request`` and everything the kernel sent for it."""

    kc: BlockingKernelClient
    msg_id: str
    code: str
    messages: list[Message] = field(default_factory=list)
    #: time.monotonic() when each message of `messages` was received.
    times: list[float] = field(default_factory=list)
    sent_at: float = 0.0
    reply: Message | None = None
    idle: bool = False

    def wait_for(self, predicate: Callable[[Message], bool], timeout: float = 30) -> Message:
        """Collect IOPub messages until one matches ``predicate``; return it."""
        for msg in self._messages(timeout):
            if predicate(msg):
                return msg
        raise TimeoutError(f"no matching message within {timeout} s for {self.code[:60]!r}")

    def finish(self, timeout: float = 60) -> Execution:
        """Collect until the kernel is idle again and the reply has arrived."""
        if not self.idle:
            for _ in self._messages(timeout):
                pass
        if self.reply is None:
            deadline = time.monotonic() + timeout
            while True:
                reply = self.kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
                if reply["parent_header"].get("msg_id") == self.msg_id:
                    self.reply = reply
                    break
        return self

    def _messages(self, timeout: float) -> Iterator[Message]:
        deadline = time.monotonic() + timeout
        while not self.idle:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"kernel not idle within {timeout} s after {self.code[:60]!r}")
            try:
                msg = self.kc.get_iopub_msg(timeout=min(remaining, 1.0))
            except Empty:
                continue
            if msg["parent_header"].get("msg_id") != self.msg_id:
                continue
            self.messages.append(msg)
            self.times.append(time.monotonic())
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                self.idle = True
            yield msg

    # -- views -------------------------------------------------------------------------
    def of_type(self, *types: str) -> list[Message]:
        return [m for m in self.messages if m["msg_type"] in types]

    def stream_text(self, name: str = "stdout") -> str:
        return "".join(
            m["content"]["text"] for m in self.of_type("stream") if m["content"]["name"] == name
        )

    @property
    def status(self) -> str:
        assert self.reply is not None, "call finish() first"
        return str(self.reply["content"]["status"])

    @property
    def error_text(self) -> str:
        """Error output as a user sees it: error tracebacks and stderr, ANSI codes removed."""
        import re

        parts = ["\n".join(m["content"]["traceback"]) for m in self.of_type("error")]
        parts.append(self.stream_text("stderr"))
        return re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(p for p in parts if p))

    def displays(self) -> list[Message]:
        return self.of_type("display_data", "update_display_data", "execute_result")

    def completion_metadata(self) -> dict[str, Any]:
        """The ``jupyter_complete`` metadata record of the (single) footer display."""
        records = [
            m["content"]["metadata"]["jupyter_complete"]
            for m in self.displays()
            if "jupyter_complete" in m["content"].get("metadata", {})
        ]
        assert len(records) == 1, f"expected one footer with metadata, got {len(records)}"
        return dict(records[0])


@dataclass
class KernelHandle:
    """A running kernel with a client and an IOPub sniffer."""

    km: KernelManager
    kc: BlockingKernelClient
    sniffer: IOPubSniffer

    def start(self, code: str) -> Execution:
        """Send ``code`` for execution without waiting."""
        sent_at = time.monotonic()
        msg_id = self.kc.execute(code)
        return Execution(self.kc, msg_id, code, sent_at=sent_at)

    def execute(self, code: str, timeout: float = 60) -> Execution:
        """Run ``code`` and collect everything until the kernel is idle."""
        return self.start(code).finish(timeout)

    def value(self, expr: str) -> Any:
        """Evaluate ``expr`` in the kernel and return it (via JSON on stdout)."""
        run = self.execute(f"import json as _j; print(_j.dumps({expr}))")
        assert run.status == "ok", run.error_text
        return json.loads(run.stream_text())


def execute_and_collect(kc: BlockingKernelClient, code: str, timeout: float = 60) -> Execution:
    """Run ``code`` through ``kc`` and return every IOPub message and the reply for it."""
    sent_at = time.monotonic()
    return Execution(kc, kc.execute(code), code, sent_at=sent_at).finish(timeout)


def kernel_env(
    set_vars: dict[str, str] | None = None, unset: tuple[str, ...] = ()
) -> dict[str, str]:
    """The test process's environment, adjusted for a kernel."""
    env = dict(os.environ)
    for name in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "JUPYTER_COMPLETE_RAISE_ERRORS",
        *unset,
    ):
        env.pop(name, None)
    env.update(set_vars or {})
    # The kernel writes its own logs to our stderr; keep them readable.
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return env


@contextmanager
def running_kernel(env: dict[str, str]) -> Iterator[KernelHandle]:
    """Start a python3 kernel with ``env``; stop it on exit."""
    _check_marked()
    km, kc = start_new_kernel(kernel_name="python3", env=env, startup_timeout=60)
    info = km.get_connection_info()
    sniffer = IOPubSniffer(f"{info['transport']}://{info['ip']}:{info['iopub_port']}")
    handle = KernelHandle(km, kc, sniffer)
    try:
        # A SUB socket misses what is sent before its subscription lands: run cells until
        # the sniffer sees one, so every later message is counted.
        for _ in range(50):
            run = handle.execute("pass")
            if sniffer.for_parent(run.msg_id):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("the IOPub sniffer never saw a message")
        yield handle
    finally:
        sniffer.close()
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.fixture(scope="module")
def module_replay() -> Iterator[ReplayServer]:
    """A replay server shared by the tests of one module (scripts are queued per test)."""
    server = ReplayServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def kernel() -> Iterator[KernelHandle]:
    """A kernel with a fake API key in its environment and the extension loaded."""
    with running_kernel(kernel_env({"ANTHROPIC_API_KEY": FAKE_KEY})) as handle:
        run = handle.execute("%load_ext jupyter_complete")
        assert run.status == "ok", run.error_text
        yield handle


@pytest.fixture
def kreplay(module_replay: ReplayServer) -> Iterator[ReplayServer]:
    """The module's replay server, emptied of scripts and recorded requests for this test."""
    module_replay.scripts.clear()
    module_replay.received.clear()
    yield module_replay
    module_replay.scripts.clear()
