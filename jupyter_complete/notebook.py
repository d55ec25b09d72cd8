"""Small notebook-facing outputs of the magic: notices, the model list, code cells, wrapping.

Everything here degrades to plain text: a terminal IPython shows ``text/plain`` only.
"""

from __future__ import annotations

import html
import re
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._models import Model

# A fenced block (``` or ~~~, optional info string) in CommonMark's sense: the closing fence
# uses the same character, at least as long as the opening one.
_FENCE_RE = re.compile(
    r"^[ ]{0,3}(?P<fence>`{3,}|~{3,})[^\n`]*\n(?P<code>.*?)(?:^[ ]{0,3}(?P=fence)[`~]*[ \t]*$|\Z)",
    re.MULTILINE | re.DOTALL,
)

#: Stream text in JupyterLab and Notebook 7 is styled ``word-break: break-all`` (it cuts
#: words anywhere: "th|e"). This rule, scoped to output areas that hold our marker, wraps at
#: word boundaries instead, and still breaks a word longer than the line.
WRAP_STYLE = (
    "<style>.jp-OutputArea:has(.jc-wrap-marker) .jp-RenderedText pre,"
    ".output_area:has(.jc-wrap-marker) pre{word-break:normal;overflow-wrap:anywhere}"
    "</style>"
)


def code_of(text: str) -> str:
    """The code in an answer: its fenced blocks joined by a blank line, else the whole answer.

    Fences follow CommonMark (three or more backticks or tildes, an optional language word);
    an unclosed last fence runs to the end of the text (a cut-off answer).
    """
    blocks = [m.group("code").rstrip("\n") for m in _FENCE_RE.finditer(text)]
    blocks = [b for b in blocks if b.strip()]
    return "\n\n".join(blocks) if blocks else text.strip()


def _publish(data: dict[str, str], metadata: dict[str, Any] | None = None) -> bool:
    """Display ``data`` if running in IPython; False otherwise."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return False
    if get_ipython() is None:
        return False
    from IPython import display

    publish: Any = display.publish_display_data  # untyped in IPython
    publish(data, metadata=metadata or {})
    return True


def notice(text: str) -> None:
    """One informative line, grey and small in a notebook (not stderr: it is not an error).

    Outside IPython it goes to stderr, where terminals expect such notes.
    """
    if not _publish(
        {
            "text/plain": text,
            "text/html": '<div class="jc-notice" style="color:var(--jp-ui-font-color2,#777);'
            f'font-size:0.85em">{html.escape(text)}</div>',
        }
    ):
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def wrap_marker() -> None:
    """Make this cell's streamed text wrap at word boundaries (see `WRAP_STYLE`).

    An HTML-only output (nothing in a terminal); it takes no room in the notebook.
    """
    _publish({"text/html": f'{WRAP_STYLE}<div class="jc-wrap-marker"></div>'})


def show_models(models: list[Model], endpoint: str) -> None:
    """Display the models of ``endpoint`` as a table (text/plain and text/html)."""
    from .render import safe_url

    where = safe_url(endpoint)
    if not models:
        notice(f"{where} lists no models")
        return
    width = max(len(m.id) for m in models)
    lines = [f"{len(models)} models at {where}:"]
    lines += [
        f"  {m.id:<{width}}  {m.display_name or ''}  {m.created_at or ''}".rstrip() for m in models
    ]
    rows = "".join(
        f"<tr><td><code>{html.escape(m.id)}</code></td><td>{html.escape(m.display_name or '')}"
        f"</td><td>{html.escape(m.created_at or '')}</td></tr>"
        for m in models
    )
    table = (
        f"<div>{len(models)} models at <code>{html.escape(where)}</code></div>"
        "<table><tr><th>id</th><th>display name</th><th>created</th></tr>"
        f"{rows}</table>"
    )
    if not _publish({"text/plain": "\n".join(lines), "text/html": table}):
        sys.stdout.write("\n".join(lines) + "\n")


__all__ = ["WRAP_STYLE", "code_of", "notice", "show_models", "wrap_marker"]
