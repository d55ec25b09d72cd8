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
import logging
from typing import Any

import ipywidgets as widgets

from ..record import LiveRecord, bundle, live_class
from ._explorer_html import (
    CSS,
    LEGEND,
    TEMPLATE_NOTE,
    TEMPLATE_SHOWN,
    chart_html,
    context_html,
    steps_html,
    summary_html,
)
from ._explorer_state import Candidate, ExplorerState, Step, default_model
from .controls import SAMPLING, Binding, button, close_tree, sampling_controls, style_widget

_SAMPLE_TIP = "Draw the next token by its final probability and append it"
_GREEDY_TIP = "Append the likeliest token (what temperature 0 does)"


class Explorer(ExplorerState):
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

    Raises:
        ValueError: ``top`` below 1, or an empty prompt.

    The stepping and the distribution are `ExplorerState`'s; this class adds the widgets.
    """

    def _opened(self) -> None:
        #: The static HTML record shown after the widget (see `jupyter_complete.record`).
        self.record = LiveRecord("explorer")
        self._build()
        self.settings.observe(self._settings_changed, names=list(SAMPLING))
        self._render()

    # -- widgets -----------------------------------------------------------------------
    def _build(self) -> None:
        sampling = sampling_controls(self.settings, "Apply {name}. Unchecked: no {name} cut.")
        self.temperature_slider = sampling.temperature_slider
        self.top_k_check, self.top_k_slider = sampling.top_k_check, sampling.top_k_slider
        self.top_p_check, self.top_p_slider = sampling.top_p_check, sampling.top_p_slider
        self._bindings: list[Binding] = sampling.bindings
        self.sample_button = button("Sample", "random", _SAMPLE_TIP, button_style="primary")
        self.greedy_button = button("Greedy", "arrow-right", _GREEDY_TIP)
        self.undo_button = button("Undo", "undo", "Remove the last token")
        self.reset_button = button("Reset", "refresh", "Back to the prompt")
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
        sliders = widgets.VBox(sampling.rows)
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
                widgets.HTML(CSS),
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
            f"{context_html(self, template=False)}{summary_html(self)}"
            f"{'' if self.finished else LEGEND + chart_html(self, inline=True)}"
            f"{steps_html(self)}"
        )
        plain = f"Sampling explorer: {self._prompt!r} + {self.text!r}"
        if self.finished:
            plain += " (the model ended its answer)"
        return bundle(self.record.id, "explorer", body, plain, self.to_state())

    def __repr__(self) -> str:
        return f"<Explorer {len(self._generated)} tokens generated, {self.survivors} can come next>"

    # -- rendering ---------------------------------------------------------------------
    def _changed(self) -> None:
        self._render()

    def _settings_changed(self, _change: dict[str, Any]) -> None:
        self._render()

    def _render(self) -> None:
        # Assigning an equal string is not a change: nothing is sent for unchanged parts.
        template = bool(self.template_toggle.value)
        self.context_view.value = context_html(self, template=template)
        if self.chat:
            note = TEMPLATE_SHOWN if template else TEMPLATE_NOTE
            self.template_note.value = f'<div class="jc-x-note">{html.escape(note)}</div>'

        self.summary.value = summary_html(self)
        done = self.finished
        # After the end token the distribution means nothing (the server stops there).
        self.chart.value = "" if done else chart_html(self)
        self.legend.layout.display = "none" if done else ""
        self.steps_view.value = steps_html(self)
        self.sample_button.disabled = done
        self.greedy_button.disabled = done
        why = "The model ended its answer; Undo or Reset to go on"
        self.sample_button.tooltip = why if done else _SAMPLE_TIP
        self.greedy_button.tooltip = why if done else _GREEDY_TIP
        self.undo_button.disabled = not self._generated
        self.reset_button.disabled = not self._generated
        try:
            self.record.update(*self.record_bundle())
        except Exception:  # noqa: BLE001 - the live explorer must keep working without it
            logging.getLogger("jupyter_complete").exception("explorer record update failed")

    # -- lifetime ----------------------------------------------------------------------
    def close(self) -> None:
        """Unlink the settings and close every widget (the model stays loaded); idempotent."""
        if not self._bindings:
            return
        self.settings.unobserve(self._settings_changed, names=list(SAMPLING))
        for binding in self._bindings:
            binding.unbind()
        self._bindings = []
        close_tree(self.widget)


__all__ = ["Candidate", "Explorer", "Step", "default_model"]
