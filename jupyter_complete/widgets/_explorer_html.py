"""The explorer's HTML: its stylesheet, legend and notes, and the views of an `ExplorerState`.

Plain HTML strings (no plotting library): the prompt with the generated tokens, the summary of
what each sampling step leaves, the candidates chart and the steps table. The widget puts them
in ``HTML`` widgets; the saved record (`jupyter_complete.record`) uses the same strings, with
the chart's bars styled inline since a saved notebook has no widget stylesheet.
"""

from __future__ import annotations

import html

import numpy as np

from ..sampling import entropy_bits
from ._explorer_state import ExplorerState

#: Characters of the prompt shown before the generated tokens (the rest is elided).
PROMPT_TAIL = 400
#: Steps listed in the history table (the newest; `ExplorerState.history` keeps them all).
HISTORY_ROWS = 12

# Sent once, in its own widget, so chart updates carry only class names.
CSS = """<style>
.jc-explorer .widget-html-content{line-height:1.4}
.jc-explorer .jc-x-summary{margin:4px 0}
.jc-explorer .jc-x-scroll{display:flex;flex-direction:column-reverse;max-height:9em;
 overflow-y:auto;border:1px solid var(--jp-border-color2,#ddd);border-radius:3px}
.jc-explorer .jc-x-context{white-space:pre-wrap;font-family:var(--jp-code-font-family,monospace);
 font-size:12px;padding:4px 6px}
.jc-explorer .jc-x-prompt{color:var(--jp-ui-font-color2,#777)}
.jc-explorer .jc-x-gen{background:#deebf7;color:#08306b;border-radius:2px}
.jc-explorer .jc-x-last{background:#fdd835;color:#000}
.jc-explorer table.jc-x-chart,.jc-explorer table.jc-x-steps{border-collapse:collapse;
 font-size:12px;line-height:1.25}
.jc-explorer .jc-x-chart td,.jc-explorer .jc-x-chart th,.jc-explorer .jc-x-steps td,
.jc-explorer .jc-x-steps th{padding:1px 6px;text-align:right;white-space:nowrap}
.jc-explorer .jc-x-chart td.jc-x-tok,.jc-explorer .jc-x-steps td.jc-x-tok{text-align:left}
.jc-explorer .jc-x-bar{position:relative;width:220px;height:12px;
 background:var(--jp-layout-color2,#f0f0f0)}
.jc-explorer .jc-x-bar div{position:absolute;left:0;top:0;height:100%}
.jc-explorer .jc-x-bar .jc-x-t{background:#c6dbef}
.jc-explorer .jc-x-bar .jc-x-f{background:#2171b5;top:25%;height:50%}
.jc-explorer tr.jc-x-cut td{color:var(--jp-ui-font-color3,#aaa)}
.jc-explorer tr.jc-x-cut code{text-decoration:line-through}
.jc-explorer td.jc-x-why{text-align:left}
.jc-explorer .jc-x-note{color:var(--jp-ui-font-color2,#666);font-size:12px;margin:2px 0}
.jc-explorer .jc-x-legend{font-size:12px;margin:2px 0 4px 0}
.jc-explorer .jc-x-legend span.jc-x-sw{display:inline-block;width:18px;height:10px;
 vertical-align:middle;margin:0 4px 0 10px}
.jc-explorer .jc-x-ended{border-left:4px solid #2171b5;padding:4px 8px;margin:4px 0;
 background:var(--jp-layout-color2,#f3f6fa)}
</style>"""

#: What the chart's parts mean, shown above it (and in the saved record).
LEGEND = (
    '<div class="jc-x-legend"><b>How to read the bars:</b>'
    '<span class="jc-x-sw" style="background:#c6dbef"></span>after temperature'
    '<span class="jc-x-sw" style="background:#2171b5;height:5px"></span>final: what '
    "<b>Sample</b> draws from (after top_k and top_p). <i>model</i> = the model's own "
    "probability; greyed, struck-out rows can no longer be drawn.</div>"
)

#: Says why the prompt view does not show the chat template by default.
TEMPLATE_NOTE = (
    "The model reads this prompt inside its chat template: a default system prompt and "
    "special tokens (such as <|im_start|>) that mark whose turn it is. "
    "Tick “show chat template” to see exactly what it reads."
)
TEMPLATE_SHOWN = (
    "What the model reads: your prompt inside its chat template (the system prompt and "
    "the special tokens were added by the template, not written by you)."
)


def context_html(state: ExplorerState, *, template: bool = True) -> str:
    """The prompt (as written, or through the chat template) and the generated tokens."""
    model = state.model
    generated = state.generated
    if template or not state.chat:
        shown = model.detokenize(state.prompt_tokens, special=True)
    else:
        shown = state.prompt
    if len(shown) > PROMPT_TAIL:
        shown = "…" + shown[-PROMPT_TAIL:]
    parts = [f'<span class="jc-x-prompt">{html.escape(shown)}</span>']
    last = len(generated) - 1
    if not template and state.chat and not shown.endswith((" ", "\n")):
        shown += "\n"  # the answer starts on its own line, as the assistant turn does
        parts[0] = f'<span class="jc-x-prompt">{html.escape(shown)}</span>'
    for i, token in enumerate(generated):
        css = "jc-x-gen jc-x-last" if i == last else "jc-x-gen"
        text = model.token_text(token)
        if not template and model.is_end(token):
            text = " [end of answer]"
        parts.append(f'<span class="{css}">{html.escape(text)}</span>')
    # column-reverse keeps a scrolled box pinned to its end: the newest token stays in view.
    return f'<div class="jc-x-scroll"><div class="jc-x-context">{"".join(parts)}</div></div>'


