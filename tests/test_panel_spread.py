"""The panel's "n samples per setting" mode: the Samples button and box, `Panel.spread`.

Against the replay server (real HTTP on loopback): what the requests carry, the figures the
panel shows, that every sample joins the history, Stop mid-sweep, the saved record (its HTML
shows the table and chart; `Panel.from_record` brings the result back).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fixtures_panel import HoldingReplayServer, paced_script, wait_until
from fixtures_replay import ReplayServer, Script

from jupyter_complete import Client
from jupyter_complete.errors import InvalidParameterError
from jupyter_complete.widgets.panel import Panel
from jupyter_complete.widgets.panel._spread import DEFAULT_SAMPLES, parse_spread


@pytest.fixture
def make_panel() -> Iterator[Any]:
    panels: list[Panel] = []

    def make(server: ReplayServer, prompt: str = "Name a colour.", **kw: Any) -> Panel:
        client = Client(base_url=server.url, api_key="test-key", max_retries=0)
        panel = Panel(prompt=prompt, client=client, **kw)
        panels.append(panel)
        return panel

    yield make
    for panel in panels:
        panel.close()
        assert panel.wait(5)


def answer(text: str, stop_reason: str = "stop_sequence") -> Script:
    return paced_script([text], stop_reason=stop_reason)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("temperature 0.2, 0.6, 1 x5", ("temperature", [0.2, 0.6, 1.0], 5)),
        ("top_p 0.5 0.9 ×3", ("top_p", [0.5, 0.9], 3)),
        ("k 1, 5, 50", ("top_k", [1, 5, 50], DEFAULT_SAMPLES)),
        ("0.2, 1", ("temperature", [0.2, 1.0], DEFAULT_SAMPLES)),
        ("top_k: 1 10 4 samples", ("top_k", [1, 10], 4)),
        ("t=0 1 n=2", ("temperature", [0.0, 1.0], 2)),
    ],
)
def test_the_samples_box_names_a_parameter_its_values_and_the_count(
    text: str,
    expected: tuple[str, list[float], int],
) -> None:
    spec = parse_spread(text)
    assert (spec["parameter"], spec["values"], spec["n"]) == expected
    if spec["parameter"] == "top_k":
        assert all(isinstance(v, int) for v in spec["values"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("heat 0.2, 1", "'heat' is not temperature, top_p or top_k"),
        ("temperature hot, cold", "'hot' is not a number"),
        ("temperature x5", "no values to sweep"),
        ("", "no values to sweep"),
    ],
)
def test_a_bad_samples_box_is_a_one_line_error(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_spread(text)
    assert "\n" not in str(info.value)


def test_samples_draws_n_per_value_with_the_panel_settings_and_records_each(
    replay: ReplayServer,
    make_panel: Any,
) -> None:
    for text in ["red", "red", "Red", "blue"]:
        replay.enqueue(answer(text))
    panel = make_panel(replay)
    panel.top_p_check.value = True
    panel.top_p_slider.value = 0.8
    panel.max_tokens_slider.value = 30
    panel.spread_values.value = "temperature 0.2, 1 x2"
    panel.spread_button.click()
    assert panel.wait(20)
    bodies = [r.json for r in replay.received]
    assert sorted(b["temperature"] for b in bodies) == [0.2, 0.2, 1.0, 1.0]  # 4 at once
    assert all(b["top_p"] == 0.8 and b["max_tokens_to_sample"] == 30 for b in bodies)
    (result,) = panel.spreads
    assert result.concurrency == 4 and result.drawn == 4 and not result.partial
    counts = [sum(c for _, c in st.answers) for st in result.stats]
    assert counts == [2, 2]
    records = [r for r in panel.history if r["kind"] == "spread"]
    assert len(records) == 4 and {r["group"] for r in records} == {1}
    assert sorted(r["temperature"] for r in records) == [0.2, 0.2, 1.0, 1.0]
    assert all(r["top_p"] == 0.8 for r in records)
    assert "spread 1" in panel.history_select.options[0][0]
    view = panel.spread_view.html.value
    assert panel.spread_view.box.layout.display == ""
    assert "distinct-1" in view and "4 of 4 drawn" in view
    assert panel.state == "done" and "spread 1" in panel.status.value
    # The panel's own settings are not changed by the sweep.
    assert panel.settings.temperature == 1.0


def test_a_long_sweep_redraws_its_figures_at_intervals_not_for_every_sample(
    replay: ReplayServer,
    make_panel: Any,
    monkeypatch: Any,
) -> None:
    # The live HTML grows with the samples (1 MB for 10,000): drawn per sample, the panel
    # stayed busy drawing long after the last answer came.
    from jupyter_complete.widgets.panel import _spread

    drawn: list[bool] = []
    real = _spread.result_html

    def counting(result: Any, *, chart: bool = True) -> str:
        drawn.append(chart)
        return real(result, chart=chart)

    monkeypatch.setattr(_spread, "result_html", counting)
    for _ in range(6):
        replay.enqueue(answer("red"))
    panel = make_panel(replay)
    panel.spread_view.interval = 3600.0
    panel.spread(temperature=[0.2, 1.0], n=3, concurrency=1)
    assert panel.wait(20)
    assert panel.spreads[0].drawn == 6
    assert drawn == [False, True]  # the first sample, then the final result with its chart
    assert "6 of 6 drawn" in panel.spread_view.html.value


def test_samples_with_bad_values_shows_the_error_and_sends_nothing(
    replay: ReplayServer,
    make_panel: Any,
) -> None:
    panel = make_panel(replay)
    panel.spread_values.value = "top_p 0.5, 1.5"
    panel.spread_button.click()
    assert "top_p=1.5 is invalid" in panel.error.value
    panel.spread_values.value = "warmth 1"
    panel.spread_button.click()
    assert "not temperature, top_p or top_k" in panel.error.value
    with pytest.raises(InvalidParameterError, match="n="):
        panel.spread(temperature=[0.5], n=0)
    with pytest.raises(ValueError, match="one parameter at a time"):
        panel.spread(temperature=[0.5], top_k=[1, 2])
    assert replay.received == [] and panel.state == "idle"


def test_stop_during_samples_keeps_what_was_drawn_and_says_partial(
    holding_replay: HoldingReplayServer,
    make_panel: Any,
) -> None:
    holding_replay.enqueue(answer("one"), paced_script(["tw"], hold=True), answer("never"))
    panel = make_panel(holding_replay)
    panel.spread(top_k=[1, 40], n=2, concurrency=1)

    def tw_arrived() -> bool:
        sweep = panel._sweep
        return sweep is not None and any(s.text == "tw" for s in list(sweep._open))

    assert wait_until(lambda: holding_replay.holding.is_set() and tw_arrived(), timeout=20)
    panel.stop_button.click()
    assert panel.wait(5)
    assert holding_replay.peer_closed.wait(5)
    (result,) = panel.spreads
    assert result.partial and result.stopped_by == "stopped"
    assert [(s.text, s.outcome) for s in result.samples] == [("one", "done"), ("tw", "stopped")]
    assert len(holding_replay.received) == 2
    assert "Partial result" in panel.spread_view.html.value
    assert panel.state == "stopped"
    assert [r["outcome"] for r in panel.history] == ["done", "stopped"]


def test_the_saved_record_shows_the_samples_and_a_panel_comes_back_from_it(
    replay: ReplayServer,
    make_panel: Any,
) -> None:
    pytest.importorskip("matplotlib")
    for text in ["a", "b", "a", "c"]:
        replay.enqueue(answer(text))
    panel = make_panel(replay)
    panel.spread(temperature=[0.3, 0.9], n=2, concurrency=1)
    assert panel.wait(20)
    data, metadata = panel.record_bundle()
    page = data["text/html"]
    assert "n samples per setting" in page and '<img src="data:image/png;base64,' in page
    assert "distinct-2" in page
    assert "n samples per setting: temperature [0.3, 0.9], 2 each" in data["text/plain"]
    state = metadata["jupyter_complete"]["state"]
    assert state["spread"]["parameter"] == "temperature"
    assert len(state["spread"]["samples"]) == 4
    again = Panel.from_record(state, client=panel.client)
    try:
        (restored,) = again.spreads
        assert [st.answers for st in restored.stats] == [
            st.answers for st in panel.spreads[0].stats
        ]
        assert "distinct-1" in again.spread_view.html.value
    finally:
        again.close()
