"""`Explorer`: the built-in model's next-token distribution, and how sampling reshapes it.

::

    from jupyter_complete import Explorer
    ex = Explorer("Human: What is the capital of France?\\nAssistant: The capital of France is")
    ex                      # sliders, the top candidates as bars, Sample / Greedy / Undo / Reset
    ex.settings.top_k = 5   # the sliders follow, and so does the chart
    ex.sample()             # draw the next token by the final probabilities and append it

The distribution is computed with `jupyter_complete.sampling.stages` on the logits of the same
`LocalModel` that answers ``%%complete`` offline, for the same tokens the server would feed it
(the prompt is built as ``%%complete`` builds it and rendered through the model's chat
template). The server draws its tokens with those functions too, so the chart is what the
server does, not an illustration of it.

The chart is plain HTML in one ``HTML`` widget (no plotting library), replaced only when
something it shows changed; a slider change sends a few kilobytes.
"""

from __future__ import annotations

import dataclasses
import html
import os
import threading
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import numpy as np
import numpy.typing as npt

from .. import prompt as prompts
from .._constants import ENV_API_KEY, ENV_BASE_URL
from ..record import LiveRecord, bundle, live_class
from ..sampling import Stages, entropy_bits, sample, stages
from ..settings import CompletionSettings
from .controls import (
    Binding,
    bind_optional,
    bind_slider,
    close_tree,
    make_optional_slider,
    make_slider,
    style_widget,
)

if TYPE_CHECKING:
    from ..local.model import LocalModel

#: How many candidates the chart shows by default.
DEFAULT_TOP = 15
#: Characters of the prompt shown before the generated tokens (the rest is elided).
PROMPT_TAIL = 400
#: Steps listed in the history table (the newest; `Explorer.history` keeps them all).
HISTORY_ROWS = 12

# The settings the explorer shows; the others (max_tokens, stop sequences) do not change
# the next-token distribution.
_SAMPLING = ("temperature", "top_k", "top_p")

# Sent once, in its own widget, so chart updates carry only class names.
_CSS = """<style>
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

_MODEL_LOCK = threading.Lock()
_PRIVATE_MODEL: LocalModel | None = None


def default_model() -> LocalModel:
    """The built-in model, shared with the embedded server when that is what answers.

    If the embedded server is running, its model. Else, if no API key and no base URL are set
    (so ``%%complete`` would start the embedded server anyway), the server is started and its
    model used: one model in memory, and the explorer shows exactly the model that answers.
    Otherwise a `LocalModel` loaded once per process.
    """
    global _PRIVATE_MODEL
    from ..local import embedded

    server = embedded.running_server()
    if server is None and not (os.environ.get(ENV_API_KEY) or os.environ.get(ENV_BASE_URL)):
        embedded.ensure_started()
        server = embedded.running_server()
    if server is not None:
        return server.model
    with _MODEL_LOCK:
        if _PRIVATE_MODEL is None:
            from ..local.model import LocalModel

            _PRIVATE_MODEL = LocalModel()
        return _PRIVATE_MODEL


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One likely next token and what each sampling step did to it."""

    #: 1 for the model's likeliest token (ranked by logit, before any sampling step).
    rank: int
    #: Token id.
    token: int
    #: The token as text (special tokens by name, e.g. ``<|im_end|>``).
    text: str
    #: The model's own probability, ``softmax(logits)``.
    raw: float
    #: After temperature (``Stages.tempered``).
    tempered: float
    #: The probability `sample` draws it with (``Stages.final``); 0 if it was cut.
    final: float
    #: None if it can be drawn; else the step that removed it: ``"temperature"`` (0 means
    #: greedy, only the likeliest token is left), ``"top_k"`` or ``"top_p"``.
    cut_by: str | None


@dataclasses.dataclass(frozen=True)
class Step:
    """One token appended by `Explorer.sample` or `Explorer.greedy`."""

    #: 1 for the first generated token.
    index: int
    #: Token id.
    token: int
    #: The token as text.
    text: str
    #: Its probability in the distribution it was drawn from (``Stages.final``).
    probability: float
    #: Its rank in the model's own distribution (1 = likeliest).
    rank: int
    #: How many tokens could have been drawn.
    survivors: int
    #: Entropy of that distribution, in bits.
    entropy: float
    #: ``"sampled"`` or ``"greedy"``.
    how: str
    #: The settings it was drawn with.
    temperature: float
    top_k: int | None
    top_p: float | None


