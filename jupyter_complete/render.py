"""Putting a streamed completion in front of the user: coalesced text, a footer, provenance.

`StreamRenderer` appends text to an output area (``sys.stdout`` by default, which ipykernel
turns into IOPub ``stream`` messages that the front end appends). A delta that arrives when
nothing was written for ``interval`` seconds is written at once (the leading edge); deltas
that arrive faster than that are coalesced on a background thread into one write per
``interval``, so a fast stream costs a bounded number of messages per second and a slow one
pays no delay. The text is never re-sent whole: the bytes on IOPub stay proportional to it.
The thread also means text that arrives just before the server goes quiet is shown at the end
of the interval, not held until the next delta.

`receive` sends one request and shows its answer through a renderer, keeping the text of an
interrupted one. The footer helpers (`finish`) turn a final `Completion` into one human line
and a metadata record that saved notebooks keep (``{"jupyter_complete": {...}}``).
"""

from __future__ import annotations

import contextvars
import datetime
import hashlib
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from ._secrets import safe_url
from ._version import __version__
from .completion import Completion

#: Seconds between the starts of two writes: at most ~29 stream messages per second, well
#: under Jupyter's IOPub limit (1000 msg/s). It is also the longest a delta waits: a delta
#: arriving after a quiet interval is written at once. Measured in JupyterLab (see
#: ``tests/benchmarks/bench_dom_latency.py``): 20 tokens/s show with no coalescing delay, and
#: 200 tokens/s wait half an interval on average.
DEFAULT_INTERVAL = 0.035

#: Prompts longer than this are recorded in metadata by length and hash only, so a large
#: interpolated document does not bloat every saved output.
MAX_RECORDED_PROMPT = 4096

METADATA_KEY = "jupyter_complete"


class StreamRenderer:
    """Append streamed text to an output: at once when the output was quiet, else coalesced.

    ``feed`` never blocks on the output: it queues the text and a writer thread emits it.
    A delta fed when no write started in the last ``interval`` seconds is written at once;
    while deltas come faster than that, they are joined into one write when ``interval`` has
    passed since the previous write started (a throttle with leading and trailing edges), so
    there are at most ``1 / interval`` writes per second and no delta waits longer than
    ``interval`` for its turn. ``close`` (or leaving the ``with`` block)
    writes what is left and waits for the writer, so output that follows stays in order.

    Args:
        write: called with each coalesced piece of text. Default: the current ``sys.stdout``'s
            ``write`` followed by its ``flush`` (so each piece leaves ipykernel at once as one
            ``stream`` message instead of on ipykernel's own 0.2 s timer).
        interval: minimum seconds between the starts of two writes.

    The panel passes its own ``write`` (a paged view of small HTML widgets). Do not pass an
    ``Output`` widget's ``append_stdout``: it re-sends the widget's whole output list on every
    call, so the bytes of a run grow with the square of its length.
    """

    def __init__(
        self, write: Callable[[str], object] | None = None, *, interval: float = DEFAULT_INTERVAL
    ) -> None:
        if write is None:
            write = _stdout_writer(sys.stdout)
        self._write = write
        self.interval = float(interval)
        self._pending: list[str] = []
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._last_write = float("-inf")
        self._last_fed = ""
        #: Characters handed to ``write`` so far.
        self.chars_written = 0
        #: Number of ``write`` calls so far (one IOPub message each with the default writer).
        self.writes = 0

    def feed(self, text: str) -> None:
        """Queue ``text`` for output (empty text is ignored)."""
        if not text:
            return
        with self._cond:
            if self._closing:
                # Closed by the caller, or by a failed write: say which.
                raise self._error or ValueError("StreamRenderer is closed")
            self._pending.append(text)
            self._last_fed = text[-1]
            if self._thread is None:
                # Copy the caller's context: ipykernel keeps the parent message (which cell
                # the output belongs to) in a context variable.
                ctx = contextvars.copy_context()
                self._thread = threading.Thread(
                    target=ctx.run,
                    args=(self._run,),
                    name="jupyter_complete-render",
                    daemon=True,
                )
                self._thread.start()
            self._cond.notify()

    def close(self, *, end_line: bool = False) -> None:
        """Write whatever is queued, stop the writer thread; re-raise a write failure.

        With ``end_line``, text that does not end with a newline gets one, so what is shown
        next (a footer, an error line, a later print) starts on its own line. Closing twice
        is harmless.
        """
        with self._cond:
            if end_line and not self._closing and self._last_fed not in ("", "\n"):
                # Text was fed, so the writer thread exists and will write this too.
                self._pending.append("\n")
                self._last_fed = "\n"
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def __enter__(self) -> StreamRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return
                # Leading edge: after a quiet interval the first delta goes out at once.
                # Otherwise let deltas pile up until the interval since the last write began
                # has passed; closing cuts the wait short so the caller is not delayed.
                while not self._closing:
                    delay = self._last_write + self.interval - time.monotonic()
                    if delay <= 0:
                        break
                    self._cond.wait(delay)
                text = "".join(self._pending)
                self._pending.clear()
                # Paced from the start of a write, not its end: a slow front end does not
                # stretch the interval, and a delta after a quiet spell is never held.
                self._last_write = time.monotonic()
            # Write outside the lock: feed() must never wait for the front end.
            try:
                self._write(text)
            except BaseException as err:  # noqa: BLE001 - handed to the caller in close()
                self._error = err
                with self._cond:
                    self._pending.clear()
                    self._closing = True
                return
            self.writes += 1
            self.chars_written += len(text)


