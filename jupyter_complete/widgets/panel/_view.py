"""`PanelView`: the panel's widgets, and what they show (status, error, the answer's label).

Builds the parts the `Panel` docstring lists (prompt box, sliders linked both ways to the
settings, buttons, output, compare grid, samples view, history drop-down) and lays them out
in rows that wrap, so the panel works from about 400 px wide. It sends no request: the
buttons are wired by `jupyter_complete.widgets.panel.Panel`.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from ...record import LiveRecord, live_class
from ...settings import CompletionSettings
from ...sweep import SpreadResult
from .._textview import StreamView
from ..controls import (
    LABEL_WIDTH,
    Binding,
    bind_int_box,
    bind_slider,
    bind_stops,
    bind_text,
    button,
    close_tree,
    make_slider,
    sampling_controls,
    style_widget,
)
from ._compare import CompareGrid
from ._history import History
from ._spread import SpreadView

#: The max tokens slider's range (1 to this); the number box beside it takes any value, and a
#: larger value widens the slider. The demos use 25 to 120.
MAX_TOKENS_SLIDER = 300


class PanelView:
    """The panel's parts and the texts they show; `Panel` adds the requests."""

    #: The settings the controls are linked to.
    settings: CompletionSettings
    #: The static HTML record shown after the widget (see `jupyter_complete.record`).
    record: LiveRecord
    #: Every run, shown in the history drop-down.
    _history: History
    #: Every "n samples per setting" result, oldest first (the last is in ``spread_view``).
    _spreads: list[SpreadResult]

    # -- widgets -----------------------------------------------------------------------
    def _build(self, prompt: str) -> None:
        """Make every part (``settings`` and ``record`` are set), linked to ``settings``."""
        traits = CompletionSettings.class_traits()
        label_style = {"description_width": LABEL_WIDTH}
        self.prompt_box = widgets.Textarea(
            value=prompt,
            rows=5,
            layout=widgets.Layout(width="auto"),
            placeholder="Prompt. Plain text is sent as a Human turn; Human:/Assistant: turns "
            "are kept.",
        )
        self.system_box = widgets.Text(
            description="system",
            placeholder="optional system prompt",
            tooltip=traits["system"].help,
            style=label_style,
            layout=widgets.Layout(width="auto"),
        )
        sampling = sampling_controls(
            self.settings,
            "Send {name}. Unchecked: leave it unset (the API's advice unless needed).",
            min_width="0",
            width="100%",
        )
        self.temperature_slider = sampling.temperature_slider
        self.top_k_check, self.top_k_slider = sampling.top_k_check, sampling.top_k_slider
        self.top_p_check, self.top_p_slider = sampling.top_p_check, sampling.top_p_slider
        self.max_tokens_slider = make_slider("max_tokens", maximum=MAX_TOKENS_SLIDER)
        self.max_tokens_slider.layout.flex = "1 1 auto"
        self.max_tokens_box = widgets.BoundedIntText(
            value=self.settings.max_tokens,
            min=1,
            max=10**9,
            tooltip=f"max tokens, exactly (any value; the slider covers 1 to {MAX_TOKENS_SLIDER})",
            layout=widgets.Layout(width="6em", flex="0 0 auto"),
        )
        self.model_box = widgets.Text(
            description="model",
            placeholder="server default",
            tooltip=traits["model"].help,
            style=label_style,
            layout=widgets.Layout(width="auto", max_width="24em"),
        )
        self.stop_box = widgets.TagsInput(
            value=[],
            allow_duplicates=False,
            placeholder="stop sequence",
            tooltip=traits["stop_sequences"].help + " Type \\n for a newline, \\t for a tab.",
            layout=widgets.Layout(width="auto", flex="1 1 auto", min_width="0"),
        )
        self.run_button = button(
            "Run", "play", "Send the prompt with these settings", button_style="primary"
        )
        self.stop_button = button(
            "Stop",
            "stop",
            "Close the connection now; the text so far is kept",
            button_style="warning",
            disabled=True,
        )
        self.compare_button = button(
            "Compare",
            "columns",
            "Run the prompt once per temperature (0, 0.5, 1) or N times (x3), side by side",
        )
        self.compare_values = widgets.Text(
            value="0, 0.5, 1",
            placeholder="0, 0.5, 1  or  x3",
            tooltip="Temperatures to compare, or xN for N samples at these settings",
            layout=widgets.Layout(width="10em"),
        )
        self.spread_button = button(
            "Samples",
            "bar-chart",
            "n samples per setting: draw n answers at each value of one parameter "
            "and chart how different they are",
        )
        self.spread_values = widgets.Text(
            value="temperature 0.2, 0.6, 1 x5",
            placeholder="temperature 0.2, 0.6, 1 x5",
            tooltip="The parameter (temperature, top_p or top_k), its values, and xN samples "
            "per value; the other settings are the panel's",
            layout=widgets.Layout(width="15em"),
        )
        self.status = widgets.HTML()
        self.error = widgets.HTML()
        #: Says which run the output holds (and, during a compare, that it is the earlier one).
        self.answer_label = widgets.HTML()
        self.output = StreamView(placeholder="The answer streams here.")
        #: The answers of the last compare, side by side.
        self.compare_grid = CompareGrid()
        #: The last "n samples per setting" result: figures, chart, answers.
        self.spread_view = SpreadView()
        self.history_select = widgets.Dropdown(
            options=[],
            description="history",
            style=label_style,
            layout=widgets.Layout(width="100%"),
        )
        self.load_button = button(
            "Load",
            "upload",
            "Put this run's prompt and settings back into the controls",
            disabled=True,
        )
        self._answer_label_text = ""
        self._error_text: str | None = None
        self._set_status("idle")

        # Rows wrap instead of clipping: from about 400 px wide the panel stacks its parts.
        def row(children: list[Any], **layout: str) -> Any:
            box = widgets.HBox(
                children,
                layout=widgets.Layout(flex_flow="row wrap", width="100%", min_width="0", **layout),
            )
            box.add_class("jc-wrap")
            return box

        def grow(**layout: str) -> Any:
            return widgets.Layout(min_width="0", **layout)

        sliders = widgets.VBox(
            [
                *sampling.rows,
                widgets.HBox(
                    [self.max_tokens_slider, self.max_tokens_box],
                    layout=grow(width="100%", align_items="center"),
                ),
            ],
            layout=grow(flex="1 1 22em", max_width="36em"),
        )
        stops = widgets.HBox(
            [
                widgets.Label("stop", layout=widgets.Layout(width=LABEL_WIDTH, flex="0 0 auto")),
                self.stop_box,
            ],
            layout=grow(width="100%"),
        )
        side = widgets.VBox([self.model_box, stops], layout=grow(flex="1 1 16em"))
        buttons = row(
            [
                self.run_button,
                self.stop_button,
                self.compare_button,
                self.compare_values,
                self.spread_button,
                self.spread_values,
            ]
        )
        self.history_select.layout = widgets.Layout(flex="1 1 20em", min_width="0")
        history = row([self.history_select, self.load_button])
        #: The whole panel (what a notebook displays).
        self.widget = widgets.VBox(
            [
                style_widget(),
                self.prompt_box,
                self.system_box,
                row([sliders, side]),
                buttons,
                self.status,
                self.error,
                self.answer_label,
                self.output.box,
                self.compare_grid.box,
                self.spread_view.box,
                history,
            ],
            layout=widgets.Layout(width="100%", min_width="0"),
        )
        # CSS classes for styling and for browser tests to find the parts.
        for part, name in (
            (self.widget, "jc-panel"),
            (self.output.box, "jc-output"),
            (self.status, "jc-status"),
            (self.error, "jc-error"),
            (self.answer_label, "jc-answer-label"),
            (self.compare_grid.box, "jc-compare"),
            (self.spread_view.box, "jc-spread-view"),
            (self.history_select, "jc-history"),
            (self.widget, live_class(self.record.id)),
        ):
            part.add_class(name)
        self._bindings: list[Binding] = [
            *sampling.bindings,
            bind_slider(self.settings, "max_tokens", self.max_tokens_slider),
            bind_int_box(self.settings, "max_tokens", self.max_tokens_box),
            bind_text(self.settings, "model", self.model_box),
            bind_text(self.settings, "system", self.system_box),
            bind_stops(self.settings, self.stop_box),
        ]

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def _set_answer_label(self, text: str) -> None:
        self._answer_label_text = text
        self.answer_label.value = (
            ""
            if not text
            else (f'<span style="font-size:90%;font-weight:600">{html.escape(text)}</span>')
        )

    def _set_status(self, text: str) -> None:
        self._status_text = text
        self.status.value = (
            '<span style="color:var(--jp-ui-font-color2,#666);font-size:90%">'
            f"{html.escape(text)}</span>"
        )

    def _show_error(self, text: str | None) -> None:
        self._error_text = text or None
        self.error.value = (
            ""
            if not text
            else (f'<div style="color:var(--jp-error-color1,#c62828)">⚠ {html.escape(text)}</div>')
        )

    def _show_running(self) -> None:
        """While a request runs, only Stop can be pressed."""
        for part in (self.run_button, self.compare_button, self.spread_button, self.load_button):
            part.disabled = True
        self.stop_button.disabled = False

    def _show_idle(self) -> None:
        """After a run: the newest run selected in the history, Stop off, the rest on."""
        self._show_history()
        self.stop_button.disabled = True
        for part in (self.run_button, self.compare_button, self.spread_button):
            part.disabled = False

    def _show_history(self) -> None:
        options = self._history.options()
        self.history_select.options = options
        if options:
            self.history_select.value = options[0][1]  # the newest run
        self.load_button.disabled = not options

    def close(self) -> None:
        """Unlink the settings and close every widget of the panel."""
        for binding in self._bindings:
            binding.unbind()
        self._bindings = []
        self.compare_grid.close()
        self.spread_view.close()
        self.output.close()
        close_tree(self.widget)