def summary_html(state: ExplorerState) -> str:
    """How many tokens survive each sampling step, and the entropy; or that the answer ended."""
    if state.finished:
        end = state.model.token_text(state.generated[-1])
        return (
            '<div class="jc-x-summary jc-x-ended"><b>The model ended its answer here.</b> '
            f"It chose <code>{html.escape(end)}</code>, its end-of-turn token, so the "
            "server would stop too. Sample and Greedy are off; <b>Undo</b> takes the end "
            "token back (to see what else could have come), <b>Reset</b> starts over.</div>"
        )
    st = state.stages
    s = state.settings
    n = st.raw.shape[0]
    tempered = int(np.count_nonzero(st.tempered))
    after_k = int(np.count_nonzero(st.after_top_k))
    final = int(np.count_nonzero(st.final))
    k_text = f"top_k {s.top_k}" if s.top_k else "top_k off"
    p_text = f"top_p {s.top_p:g}" if s.top_p is not None else "top_p off"
    pipeline = (
        f"{n:,} tokens → temperature {s.temperature:g}: <b>{tempered:,}</b> → "
        f"{k_text}: <b>{after_k:,}</b> ({pct(float(st.after_top_k.sum()))} of the mass) → "
        f"{p_text}: <b>{final:,}</b> can be drawn"
    )
    return (
        f'<div class="jc-x-summary">{pipeline}<br>entropy of the final distribution '
        f"<b>{state.entropy:.2f} bits</b> (the model's own: {entropy_bits(st.raw):.2f} "
        f"bits)</div>"
    )


def chart_html(state: ExplorerState, *, inline: bool = False) -> str:
    """The candidates table with bars; ``inline`` styles the bars for the saved record."""
    rows = [
        '<tr><th>#</th><th class="jc-x-tok">token</th><th></th><th>model</th>'
        "<th>after T</th><th>final</th><th></th></tr>"
    ]
    shown_final = 0.0
    for c in state.candidates:
        shown_final += c.final
        why = "" if c.cut_by is None else f"cut by {c.cut_by}"
        css = ' class="jc-x-cut"' if c.cut_by else ""
        if inline:  # the saved record has no stylesheet of the widget's
            bar = (
                '<div style="position:relative;width:220px;height:12px;background:#f0f0f0">'
                '<div style="position:absolute;left:0;top:0;height:100%;background:#c6dbef;'
                f'width:{100 * c.tempered:.1f}%"></div><div style="position:absolute;left:0;'
                f'top:25%;height:50%;background:#2171b5;width:{100 * c.final:.1f}%"></div>'
                "</div>"
            )
        else:
            bar = (
                f'<div class="jc-x-bar"><div class="jc-x-t" style="width:'
                f'{100 * c.tempered:.1f}%"></div><div class="jc-x-f" style="width:'
                f'{100 * c.final:.1f}%"></div></div>'
            )
        rows.append(
            f'<tr{css}><td>{c.rank}</td><td class="jc-x-tok"><code>{show_token(c.text)}</code>'
            f"</td><td>{bar}</td><td>{pct(c.raw)}</td>"
            f"<td>{pct(c.tempered)}</td><td>{pct(c.final)}</td>"
            f'<td class="jc-x-why">{why}</td></tr>'
        )
    rest = max(0.0, 1.0 - shown_final)
    rows.append(
        f'<tr><td></td><td class="jc-x-tok">all others</td><td></td><td></td>'
        f"<td></td><td>{pct(rest)}</td><td></td></tr>"
    )
    return f'<table class="jc-x-chart">{"".join(rows)}</table>'


def steps_html(state: ExplorerState) -> str:
    """The newest `HISTORY_ROWS` steps as a table (empty before the first)."""
    history = state.history
    if not history:
        return ""
    rows = [
        '<tr><th>step</th><th class="jc-x-tok">token</th><th>probability</th>'
        "<th>rank</th><th>out of</th><th>entropy</th><th></th></tr>"
    ]
    for st in history[-HISTORY_ROWS:]:
        rows.append(
            f'<tr><td>{st.index}</td><td class="jc-x-tok"><code>{show_token(st.text)}</code>'
            f"</td><td>{pct(st.probability)}</td><td>{st.rank}</td>"
            f"<td>{st.survivors:,}</td><td>{st.entropy:.2f} bits</td><td>{st.how}</td></tr>"
        )
    return f'<table class="jc-x-steps">{"".join(rows)}</table>'


def pct(p: float) -> str:
    """A probability as a short percentage; tiny but nonzero values are not shown as 0."""
    if p == 0:
        return "0"
    if p < 0.0005:
        return "&lt;0.1%"
    return f"{100 * p:.1f}%"


def show_token(text: str) -> str:
    """A token's text made visible: spaces, newlines and tabs as symbols, HTML-escaped."""
    visible = text.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥")
    return html.escape(visible) if visible else "∅"