def _stdout_writer(stream: IO[str]) -> Callable[[str], None]:
    def write(text: str) -> None:
        stream.write(text)
        stream.flush()

    return write


# -- footer and provenance ---------------------------------------------------------------------


def footer_text(completion: Completion) -> str:
    """One line saying how an answer ended and how long it took.

    ``claude-2.1 · stop_sequence · 1,234 chars · first token 0.31 s · total 2.04 s``
    """
    parts = []
    if completion.interrupted:
        parts.append("[interrupted]")
    parts.append(completion.model or str(completion.params.get("model") or "unknown model"))
    if completion.stop_reason:
        parts.append(completion.stop_reason)
    elif not completion.interrupted:
        parts.append("no stop reason")
    parts.append(f"{len(completion.completion):,} chars")
    tokens = tokens_text(completion.usage)
    if tokens:
        parts.append(tokens)
    if completion.time_to_first_token is not None:
        parts.append(f"first token {completion.time_to_first_token:.2f} s")
    if completion.elapsed is not None:
        parts.append(f"total {completion.elapsed:.2f} s")
    return " · ".join(parts)


def tokens_text(usage: dict[str, int] | None) -> str | None:
    """``12 in / 34 out tokens`` from what the server reported (either count alone too).

    The Messages API reports ``usage``; the Text Completions spec has no such field, but a
    server may add one. None when neither count was reported.
    """
    usage = usage or {}
    inp, out = usage.get("input_tokens"), usage.get("output_tokens")
    if inp is not None and out is not None:
        return f"{inp:,} in / {out:,} out tokens"
    if out is not None:
        return f"{out:,} tokens out"
    if inp is not None:
        return f"{inp:,} tokens in"
    return None


def provenance(
    completion: Completion, *, prompt: str, endpoint: str | None = None, **extra: Any
) -> dict[str, Any]:
    """The record of how an answer was made, for the output's metadata (JSON-safe).

    Holds the model, every request parameter, the stop reason, timings, ids, the endpoint
    (without credentials or query) and the prompt (or its hash when it is long). ``extra``
    adds options of the caller (format, raw, ...). The answer text itself is not repeated.
    """
    record: dict[str, Any] = {
        "version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": completion.model,
        "params": dict(completion.params),
        "stop_reason": completion.stop_reason,
        "stop": completion.stop,
        "interrupted": completion.interrupted,
        "characters": len(completion.completion),
        "time_to_first_token": completion.time_to_first_token,
        "elapsed": completion.elapsed,
        "request_id": completion.request_id,
        "id": completion.id,
        "endpoint": safe_url(endpoint) if endpoint else None,
        "prompt_chars": len(prompt),
        "prompt_sha256": hashlib.sha256(prompt.encode()).hexdigest(),
    }
    if len(prompt) <= MAX_RECORDED_PROMPT:
        record["prompt"] = prompt
    if completion.usage is not None:
        record["usage"] = dict(completion.usage)
    record.update(extra)
    return record