class Explorer:
    """A teaching widget: the next-token distribution of the built-in model, step by step.

    Sliders for temperature, top_k and top_p (each of the last two with a checkbox: unchecked
    means unset, no cut) are linked both ways to ``settings``. The chart lists the top
    candidates for the next token: the model's probability, the probability after temperature
    (pale bar), the final probability `sample` uses (dark bar), and which step cut the tokens
    that cannot be drawn. Above it, how many tokens survive each step and the entropy of the
    final distribution. **Sample** draws the next token by the final probabilities and appends
    it; **Greedy** appends the likeliest; **Undo** and **Reset** go back. The prompt view shows
    the text growing, the last token highlighted, and the steps are listed below.

    Args:
        prompt: the prompt. As in ``%%complete``: plain text becomes a Human turn, typed
            ``Human:``/``Assistant:`` turns are kept, and text after the last ``Assistant:``
            is a prefill the model continues; the model sees it through its chat template,
            exactly as the local server renders it. With ``chat=False`` the text is fed to
            the model as is (a plain continuation, no template).
        model: a `jupyter_complete.local.LocalModel`; None means the built-in model
            (`default_model`: shared with the embedded server).
        settings: the `CompletionSettings` to show and change; None means fresh ones
            (temperature 1, no top_k, no top_p: the model's own distribution).
        chat: False to skip the chat template.
        top: how many candidates the chart shows.
        seed: seed for the random generator that `sample` uses (None: unpredictable).
    """

    def __init__(
        self,
        prompt: str,
        model: LocalModel | None = None,
        settings: CompletionSettings | None = None,
        *,
        chat: bool = True,
        top: int = DEFAULT_TOP,
        seed: int | None = None,
    ) -> None:
        if top < 1:
            raise ValueError("top must be at least 1")
        #: The settings the sliders are linked to.
        self.settings = settings if settings is not None else CompletionSettings()
        #: The model whose logits are shown.
        self.model: LocalModel = model if model is not None else default_model()
        #: The random generator `sample` draws with (assign a new one to re-seed).
        self.rng = np.random.default_rng(seed)
        self.chat = chat
        self.top = int(top)
        self._prompt = ""
        self._prompt_tokens: list[int] = []
        self._generated: list[int] = []
        self._history: list[Step] = []
        self._logits: dict[tuple[int, ...], npt.NDArray[np.float32]] = {}
        self._stages_key: tuple[Any, ...] | None = None
        self._stages: Stages | None = None
        #: The static HTML record shown after the widget (see `jupyter_complete.record`).
        self.record = LiveRecord("explorer")
        self._set_prompt(prompt)
        self._build()
        self._bindings: list[Binding] = [
            bind_slider(self.settings, "temperature", self.temperature_slider),
            bind_optional(self.settings, "top_k", self.top_k_check, self.top_k_slider),
            bind_optional(self.settings, "top_p", self.top_p_check, self.top_p_slider),
        ]
        self.settings.observe(self._settings_changed, names=list(_SAMPLING))
        self._render()

    # -- widgets -----------------------------------------------------------------------
    def _build(self) -> None:
        self.temperature_slider = make_slider("temperature")
        self.top_k_slider, self.top_k_check = _explorer_optional_slider("top_k")
        self.top_p_slider, self.top_p_check = _explorer_optional_slider("top_p")
        self.sample_button = widgets.Button(
            description="Sample",
            icon="random",
            button_style="primary",
            tooltip="Draw the next token by its final probability and append it",
        )
        self.greedy_button = widgets.Button(
            description="Greedy",
            icon="arrow-right",
            tooltip="Append the likeliest token (what temperature 0 does)",
        )
        self.undo_button = widgets.Button(
            description="Undo", icon="undo", tooltip="Remove the last token"
        )
        self.reset_button = widgets.Button(
            description="Reset", icon="refresh", tooltip="Back to the prompt"
        )
        self.sample_button.on_click(lambda _: self.sample())
        self.greedy_button.on_click(lambda _: self.greedy())
        self.undo_button.on_click(lambda _: self.undo())
        self.reset_button.on_click(lambda _: self.reset())
        #: Off: the prompt as written; on: the chat template the model actually reads.
        self.template_toggle = widgets.Checkbox(
            value=False,
            description="show chat template",
            indent=False,
            tooltip="Show the prompt as the model reads it: its chat template, with the "
            "default system prompt and special tokens",
            layout=widgets.Layout(width="auto"),
        )
        self.template_toggle.layout.display = "" if self.chat else "none"
        self.template_toggle.observe(lambda _: self._render(), names="value")
        #: Why the template is hidden (shown while it is).
        self.template_note = widgets.HTML(
            f'<div class="jc-x-note">{html.escape(TEMPLATE_NOTE)}</div>' if self.chat else ""
        )
        #: The prompt and the tokens appended so far.
        self.context_view = widgets.HTML()
        #: Survivors of each step and the entropy.
        self.summary = widgets.HTML()
        #: The candidates table with its bars.
        self.chart = widgets.HTML()
        #: The last steps.
        self.steps_view = widgets.HTML()
        sliders = widgets.VBox(
            [
                self.temperature_slider,
                widgets.HBox([self.top_k_check, self.top_k_slider]),
                widgets.HBox([self.top_p_check, self.top_p_slider]),
            ]
        )
        buttons = widgets.HBox(
            [
                self.sample_button,
                self.greedy_button,
                self.undo_button,
                self.reset_button,
            ]
        )
        #: The whole explorer (what a notebook displays).
        self.legend = widgets.HTML(LEGEND)
        self.widget = widgets.VBox(
            [
                widgets.HTML(_CSS),
                style_widget(),
                self.template_note,
                self.template_toggle,
                self.context_view,
                sliders,
                buttons,
                self.summary,
                self.legend,
                self.chart,
                self.steps_view,
            ],
            layout=widgets.Layout(width="100%", min_width="0"),
        )
        self.widget.add_class("jc-explorer")
        self.widget.add_class(live_class(self.record.id))

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self) -> None:
        # The widget, then its static record (kept current; see jupyter_complete.record).
        self.record.show(self.widget, *self.record_bundle())

    def to_state(self) -> dict[str, Any]:
        """What the explorer shows, as JSON-safe data (what its record saves).

        Keys: ``prompt``, ``chat``, ``settings`` (temperature, top_k, top_p), ``generated``
        (token ids), ``text``, ``finished``, ``steps`` (`Step` fields, oldest first).
        """
        s = self.settings
        return {
            "prompt": self._prompt,
            "chat": self.chat,
            "settings": {"temperature": s.temperature, "top_k": s.top_k, "top_p": s.top_p},
            "generated": list(self._generated),
            "text": self.text,
            "finished": self.finished,
            "steps": [dataclasses.asdict(step) for step in self._history],
        }

    def record_bundle(self) -> tuple[dict[str, str], dict[str, Any]]:
        """The record's MIME bundle (text/html, text/plain) and metadata, as of now."""
        body = (
            f'<div><b>Sampling explorer</b> <span class="jc-r-note">(saved record '
            f"<code>{html.escape(self.record.id)}</code>)</span></div>"
            f"{self._context_html(template=False)}{self._summary_html()}"
            f"{'' if self.finished else LEGEND + self._chart_html(inline=True)}"
            f"{self._steps_html()}"
        )
        plain = f"Sampling explorer: {self._prompt!r} + {self.text!r}"
        if self.finished:
            plain += " (the model ended its answer)"
        return bundle(self.record.id, "explorer", body, plain, self.to_state())

    def __repr__(self) -> str:
        return f"<Explorer {len(self._generated)} tokens generated, {self.survivors} can come next>"

    # -- the context -------------------------------------------------------------------
    def _set_prompt(self, prompt: str) -> None:
        if not prompt.strip():
            raise ValueError("the prompt must not be empty")
        if self.chat:
            conversation = prompts.parse(prompts.build(prompt, system=self.settings.system))
            tokens = self.model.apply_chat_template(conversation)
        else:
            # add_bos follows the model's own flag (SmolLM2 adds none).
            tokens = self.model.tokenize(prompt, add_bos=True)
        self._prompt = prompt
        self._prompt_tokens = tokens
        self._generated = []
        self._history = []
        self._logits = {}
        self._stages = None
        self._stages_key = None

    @property
    def prompt(self) -> str:
        """The prompt as given (see `reset` to change it)."""
        return self._prompt

    @property
    def wire_prompt(self) -> str:
        """The prompt as ``%%complete`` (or the panel) would send it, for comparisons."""
        if not self.chat:
            raise ValueError("with chat=False there is no Human/Assistant wire prompt")
        return prompts.build(self._prompt, system=self.settings.system)

    @property
    def tokens(self) -> list[int]:
        """Every token the model is conditioned on: the rendered prompt, then the generated."""
        return [*self._prompt_tokens, *self._generated]

    @property
    def generated(self) -> list[int]:
        """The tokens appended so far."""
        return list(self._generated)

    @property
    def text(self) -> str:
        """The generated text (decoded as a whole, so characters split across tokens join)."""
        data = b"".join(
            self.model.token_bytes(t) for t in self._generated if not self.model.is_end(t)
        )
        return data.decode("utf-8", errors="replace")

    @property
    def history(self) -> list[Step]:
        """Every step, oldest first."""
        return list(self._history)

    @property
    def finished(self) -> bool:
        """True once the model ended its turn (the server would stop there too)."""
        return bool(self._generated) and self.model.is_end(self._generated[-1])

    # -- the distribution --------------------------------------------------------------
    @property
    def logits(self) -> npt.NDArray[np.float32]:
        """The model's next-token logits for `tokens` (read-only; cached per context)."""
        key = tuple(self._generated)
        cached = self._logits.get(key)
        if cached is None:
            if len(self._logits) >= 64:
                self._logits.clear()  # undo/redo needs only recent contexts
            cached = self.model.next_logits(self.tokens)
            cached.flags.writeable = False
            self._logits[key] = cached
        return cached

    @property
    def stages(self) -> Stages:
        """`sampling.stages` of `logits` at the current settings: what the server samples."""
        s = self.settings
        key = (tuple(self._generated), s.temperature, s.top_k, s.top_p)
        if self._stages is None or key != self._stages_key:
            self._stages = stages(self.logits, s.temperature, s.top_k, s.top_p)
            self._stages_key = key
        return self._stages

    @property
    def entropy(self) -> float:
        """Entropy of the final distribution, in bits (0 when only one token can come)."""
        return entropy_bits(self.stages.final)

    @property
    def survivors(self) -> int:
        """How many tokens can be drawn next."""
        return int(np.count_nonzero(self.stages.final))

    @property
    def candidates(self) -> list[Candidate]:
        """The `top` likeliest next tokens (by the model's logits), with every stage."""
        return self._candidates(self.top)

    def _candidates(self, count: int) -> list[Candidate]:
        logits = self.logits
        n = logits.shape[0]
        count = min(count, n)
        head = np.argpartition(logits, n - count)[n - count :]
        order = head[np.argsort(-logits[head], kind="stable")]
        st = self.stages
        out = []
        for rank, token in enumerate(order.tolist(), start=1):
            if st.tempered[token] == 0:
                cut: str | None = "temperature"
            elif st.after_top_k[token] == 0:
                cut = "top_k"
            elif st.after_top_p[token] == 0:
                cut = "top_p"
            else:
                cut = None
            out.append(
                Candidate(
                    rank=rank,
                    token=token,
                    text=self.model.token_text(token),
                    raw=float(st.raw[token]),
                    tempered=float(st.tempered[token]),
                    final=float(st.final[token]),
                    cut_by=cut,
                )
            )
        return out

    # -- stepping ----------------------------------------------------------------------
    def sample(self) -> Step:
        """Draw the next token from the final distribution (`sampling.sample`) and append it."""
        return self._append(greedy=False)

    def greedy(self) -> Step:
        """Append the likeliest next token (what temperature 0 does, whatever the sliders)."""
        return self._append(greedy=True)

    def step(self, count: int = 1, *, greedy: bool = False) -> list[Step]:
        """Append up to ``count`` tokens, one at a time; stops early if the model ends its turn."""
        steps: list[Step] = []
        for _ in range(count):
            if self.finished:
                break
            steps.append(self._append(greedy=greedy))
        return steps

    def _append(self, *, greedy: bool) -> Step:
        if self.finished:
            raise RuntimeError("The model ended its turn here; undo or reset to go on.")
        st = self.stages
        logits = self.logits
        token = int(np.argmax(logits)) if greedy else sample(st.final, self.rng)
        s = self.settings
        record = Step(
            index=len(self._generated) + 1,
            token=token,
            text=self.model.token_text(token),
            probability=float(st.final[token]),
            rank=int(np.count_nonzero(logits > logits[token])) + 1,
            survivors=int(np.count_nonzero(st.final)),
            entropy=entropy_bits(st.final),
            how="greedy" if greedy else "sampled",
            temperature=s.temperature,
            top_k=s.top_k,
            top_p=s.top_p,
        )
        self._generated.append(token)
        self._history.append(record)
        self._render()
        return record

    def undo(self) -> Step | None:
        """Remove the last appended token; returns its step (None if there was none)."""
        if not self._generated:
            return None
        self._generated.pop()
        record = self._history.pop()
        self._render()
        return record

    def reset(self, prompt: str | None = None) -> None:
        """Drop the generated tokens; with ``prompt``, start over from a new prompt."""
        self._set_prompt(self._prompt if prompt is None else prompt)
        self._render()

    # -- rendering ---------------------------------------------------------------------
    def _settings_changed(self, _change: dict[str, Any]) -> None:
        self._render()

    def _render(self) -> None:
        # Assigning an equal string is not a change: nothing is sent for unchanged parts.
        template = bool(self.template_toggle.value) if hasattr(self, "template_toggle") else False
        self.context_view.value = self._context_html(template=template)
        if self.chat:
            note = TEMPLATE_SHOWN if template else TEMPLATE_NOTE
            self.template_note.value = f'<div class="jc-x-note">{html.escape(note)}</div>'

        self.summary.value = self._summary_html()
        done = self.finished
        # After the end token the distribution means nothing (the server stops there).
        self.chart.value = "" if done else self._chart_html()
        self.legend.layout.display = "none" if done else ""
        self.steps_view.value = self._steps_html()
        self.sample_button.disabled = done
        self.greedy_button.disabled = done
        why = "The model ended its answer; Undo or Reset to go on"
        self.sample_button.tooltip = (
            why if done else ("Draw the next token by its final probability and append it")
        )
        self.greedy_button.tooltip = (
            why if done else ("Append the likeliest token (what temperature 0 does)")
        )
        self.undo_button.disabled = not self._generated
        self.reset_button.disabled = not self._generated
        try:
            self.record.update(*self.record_bundle())
        except Exception:  # noqa: BLE001 - the live explorer must keep working without it
            import logging

            logging.getLogger("jupyter_complete").exception("explorer record update failed")

    def _context_html(self, *, template: bool = True) -> str:
        model = self.model
        if template or not self.chat:
            shown = model.detokenize(self._prompt_tokens, special=True)
        else:
            shown = self._prompt
        if len(shown) > PROMPT_TAIL:
            shown = "…" + shown[-PROMPT_TAIL:]
        parts = [f'<span class="jc-x-prompt">{html.escape(shown)}</span>']
        last = len(self._generated) - 1
        if not template and self.chat and not shown.endswith((" ", "\n")):
            shown += "\n"  # the answer starts on its own line, as the assistant turn does
            parts[0] = f'<span class="jc-x-prompt">{html.escape(shown)}</span>'
        for i, token in enumerate(self._generated):
            css = "jc-x-gen jc-x-last" if i == last else "jc-x-gen"
            text = model.token_text(token)
            if not template and model.is_end(token):
                text = " [end of answer]"
            parts.append(f'<span class="{css}">{html.escape(text)}</span>')
        # column-reverse keeps a scrolled box pinned to its end: the newest token stays in view.
        return f'<div class="jc-x-scroll"><div class="jc-x-context">{"".join(parts)}</div></div>'

    def _summary_html(self) -> str:
        if self.finished:
            end = self.model.token_text(self._generated[-1])
            return (
                '<div class="jc-x-summary jc-x-ended"><b>The model ended its answer here.</b> '
                f"It chose <code>{html.escape(end)}</code>, its end-of-turn token, so the "
                "server would stop too. Sample and Greedy are off; <b>Undo</b> takes the end "
                "token back (to see what else could have come), <b>Reset</b> starts over.</div>"
            )
        st = self.stages
        s = self.settings
        n = st.raw.shape[0]
        tempered = int(np.count_nonzero(st.tempered))
        after_k = int(np.count_nonzero(st.after_top_k))
        final = int(np.count_nonzero(st.final))
        k_text = f"top_k {s.top_k}" if s.top_k else "top_k off"
        p_text = f"top_p {s.top_p:g}" if s.top_p is not None else "top_p off"
        pipeline = (
            f"{n:,} tokens → temperature {s.temperature:g}: <b>{tempered:,}</b> → "
            f"{k_text}: <b>{after_k:,}</b> ({_pct(float(st.after_top_k.sum()))} of the mass) → "
            f"{p_text}: <b>{final:,}</b> can be drawn"
        )
        return (
            f'<div class="jc-x-summary">{pipeline}<br>entropy of the final distribution '
            f"<b>{self.entropy:.2f} bits</b> (the model's own: {entropy_bits(st.raw):.2f} "
            f"bits)</div>"
        )

    def _chart_html(self, *, inline: bool = False) -> str:
        rows = [
            '<tr><th>#</th><th class="jc-x-tok">token</th><th></th><th>model</th>'
            "<th>after T</th><th>final</th><th></th></tr>"
        ]
        shown_final = 0.0
        for c in self.candidates:
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
                f'<tr{css}><td>{c.rank}</td><td class="jc-x-tok"><code>{_show(c.text)}</code>'
                f"</td><td>{bar}</td><td>{_pct(c.raw)}</td>"
                f"<td>{_pct(c.tempered)}</td><td>{_pct(c.final)}</td>"
                f'<td class="jc-x-why">{why}</td></tr>'
            )
        rest = max(0.0, 1.0 - shown_final)
        rows.append(
            f'<tr><td></td><td class="jc-x-tok">all others</td><td></td><td></td>'
            f"<td></td><td>{_pct(rest)}</td><td></td></tr>"
        )
        return f'<table class="jc-x-chart">{"".join(rows)}</table>'

    def _steps_html(self) -> str:
        if not self._history:
            return ""
        rows = [
            '<tr><th>step</th><th class="jc-x-tok">token</th><th>probability</th>'
            "<th>rank</th><th>out of</th><th>entropy</th><th></th></tr>"
        ]
        for st in self._history[-HISTORY_ROWS:]:
            rows.append(
                f'<tr><td>{st.index}</td><td class="jc-x-tok"><code>{_show(st.text)}</code>'
                f"</td><td>{_pct(st.probability)}</td><td>{st.rank}</td>"
                f"<td>{st.survivors:,}</td><td>{st.entropy:.2f} bits</td><td>{st.how}</td></tr>"
            )
        return f'<table class="jc-x-steps">{"".join(rows)}</table>'

    # -- lifetime ----------------------------------------------------------------------
    def close(self) -> None:
        """Unlink the settings and close every widget (the model stays loaded); idempotent."""
        if not self._bindings:
            return
        self.settings.unobserve(self._settings_changed, names=list(_SAMPLING))
        for binding in self._bindings:
            binding.unbind()
        self._bindings = []
        close_tree(self.widget)


def _pct(p: float) -> str:
    """A probability as a short percentage; tiny but nonzero values are not shown as 0."""
    if p == 0:
        return "0"
    if p < 0.0005:
        return "&lt;0.1%"
    return f"{100 * p:.1f}%"


def _show(text: str) -> str:
    """A token's text made visible: spaces, newlines and tabs as symbols, HTML-escaped."""
    visible = text.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥")
    return html.escape(visible) if visible else "∅"


__all__ = ["Candidate", "Explorer", "Step", "default_model"]


def _explorer_optional_slider(name: str) -> tuple[Any, Any]:
    return make_optional_slider(name, f"Apply {name}. Unchecked: no {name} cut.")
