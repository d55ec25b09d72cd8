"""Controls built from the settings declaration, and kept equal to the settings both ways.

Each `Binding` observes the setting and its widgets; a change on either side is copied to
the other, with a guard so the copy does not bounce back. ``widgets.link`` is not enough
here: an optional setting maps to a checkbox *and* a slider, and a value beyond a slider's
range (``max_tokens = 4096`` from ``%config``) must widen the slider instead of being
clamped by it and written back.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import ipywidgets as widgets
from traitlets import Float, TraitError

from ..prompt import escape_stop_sequence, unescape_stop_sequence
from ..settings import CompletionSettings, slider_spec

#: Label width shared by every control, so the sliders line up.
LABEL_WIDTH = "7em"

#: The widest a slider grows; narrower outputs shrink it (the panel works from 400 px up).
SLIDER_WIDTH = "30em"

#: Styles shared by the panel and the explorer, sent once in a hidden widget (`style_widget`).
#: An unset optional setting (``.jc-off``) greys its track and handle and says "off" in place
#: of the value, so an unchecked top_k does not look like an active 40.
CSS = (
    "<style>"
    ".jc-off .noUi-target,.jc-off .noUi-handle,.jc-off .slider-container{opacity:.3}"
    ".jc-off.widget-slider::after{content:'off';font-size:var(--jp-widgets-font-size,13px);"
    "color:var(--jp-ui-font-color2,#777);font-style:italic;margin-left:8px;"
    "align-self:center;flex:0 0 auto}"
    ".jc-wrap{flex-wrap:wrap!important}"
    # The tags box's text input is sized by its placeholder; let it shrink with the row.
    ".jc-panel .jupyter-widget-tagsinput{min-width:0;overflow:hidden}"
    ".jc-panel .jupyter-widget-tagsinput .widget-text,"
    ".jc-panel .jupyter-widget-taginput{min-width:0;max-width:100%;box-sizing:border-box}"
    "</style>"
)


def style_widget() -> Any:
    """A hidden HTML widget carrying `CSS` (a ``<style>`` applies even when hidden)."""
    return widgets.HTML(CSS, layout=widgets.Layout(display="none"))


class Binding:
    """Keeps setting ``name`` and some widgets equal; `unbind` ends it."""

    def __init__(
        self,
        settings: CompletionSettings,
        name: str,
        sources: Sequence[Any],
        show: Callable[[Any], None],
        read: Callable[[], Any],
    ) -> None:
        self._settings = settings
        self._name = name
        self._sources = list(sources)
        self._show = show
        self._read = read
        self._busy = False
        settings.observe(self._setting_changed, names=name)
        for w in self._sources:
            w.observe(self._widget_changed, names="value")
        self._show(getattr(settings, name))

    def _setting_changed(self, change: dict[str, Any]) -> None:
        if self._busy:
            return
        self._busy = True
        try:
            self._show(change["new"])
        finally:
            self._busy = False

    def _widget_changed(self, _change: dict[str, Any]) -> None:
        if self._busy:
            return
        self._busy = True
        try:
            try:
                setattr(self._settings, self._name, self._read())
            except TraitError:
                pass  # a value the setting refuses: the widgets go back to the setting's
            # Re-show even on success: a checkbox toggles its slider's enabled state.
            self._show(getattr(self._settings, self._name))
        finally:
            self._busy = False

    def unbind(self) -> None:
        """Stop following changes (the settings object may outlive the panel)."""
        self._settings.unobserve(self._setting_changed, names=self._name)
        for w in self._sources:
            w.unobserve(self._widget_changed, names="value")


def make_slider(name: str, *, maximum: float | None = None) -> Any:
    """A slider for setting ``name``, with bounds, step, label and tooltip from `slider_spec`.

    ``maximum`` narrows the slider's range (values beyond it widen the slider when set, see
    `bind_slider`); the width shrinks with the output, up to `SLIDER_WIDTH`.
    """
    spec = slider_spec(name)
    if maximum is not None:
        spec["max"] = maximum
    trait = CompletionSettings.class_traits()[name]
    cls = widgets.FloatSlider if isinstance(trait, Float) else widgets.IntSlider
    extra: dict[str, Any] = {}
    if cls is widgets.FloatSlider:
        extra["readout_format"] = f".{_decimals(spec['step'])}f"
    slider = cls(
        value=spec["default_on"] if spec["default_on"] is not None else spec["min"],
        min=spec["min"],
        max=spec["max"],
        step=spec["step"],
        description=spec["description"],
        tooltip=spec["tooltip"],
        continuous_update=False,  # the settings change on release, not on every pixel
        style={"description_width": LABEL_WIDTH},
        layout=widgets.Layout(width="auto", max_width=SLIDER_WIDTH, min_width="0"),
        **extra,
    )
    slider.add_class(f"jc-slider-{name}")  # for styling and browser tests
    return slider


def make_optional_slider(name: str, tooltip: str) -> tuple[Any, Any]:
    """A slider for an optional setting, with a checkbox in front carrying its label.

    Unchecked means the setting is unset (None), as the API advises for top_k and top_p.
    """
    slider = make_slider(name)
    # The checkbox carries the label, so the row lines up with the other sliders.
    check = widgets.Checkbox(
        value=False,
        description=slider.description,
        indent=False,
        tooltip=tooltip,
        layout=widgets.Layout(width=LABEL_WIDTH, margin="2px 6px 2px 2px"),
    )
    slider.description = ""
    slider.layout.width = "auto"
    slider.layout.flex = "1 1 auto"
    slider.layout.max_width = f"calc({SLIDER_WIDTH} - {LABEL_WIDTH})"
    return slider, check


def _decimals(step: float | int | None) -> int:
    if step is None:
        return 2
    exponent = decimal.Decimal(str(step)).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 2


def _widen(slider: Any, value: float) -> None:
    # Widen first: assigning a value outside [min, max] would be clamped by the slider.
    if value > slider.max:
        slider.max = value
    if value < slider.min:
        slider.min = value


def _slider_value(slider: Any) -> Any:
    if isinstance(slider, widgets.FloatSlider):
        # A browser slider reports 0.35000000000000003; keep the settings to the step's digits.
        return round(float(slider.value), _decimals(slider.step))
    return int(slider.value)


def button(description: str, icon: str, tooltip: str, **traits: Any) -> Any:
    """An ``ipywidgets.Button``: its label, Font Awesome icon name and tooltip.

    ``traits`` are further `ipywidgets.Button` traits (``button_style``, ``disabled``).
    """
    return widgets.Button(description=description, icon=icon, tooltip=tooltip, **traits)


def bind_slider(settings: CompletionSettings, name: str, slider: Any) -> Binding:
    """Two-way link between a required numeric setting and its slider.

    A value beyond the slider's range widens it while shown; a value back inside the range the
    slider was made with narrows it again (else one large max tokens would leave 1 to 300
    squeezed into a few pixels for good).
    """
    low, high = slider.min, slider.max

    def show(value: Any) -> None:
        _widen(slider, value)
        slider.value = value
        if low <= value <= high:
            slider.min, slider.max = low, high

    return Binding(settings, name, [slider], show, lambda: _slider_value(slider))


def bind_optional(settings: CompletionSettings, name: str, check: Any, slider: Any) -> Binding:
    """Two-way link for a setting that may be unset (None): checkbox on = the slider's value.

    Unchecking sets the setting to None (left out of the request); the slider keeps its
    position, greyed out, so checking again restores it.
    """

    def show(value: Any) -> None:
        if value is None:
            check.value = False
        else:
            _widen(slider, value)
            slider.value = value
            check.value = True
        slider.disabled = value is None
        # Visibly off: no value shown, track greyed, "off" written (see CSS).
        slider.readout = value is not None
        if value is None:
            slider.add_class("jc-off")
        else:
            slider.remove_class("jc-off")

    def read() -> Any:
        return _slider_value(slider) if check.value else None

    return Binding(settings, name, [check, slider], show, read)


class SamplingControls(NamedTuple):
    """The temperature, top_k and top_p controls, linked both ways to one settings object."""

    temperature_slider: Any
    top_k_check: Any
    top_k_slider: Any
    top_p_check: Any
    top_p_slider: Any
    #: Three rows to lay out one under the other: the temperature slider, then each optional
    #: setting's checkbox and slider side by side.
    rows: list[Any]
    #: The three links; `Binding.unbind` each when the widget closes.
    bindings: list[Binding]


#: The settings `sampling_controls` shows: the ones that reshape the next-token distribution.
SAMPLING = ("temperature", "top_k", "top_p")


def sampling_controls(
    settings: CompletionSettings, check_tooltip: str, **row_layout: str
) -> SamplingControls:
    """The sampling sliders the panel and the explorer share, already bound to ``settings``.

    Args:
        settings: the settings the controls show and change.
        check_tooltip: the tooltip of top_k's and top_p's checkbox, with ``{name}`` standing
            for the setting's name.
        row_layout: `ipywidgets.Layout` traits of the two checkbox-and-slider rows.
    """
    temperature = make_slider("temperature")
    top_k, top_k_check = make_optional_slider("top_k", check_tooltip.format(name="top_k"))
    top_p, top_p_check = make_optional_slider("top_p", check_tooltip.format(name="top_p"))

    def row(check: Any, slider: Any) -> Any:
        if row_layout:
            return widgets.HBox([check, slider], layout=widgets.Layout(**row_layout))
        return widgets.HBox([check, slider])

    return SamplingControls(
        temperature_slider=temperature,
        top_k_check=top_k_check,
        top_k_slider=top_k,
        top_p_check=top_p_check,
        top_p_slider=top_p,
        rows=[
            temperature,
            row(top_k_check, top_k),
            row(top_p_check, top_p),
        ],
        bindings=[
            bind_slider(settings, "temperature", temperature),
            bind_optional(settings, "top_k", top_k_check, top_k),
            bind_optional(settings, "top_p", top_p_check, top_p),
        ],
    )


def bind_int_box(settings: CompletionSettings, name: str, box: Any) -> Binding:
    """Two-way link between an integer setting and a number box (for exact values)."""

    def show(value: Any) -> None:
        box.value = value

    return Binding(settings, name, [box], show, lambda: int(box.value))


def bind_text(settings: CompletionSettings, name: str, box: Any) -> Binding:
    """Two-way link between a string setting and a text box."""

    def show(value: Any) -> None:
        box.value = value

    return Binding(settings, name, [box], show, lambda: str(box.value))


def bind_stops(settings: CompletionSettings, tags: Any) -> Binding:
    """Two-way link between ``stop_sequences`` and a tags box (escaped for display)."""

    def show(value: Any) -> None:
        tags.value = [escape_stop_sequence(s) for s in value]

    def read() -> list[str]:
        return [s for s in (unescape_stop_sequence(t) for t in tags.value) if s]

    return Binding(settings, "stop_sequences", [tags], show, read)


def close_tree(widget: Any) -> None:
    """Close a widget, its children and their layout and style models (frees the comms)."""
    for child in getattr(widget, "children", ()):
        close_tree(child)
    for part in (getattr(widget, "layout", None), getattr(widget, "style", None)):
        if part is not None:
            part.close()
    widget.close()