def footer_bundle(completion: Completion) -> dict[str, str]:
    """The footer as a MIME bundle: plain text for terminals, small grey HTML for notebooks."""
    text = footer_text(completion)
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return {
        "text/plain": text,
        "text/html": f'<div style="color: #777; font-size: 0.85em">{escaped}</div>',
    }


def publish_footer(completion: Completion, record: dict[str, Any]) -> None:
    """Display the footer with ``record`` as its metadata under ``"jupyter_complete"``."""
    from IPython import display

    publish: Any = display.publish_display_data  # untyped in IPython
    publish(footer_bundle(completion), metadata={METADATA_KEY: record})


def replace_with_markdown(text: str) -> None:
    """Replace the cell's output (the streamed text) by ``text`` rendered as Markdown, once.

    Only ``text/markdown`` is sent: a front end that cannot render it (``jupyter console``)
    also ignores ``clear_output`` and keeps the streamed text, and a saved notebook holds the
    answer once instead of twice.
    """
    from IPython import display

    clear: Any = display.clear_output  # untyped in IPython
    publish: Any = display.publish_display_data
    # wait=True: the front end clears when the next output arrives, so nothing flickers.
    clear(wait=True)
    publish({"text/markdown": text})


def receive(
    client: Any, prompt: str, params: dict[str, Any], *, streaming: bool
) -> tuple[Completion, bool]:
    """Send one request with ``client`` (a `jupyter_complete.Client`) and show the answer.

    The text goes to the output as it arrives (`StreamRenderer`), or at once when
    ``streaming`` is false. Returns (the completion, whether the request was sent). A
    kernel interrupt (`KeyboardInterrupt`) ends it with the text received so far, marked
    ``interrupted`` (an interrupt before any answer drops the half-read connection and
    returns an empty one). A `jupyter_complete.errors.APIError` propagates after the text so far
    was written, so it stays above the error line (the error's ``partial`` holds it).
    """
    renderer = StreamRenderer()
    result: Completion
    stream = None
    sent = False
    try:
        if streaming:
            stream = client.completions.create(prompt=prompt, stream=True, **params)
            sent = True
            for event in stream:
                renderer.feed(event.completion)
            result = stream.get_final_completion()
        else:
            result = client.completions.create(prompt=prompt, **params)
            sent = True
            renderer.feed(result.completion)
    except KeyboardInterrupt:
        if stream is not None:
            stream.close()
            result = stream.snapshot(interrupted=True)
        else:
            # Interrupted inside the request: drop its half-read connection.
            client.close()
            result = Completion("", model=params.get("model"), params=params, interrupted=True)
    finally:
        renderer.close(end_line=True)
    return result, sent


def finish(
    completion: Completion,
    *,
    prompt: str,
    endpoint: str | None,
    markdown: bool = False,
    **extra: Any,
) -> None:
    """Show the footer of an answer, its `provenance` record (with ``extra``) as metadata.

    ``markdown``: first replace the streamed text by the answer rendered as Markdown
    (`replace_with_markdown`; only when there is text).
    """
    record = provenance(completion, prompt=prompt, endpoint=endpoint, **extra)
    if markdown and completion.completion:
        replace_with_markdown(completion.completion)
    publish_footer(completion, record)


__all__ = [
    "DEFAULT_INTERVAL",
    "METADATA_KEY",
    "StreamRenderer",
    "finish",
    "footer_bundle",
    "footer_text",
    "provenance",
    "publish_footer",
    "receive",
    "replace_with_markdown",
    "safe_url",
    "tokens_text",
]
