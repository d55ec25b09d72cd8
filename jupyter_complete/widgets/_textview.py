"""`StreamView`: an append-only text area whose traffic grows with the text, not its square.

Why not an ``Output`` widget (measured in JupyterLab 4.6 with ipywidgets 8.1, see the panel's
tests and ``docs``):

* ``Output.append_stdout`` sets the ``outputs`` trait, and a trait is always sent whole:
  every append re-sends all the text so far (40 appends of 24 characters: 91 KB on IOPub).
* ``with out: print(...)`` from a background thread is not shown at all once the click that
  started it has been answered: the front end routes captured messages through a hook on the
  *pending request*, which is gone by then. And each captured message makes the front end
  send its whole ``outputs`` list back to the kernel, which ipywidgets echoes to every front
  end, so it is not linear either.

So the text lives in a column of small ``HTML`` widgets. Only the last one (the *tail*) ever
changes; once it holds `SOFT` characters it is frozen at a line end (or, for a long line, at a
space, and at `HARD` characters at the latest) and a new tail starts. An update therefore
sends at most `HARD` characters plus the new ones, and freezing adds one widget. Segments are
grouped in pages of `PAGE` (a box's ``children`` is also sent whole, as a list of ids), so
no list of ids grows past `PAGE` entries within a page, and the outer list grows by one id per
page. Everything is kernel-side state, so it works from any thread and in every front end.
"""

from __future__ import annotations

import html
import threading
from typing import Any

import ipywidgets as widgets
from ipywidgets.widgets.widget_string import HTMLStyle

#: Freeze the tail at the first line end (or space) once it is this long.
SOFT = 512
#: Freeze the tail at this length whatever it contains.
HARD = 1024
#: Segments per page.
PAGE = 32

# One style sheet for every segment, sent once, so each update carries only the text.
_STYLE = (
    # Scoped under .jupyter-widgets to outrank JupyterLab's ".jp-OutputArea-output pre"
    # (word-break: break-all), which would cut words anywhere.
    "<style>.jupyter-widgets pre.jc-stream-text{white-space:pre-wrap;word-break:normal;"
    "overflow-wrap:anywhere;margin:0;padding:0;border:0;background:none;line-height:1.45;"
    "font-family:var(--jp-code-font-family,monospace);font-size:var(--jp-code-font-size,13px);"
    "color:var(--jp-content-font-color1,inherit)}</style>"
)


def render(text: str) -> str:
    """The HTML of one segment: the text escaped, whitespace kept."""
    return f'<pre class="jc-stream-text">{html.escape(text)}</pre>'


def cut_point(text: str) -> int | None:
    """Where to freeze a tail: the index just after the cut, or None to keep growing.

    A tail shorter than `SOFT` is never cut. Otherwise the cut goes after the last line end
    within the first `HARD` characters; with no line end, a tail of `HARD` or more characters
    is cut after its last space (so the break looks like a wrap), else at `HARD`.
    """
    if len(text) < SOFT:
        return None
    newline = text.rfind("\n", 0, HARD)
    if newline >= 0:
        return newline + 1
    if len(text) < HARD:
        return None
    space = max(text.rfind(" ", 0, HARD), text.rfind("\t", 0, HARD))
    return space + 1 if space > 0 else HARD


class StreamView:
    """Streamed text shown as a column of segments; see the module docstring for why.

    ``append`` is meant for one writer at a time (the panel's coalescer thread); ``set_text``
    and ``clear`` replace everything and are used between runs.
    """

    def __init__(self, *, max_height: str = "24em", placeholder: str = "") -> None:
        # Shared by every segment and page: a Layout or a style is a widget of its own, and
        # one per segment would triple the cost of starting a segment.
        self._segment_layout = widgets.Layout(margin="0", padding="0", width="100%")
        self._segment_style = HTMLStyle()
        self._page_layout = widgets.Layout(margin="0", padding="0", width="100%")
        self._lock = threading.Lock()
        self._frozen: list[str] = []
        self._tail_text = ""
        self._placeholder = placeholder
        # A <style> element applies to the page even inside a hidden widget.
        self._style = widgets.HTML(_STYLE, layout=widgets.Layout(display="none"))
        self.box = widgets.VBox(
            [self._style],
            layout=widgets.Layout(
                border="1px solid var(--jp-border-color2, #ccc)",
                padding="4px 6px",
                max_height=max_height,
                overflow="auto",
                width="100%",
                min_height="3em",
            ),
        )
        self._tail = self._segment("")
        self._page = self._new_page([self._tail])
        self._show_placeholder()

    def _segment(self, text: str) -> Any:
        return widgets.HTML(render(text), layout=self._segment_layout, style=self._segment_style)

    def _new_page(self, segments: list[Any]) -> Any:
        page = widgets.VBox(segments, layout=self._page_layout)
        self.box.children = (*self.box.children, page)
        return page

    def _show_placeholder(self) -> None:
        if self._placeholder and not self.text:
            self._tail.value = (
                '<pre class="jc-stream-text" style="opacity:.55">'
                f"{html.escape(self._placeholder)}</pre>"
            )

    @property
    def text(self) -> str:
        """All the text shown."""
        with self._lock:
            return "".join(self._frozen) + self._tail_text

    @property
    def segments(self) -> int:
        """How many HTML widgets hold the text (frozen ones plus the tail)."""
        with self._lock:
            return len(self._frozen) + 1

    def append(self, text: str) -> None:
        """Add ``text`` at the end: one update of the tail, plus a widget per frozen segment."""
        if not text:
            return
        with self._lock:
            tail = self._tail_text + text
            pieces: list[str] = []
            cut = cut_point(tail)
            while cut is not None:
                pieces.append(tail[:cut])
                tail = tail[cut:]
                cut = cut_point(tail)
            self._tail_text = tail
            if not pieces:
                self._tail.value = render(tail)
                return
            # The current tail keeps the first piece for good; later pieces (only when one
            # batch is longer than SOFT) and the new tail get widgets of their own.
            self._tail.value = render(pieces[0])
            self._frozen.extend(pieces)
            for piece in [*pieces[1:], None]:
                segment = self._segment(tail if piece is None else piece)
                if len(self._page.children) < PAGE:
                    self._page.children = (*self._page.children, segment)
                else:
                    self._page = self._new_page([segment])
                self._tail = segment

    def set_text(self, text: str) -> None:
        """Replace everything by ``text`` (one message per segment; not for streaming)."""
        self.clear(placeholder=False)
        self.append(text)
        self._show_placeholder()

    def clear(self, *, placeholder: bool = True) -> None:
        """Remove all text (the old segments' and pages' widgets are closed)."""
        with self._lock:
            pages = [w for w in self.box.children if w is not self._style]
            self._frozen = []
            self._tail_text = ""
            self.box.children = (self._style,)
            self._tail = self._segment("")
            self._page = self._new_page([self._tail])
        for page in pages:
            for segment in page.children:
                segment.close()
            page.close()
        if placeholder:
            self._show_placeholder()

    def close(self) -> None:
        """Close every widget of the view."""
        for page in self.box.children:
            for segment in getattr(page, "children", ()):
                segment.close()
            page.close()
        for w in (self.box, self._segment_layout, self._segment_style, self._page_layout):
            w.close()
