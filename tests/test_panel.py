"""The tuning panel, driven headless: sliders and settings, Run/Stop, errors, compare, history.

Requests go to the replay server (a real loopback HTTP server playing scripted SSE bytes), so
streams are fast and deterministic; widgets are driven as a user would (``slider.value = ...``,
``button.click()``). Traffic is measured in test_panel_traffic.py.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fixtures_panel import HoldingReplayServer, paced_script, wait_until
from fixtures_replay import (
    LAST_CHUNK,
    ReplayServer,
    Script,
    Wait,
    chunk,
    completion_event,
    error_script,
    head,
    sse,
    sse_script,
)

from jupyter_complete import Client, CompletionSettings
from jupyter_complete.errors import InvalidParameterError
from jupyter_complete.prompt import build
from jupyter_complete.settings import slider_spec
from jupyter_complete.widgets.panel import COLUMNS, Panel, parse_compare
from jupyter_complete.widgets.panel._view import MAX_TOKENS_SLIDER

WIRE = "\n\nHuman: {}\n\nAssistant:"


@pytest.fixture
def make_panel() -> Iterator[Any]:
    """``make_panel(server, prompt=..., **kw)``: a Panel whose client talks to ``server``."""
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


def answer(*texts: str, stop_reason: str = "stop_sequence") -> Script:
    return paced_script(list(texts), stop_reason=stop_reason)


# -- controls and settings ----------------------------------------------------------------


def test_sliders_take_bounds_step_and_help_from_the_settings_declaration() -> None:
    panel = Panel()
    for name, slider in [
        ("temperature", panel.temperature_slider),
        ("top_k", panel.top_k_slider),
        ("top_p", panel.top_p_slider),
        ("max_tokens", panel.max_tokens_slider),
    ]:
        spec = slider_spec(name)
        # max tokens: the slider covers 1 to 300 (easy to set the usual values); the number
        # box beside it takes anything up to the setting's own range.
        top = MAX_TOKENS_SLIDER if name == "max_tokens" else spec["max"]
        assert (slider.min, slider.max, slider.step) == (spec["min"], top, spec["step"])
        assert slider.tooltip == spec["tooltip"]
    assert panel.temperature_slider.description == slider_spec("temperature")["description"]
    # top_k and top_p carry their label on the enable checkbox.
    assert panel.top_k_check.description == slider_spec("top_k")["description"]
    assert panel.top_p_check.description == slider_spec("top_p")["description"]
    panel.close()


def test_a_slider_and_its_setting_follow_each_other_both_ways() -> None:
    settings = CompletionSettings()
    panel = Panel(settings=settings)
    panel.temperature_slider.value = 0.25
    assert settings.temperature == 0.25
    settings.temperature = 0.8
    assert panel.temperature_slider.value == 0.8
    panel.max_tokens_slider.value = 64
    assert settings.max_tokens == 64
    settings.max_tokens = 300
    assert panel.max_tokens_slider.value == 300
    panel.close()


def test_the_panel_starts_from_the_settings_it_is_given() -> None:
    settings = CompletionSettings(
        temperature=0.2,
        top_p=0.7,
        max_tokens=99,
        model="m-1",
        system="Be brief.",
        stop_sequences=["END"],
    )
    panel = Panel(settings=settings)
    assert panel.temperature_slider.value == 0.2
    assert (panel.top_p_check.value, panel.top_p_slider.value) == (True, 0.7)
    assert panel.top_k_check.value is False and panel.top_k_slider.disabled
    assert panel.max_tokens_slider.value == 99
    assert (panel.model_box.value, panel.system_box.value) == ("m-1", "Be brief.")
    assert list(panel.stop_box.value) == ["END"]
    panel.close()


def test_unchecking_top_k_unsets_it_and_checking_brings_the_slider_value_back() -> None:
    settings = CompletionSettings()
    panel = Panel(settings=settings)
    assert settings.top_k is None and panel.top_k_slider.disabled
    assert panel.top_k_slider.value == slider_spec("top_k")["default_on"]
    panel.top_k_check.value = True
    assert settings.top_k == slider_spec("top_k")["default_on"]
    assert not panel.top_k_slider.disabled
    panel.top_k_slider.value = 7
    assert settings.top_k == 7
    panel.top_k_check.value = False
    assert settings.top_k is None
    assert panel.top_k_slider.value == 7 and panel.top_k_slider.disabled
    # Moving the greyed slider does not set the parameter.
    panel.top_k_slider.value = 9
    assert settings.top_k is None
    panel.top_k_check.value = True
    assert settings.top_k == 9
    # And from the settings side.
    settings.top_p = 0.5
    assert panel.top_p_check.value and panel.top_p_slider.value == 0.5
    settings.top_p = None
    assert not panel.top_p_check.value and panel.top_p_slider.disabled
    panel.close()


def test_after_a_large_max_tokens_a_small_one_brings_the_slider_back_to_its_own_range() -> None:
    settings = CompletionSettings()
    panel = Panel(settings=settings)
    try:
        settings.max_tokens = 100_000  # typed into the number box once
        assert panel.max_tokens_slider.max == 100_000
        settings.max_tokens = 60
        # Small values are easy to set again: the slider spans 1 to 300, not 1 to 100,000.
        assert panel.max_tokens_slider.max == MAX_TOKENS_SLIDER
        assert panel.max_tokens_slider.value == 60 and settings.max_tokens == 60
    finally:
        panel.close()


def test_a_setting_beyond_the_slider_range_widens_the_slider_instead_of_being_clamped() -> None:
    settings = CompletionSettings()
    panel = Panel(settings=settings)
    settings.max_tokens = 5000  # allowed by the API, past the slider's 2048
    assert settings.max_tokens == 5000
    assert panel.max_tokens_slider.max == 5000 and panel.max_tokens_slider.value == 5000
    settings.top_k = 500
    assert settings.top_k == 500 and panel.top_k_slider.value == 500
    panel.close()


def test_slider_values_are_kept_to_the_step_digits() -> None:
    settings = CompletionSettings()
    panel = Panel(settings=settings)
    panel.temperature_slider.value = 0.35000000000000003  # what a browser slider reports
    assert settings.temperature == 0.35
    panel.close()


def test_stop_sequences_are_typed_with_escapes_and_stored_as_text() -> None:
    settings = CompletionSettings()
    panel = Panel(settings=settings)
    panel.stop_box.value = ["\\n\\nHuman:", "END", "a\\\\b"]
    assert settings.stop_sequences == ["\n\nHuman:", "END", "a\\b"]
    settings.stop_sequences = ["\n", "\t|"]
    assert list(panel.stop_box.value) == ["\\n", "\\t|"]
    panel.close()


def test_model_and_system_boxes_follow_the_settings() -> None:
    settings = CompletionSettings()
    panel = Panel(settings=settings)
    panel.model_box.value = "claude-2.1"
    panel.system_box.value = "You are terse."
    assert (settings.model, settings.system) == ("claude-2.1", "You are terse.")
    settings.model = ""
    assert panel.model_box.value == ""
    panel.close()


def test_close_unlinks_the_settings_which_may_outlive_the_panel() -> None:
    settings = CompletionSettings()

    def observers() -> int:
        return sum(len(v.get("change", [])) for v in settings._trait_notifiers.values())

    before = observers()
    panel = Panel(settings=settings)
    assert observers() > before
    panel.close()
    assert observers() == before
    settings.temperature = 0.1  # no closed widget is touched
    assert panel.temperature_slider.value != 0.1


def test_the_panel_displays_as_a_widget() -> None:
    panel = Panel("hi")
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == panel.widget.model_id
    panel.close()


# -- run ------------------------------------------------------------------------------


def test_run_streams_the_answer_with_the_slider_settings(
    replay: ReplayServer, make_panel: Any
) -> None:
    replay.enqueue(answer(" Blue", " is", " calm."))
    panel = make_panel(replay, prompt="Name a colour.")
    panel.temperature_slider.value = 0.3
    panel.top_k_check.value = True
    panel.top_k_slider.value = 5
    panel.system_box.value = "Answer in three words."
    panel.stop_box.value = ["END"]
    panel.run_button.click()
    assert panel.wait(10)

    assert panel.state == "done"
    assert panel.text == " Blue is calm."
    body = replay.received[0].json
    # The prompt box goes through prompt.build, with the system box as the system prompt.
    assert body["prompt"] == build("Name a colour.", system="Answer in three words.")
    assert body["prompt"].startswith("Answer in three words.")
    assert body["prompt"].endswith(WIRE.format("Name a colour."))
    assert body["temperature"] == 0.3 and body["top_k"] == 5 and "top_p" not in body
    assert body["stop_sequences"] == ["END"] and body["stream"] is True
    status = panel.status.value
    assert "done" in status and "stop_sequence" in status and "14 chars" in status
    assert "first token" in status and "total" in status
    assert panel.error.value == ""
    assert not panel.run_button.disabled and panel.stop_button.disabled


def test_turns_typed_by_the_user_are_kept(replay: ReplayServer, make_panel: Any) -> None:
    replay.enqueue(answer(" 4"))
    panel = make_panel(replay, prompt="Human: 2+2?\n\nAssistant: The answer is")
    panel.run()
    assert panel.wait(10)
    assert replay.received[0].json["prompt"] == "\n\nHuman: 2+2?\n\nAssistant: The answer is"


def test_run_is_disabled_while_running_and_a_second_run_sends_nothing(
    holding_replay: HoldingReplayServer, make_panel: Any
) -> None:
    holding_replay.enqueue(paced_script(["Hello"], hold=True))
    panel = make_panel(holding_replay)
    panel.run_button.click()
    assert wait_until(lambda: holding_replay.holding.is_set() and panel.text == "Hello")
    assert panel.running and panel.run_button.disabled and not panel.stop_button.disabled
    assert panel.compare_button.disabled and panel.load_button.disabled
    panel.run()  # ignored: one run at a time
    panel.stop_button.click()
    assert panel.wait(5)
    assert len(holding_replay.received) == 1


def test_stop_closes_the_connection_at_once_while_the_server_still_holds_the_stream(
    holding_replay: HoldingReplayServer, make_panel: Any
) -> None:
    # The server sends two events, then holds the stream open: it never sends the final
    # event and only notices the end when the client closes the connection (peer_closed).
    holding_replay.enqueue(paced_script(["Hello", " world"], hold=True))
    panel = make_panel(holding_replay)
    panel.run_button.click()
    assert wait_until(lambda: holding_replay.holding.is_set() and panel.text == "Hello world")
    assert panel.running and holding_replay.open_connections == 1
    assert not holding_replay.peer_closed.is_set()

    clicked = time.monotonic()
    panel.stop_button.click()  # returns at once: the close happens on the caller's thread
    returned = time.monotonic()
    assert panel.wait(2)
    ended = time.monotonic()

    # Ordering: the server saw the client's close *during its hold* (nothing else ends it).
    assert holding_replay.peer_closed.wait(2)
    assert holding_replay.wait_idle(2)
    # Generous bounds (a failure detector, not a benchmark): the hold itself lasts 30 s.
    assert returned - clicked < 1.0 and ended - clicked < 2.0
    assert panel.state == "stopped"
    assert panel.text == "Hello world"  # the partial text is kept
    assert "stopped" in panel.status.value and "11 chars" in panel.status.value
    assert panel.error.value == ""
    record = panel.history[-1]
    assert (record["outcome"], record["text"], record["stop_reason"]) == (
        "stopped",
        "Hello world",
        None,
    )
    assert not panel.run_button.disabled and panel.stop_button.disabled


def test_stop_while_the_server_has_not_answered_ends_the_run_when_it_does(
    replay: ReplayServer, make_panel: Any
) -> None:
    release = threading.Event()
    replay.enqueue(
        Script(
            [
                Wait(release, timeout=10),
                head(200, chunked=True),
                chunk(completion_event("late")),
                LAST_CHUNK,
            ]
        )
    )
    panel = make_panel(replay)
    panel.run()
    assert wait_until(lambda: len(replay.received) == 1)
    panel.stop()
    assert panel.state == "stopping" and panel.stop_button.disabled
    release.set()
    assert panel.wait(5)
    assert panel.state == "stopped"
    assert replay.wait_idle(5)


def test_an_error_mid_stream_shows_one_line_and_keeps_the_partial_text(
    replay: ReplayServer, make_panel: Any
) -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    replay.enqueue(
        sse_script([completion_event("Partial"), completion_event(" text"), sse("error", error)])
    )
    panel = make_panel(replay)
    panel.run_button.click()
    assert panel.wait(10)
    assert panel.state == "error"
    assert panel.text == "Partial text"
    assert "OverloadedError" in panel.error.value and "Overloaded" in panel.error.value
    assert "12 characters received were kept" in panel.error.value
    assert "error" in panel.status.value
    record = panel.history[-1]
    assert record["outcome"] == "error" and record["text"] == "Partial text"
    assert record["error"].startswith("OverloadedError:")
    assert not panel.run_button.disabled


def test_an_http_error_shows_the_error_class_and_hint(
    replay: ReplayServer, make_panel: Any
) -> None:
    replay.enqueue(error_script(429, "rate_limit_error", "Slow down"))
    panel = make_panel(replay)
    panel.run()
    assert panel.wait(10)
    assert panel.state == "error" and panel.text == ""
    assert "RateLimitError" in panel.error.value and "Slow down" in panel.error.value


def test_an_unreachable_server_is_an_error_line_not_a_crash() -> None:
    with socket.socket() as s:  # a free port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = Client(base_url=f"http://127.0.0.1:{port}", api_key="k", max_retries=0)
    panel = Panel("hi", client=client)
    panel.run()
    assert panel.wait(10)
    assert panel.state == "error" and "APIConnectionError" in panel.error.value
    assert "Connection refused" in panel.error.value
    panel.close()


def test_an_empty_prompt_is_refused_before_anything_is_sent(
    replay: ReplayServer, make_panel: Any
) -> None:
    panel = make_panel(replay, prompt="   ")
    panel.run_button.click()
    assert panel.wait(1)
    assert panel.state == "idle" and replay.received == []
    assert "prompt is empty" in panel.error.value


def test_client_none_means_the_default_client_created_at_the_first_run(
    replay: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", replay.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key")
    replay.enqueue(answer("ok"))
    panel = Panel("hello")
    assert panel._client is None  # nothing resolved yet
    panel.run()
    assert panel.wait(10)
    assert panel.text == "ok"
    assert replay.received[0].headers["x-api-key"] == "env-key"
    assert isinstance(panel.client, Client)
    panel.close()


# -- compare --------------------------------------------------------------------------


def test_compare_temperatures_runs_each_and_shows_columns(
    replay: ReplayServer, make_panel: Any
) -> None:
    replay.enqueue(answer("red"), answer("green"), answer("blue", stop_reason="max_tokens"))
    panel = make_panel(replay)
    panel.compare(temperatures=[0, 0.5, 1])
    assert panel.wait(10)
    assert [r.json["temperature"] for r in replay.received] == [0, 0.5, 1]
    columns = panel.compare_grid.columns
    assert [c.view.text for c in columns] == ["red", "green", "blue"]
    assert "temperature 0.5" in columns[1].head.value and "top_k –" in columns[1].head.value
    assert "max_tokens" in columns[2].foot.value
    assert panel.compare_grid.box.layout.display == ""
    # Side by side while each gets 12em, wrapped onto rows in a narrow output.
    assert "repeat(auto-fit" in panel.compare_grid.box.layout.grid_template_columns
    records = [r for r in panel.history if r["kind"] == "compare"]
    assert [(r["group"], r["temperature"], r["text"]) for r in records] == [
        (1, 0.0, "red"),
        (1, 0.5, "green"),
        (1, 1.0, "blue"),
    ]
    assert panel.state == "done" and "compare 1" in panel.status.value
    # The settings themselves are not changed by a compare.
    assert panel.settings.temperature == 1.0


def test_compare_button_reads_samples_from_its_box(replay: ReplayServer, make_panel: Any) -> None:
    replay.enqueue(answer("a"), answer("b"))
    panel = make_panel(replay)
    panel.temperature_slider.value = 0.7
    panel.compare_values.value = "x2"
    panel.compare_button.click()
    assert panel.wait(10)
    assert [r.json["temperature"] for r in replay.received] == [0.7, 0.7]
    assert [c.view.text for c in panel.compare_grid.columns] == ["a", "b"]
    assert "sample 2 of 2" in panel.compare_grid.columns[1].head.value


def test_a_second_compare_replaces_the_columns(replay: ReplayServer, make_panel: Any) -> None:
    replay.enqueue(answer("a"), answer("b"), answer("c"))
    panel = make_panel(replay)
    panel.compare(samples=2)
    assert panel.wait(10)
    panel.compare(temperatures=[0])
    assert panel.wait(10)
    assert [c.view.text for c in panel.compare_grid.columns] == ["c"]
    assert [r["group"] for r in panel.history] == [1, 1, 2]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0, 0.5, 1", {"temperatures": [0.0, 0.5, 1.0]}),
        ("0 1", {"temperatures": [0.0, 1.0]}),
        ("x3", {"samples": 3}),
        ("3x", {"samples": 3}),
        ("×4", {"samples": 4}),
        ("2 samples", {"samples": 2}),
    ],
)
def test_the_compare_box_understands_temperatures_and_sample_counts(
    text: str, expected: dict[str, Any]
) -> None:
    assert parse_compare(text) == expected


def test_bad_compare_values_are_refused_with_a_clear_message(
    replay: ReplayServer, make_panel: Any
) -> None:
    panel = make_panel(replay)
    with pytest.raises(ValueError, match="neither temperatures"):
        parse_compare("hot, cold")
    with pytest.raises(InvalidParameterError, match="temperature=2"):
        panel.compare(temperatures=[0, 2])
    with pytest.raises(InvalidParameterError, match="samples"):
        panel.compare(samples=0)
    with pytest.raises(ValueError, match="either"):
        panel.compare()
    panel.compare_values.value = "warm"
    panel.compare_button.click()
    assert "neither temperatures" in panel.error.value
    panel.compare_values.value = "0, 1.5"
    panel.compare_button.click()
    assert "temperature=1.5 is invalid" in panel.error.value
    assert replay.received == []


def test_stop_during_a_compare_keeps_the_partial_column_and_skips_the_rest(
    holding_replay: HoldingReplayServer, make_panel: Any
) -> None:
    holding_replay.enqueue(answer("first"), paced_script(["sec"], hold=True))
    panel = make_panel(holding_replay)
    panel.compare(temperatures=[0, 0.5, 1])
    assert wait_until(
        lambda: holding_replay.holding.is_set() and panel.compare_grid.columns[1].view.text == "sec"
    )
    panel.stop_button.click()
    assert panel.wait(2)
    assert holding_replay.peer_closed.wait(2)
    columns = panel.compare_grid.columns
    assert [c.view.text for c in columns] == ["first", "sec", ""]
    assert "stopped" in columns[1].foot.value and "not run" in columns[2].foot.value
    assert [r["outcome"] for r in panel.history] == ["done", "stopped"]
    assert panel.state == "stopped" and len(holding_replay.received) == 2


# -- history --------------------------------------------------------------------------


def test_history_keeps_every_run_with_its_parameters_and_timings(
    replay: ReplayServer, make_panel: Any
) -> None:
    replay.enqueue(answer("one"), answer("two", stop_reason="max_tokens"))
    panel = make_panel(replay, prompt="Count.")
    panel.run()
    assert panel.wait(10)
    panel.top_p_check.value = True
    panel.top_p_slider.value = 0.8
    panel.max_tokens_slider.value = 10
    panel.run()
    assert panel.wait(10)
    history = panel.history
    assert [tuple(r) for r in history] == [COLUMNS, COLUMNS]
    first, second = history
    assert (first["run"], first["kind"], first["text"], first["top_p"]) == (1, "run", "one", None)
    assert (second["run"], second["top_p"], second["max_tokens"]) == (2, 0.8, 10)
    assert second["stop_reason"] == "max_tokens" and second["outcome"] == "done"
    assert second["chars"] == 3 and second["response_model"] == "replay-1"
    assert second["elapsed"] >= second["time_to_first_token"] > 0
    assert first["prompt"] == "Count."
    # Copies: changing them does not change the panel's history.
    history[0]["text"] = "changed"
    assert panel.history[0]["text"] == "one"
    # The drop-down lists the newest first and selects it.
    labels = [label for label, _ in panel.history_select.options]
    assert labels[0].startswith("#2 ") and "top_p 0.8" in labels[0] and "max_tokens" in labels[0]
    assert panel.history_select.value == 1 and not panel.load_button.disabled


def test_load_puts_a_run_back_into_the_controls_with_one_click(
    replay: ReplayServer, make_panel: Any
) -> None:
    replay.enqueue(answer("first answer"), answer("second"))
    panel = make_panel(replay, prompt="First prompt")
    panel.temperature_slider.value = 0.2
    panel.top_k_check.value = True
    panel.top_k_slider.value = 3
    panel.stop_box.value = ["STOP"]
    panel.run()
    assert panel.wait(10)
    panel.prompt_box.value = "Second prompt"
    panel.temperature_slider.value = 0.9
    panel.top_k_check.value = False
    panel.stop_box.value = []
    panel.run()
    assert panel.wait(10)

    panel.history_select.value = 0  # the first run
    panel.load_button.click()
    assert panel.prompt_box.value == "First prompt"
    assert panel.settings.temperature == 0.2 and panel.temperature_slider.value == 0.2
    assert panel.settings.top_k == 3 and panel.top_k_check.value and panel.top_k_slider.value == 3
    assert panel.settings.stop_sequences == ["STOP"] and list(panel.stop_box.value) == ["STOP"]
    assert panel.text == "first answer"
    assert "loaded run #1" in panel.status.value
    # Loaded settings are what the next run sends.
    replay.enqueue(answer("again"))
    panel.run()
    assert panel.wait(10)
    body = replay.received[-1].json
    assert body["temperature"] == 0.2 and body["top_k"] == 3 and body["stop_sequences"] == ["STOP"]
    assert body["prompt"] == WIRE.format("First prompt")


def test_load_refuses_while_running(holding_replay: HoldingReplayServer, make_panel: Any) -> None:
    holding_replay.enqueue(answer("x"), paced_script(["y"], hold=True))
    panel = make_panel(holding_replay)
    panel.run()
    assert panel.wait(10)
    panel.run()
    assert wait_until(holding_replay.holding.is_set)
    with pytest.raises(RuntimeError, match="Stop"):
        panel.load(0)
    panel.stop()
    assert panel.wait(2)
    assert panel.load(-1)["outcome"] == "stopped"


def test_history_frame_is_a_dataframe_with_one_row_per_run(
    replay: ReplayServer, make_panel: Any
) -> None:
    pd = pytest.importorskip("pandas")
    replay.enqueue(answer("a"), answer("b"))
    panel = make_panel(replay)
    panel.compare(samples=2)
    assert panel.wait(10)
    frame = panel.history_frame()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == list(COLUMNS) and list(frame["text"]) == ["a", "b"]


def test_history_frame_without_pandas_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas -> ImportError
    panel = Panel()
    with pytest.raises(ImportError, match="pip install pandas"):
        panel.history_frame()
    panel.close()


# -- the built-in local model ----------------------------------------------------------


@pytest.mark.local
def test_the_panel_streams_from_the_built_in_local_model(local_client: Any) -> None:
    pytest.importorskip("llama_cpp")
    panel = Panel("Say hello in five words.", client=local_client)
    panel.temperature_slider.value = 0.0
    panel.max_tokens_slider.value = 24
    panel.run_button.click()
    assert panel.wait(120)
    assert panel.state == "done", panel.error.value
    record = panel.history[-1]
    assert record["stop_reason"] in ("stop_sequence", "max_tokens")
    assert panel.text == record["text"] and panel.text.strip()
    panel.close()


# -- the panel's own types: one Completion per run, one dataclass per record ----------------
def test_the_status_line_words_its_measurements_as_the_magics_footer() -> None:
    from jupyter_complete.completion import Completion
    from jupyter_complete.render import footer_text
    from jupyter_complete.widgets.panel._compare import result_status
    from jupyter_complete.widgets.panel._runner import RunResult

    received = Completion(
        "Paris.",
        stop_reason="stop_sequence",
        model="m",
        usage={"input_tokens": 12, "output_tokens": 3},
        time_to_first_token=0.25,
        elapsed=1.5,
    )
    footer = footer_text(received)  # m · stop_sequence · 6 chars · tokens · first · total
    assert result_status(RunResult("done", received)) == "done · " + footer.split(" · ", 1)[1]
    stopped = Completion("Par", elapsed=0.5, interrupted=True)
    assert result_status(RunResult("stopped", stopped)) == "stopped · 3 chars · total 0.50 s"


def test_a_history_record_saved_by_an_earlier_version_loads_unchanged() -> None:
    from jupyter_complete.widgets.panel._history import History, RunRecord

    # The JSON shape every saved panel record has held: these twenty keys, in this order.
    saved = {
        "run": 3,
        "kind": "compare",
        "group": 2,
        "prompt": "Hi",
        "system": None,
        "model": "m",
        "max_tokens": 20,
        "temperature": 0.5,
        "top_k": None,
        "top_p": 0.9,
        "stop_sequences": ["\n"],
        "text": "Hello",
        "outcome": "done",
        "stop_reason": "stop_sequence",
        "error": None,
        "chars": 5,
        "time_to_first_token": 0.1,
        "elapsed": 0.4,
        "response_model": "m-1",
        "started": "2026-01-01T00:00:00+00:00",
    }
    assert tuple(saved) == COLUMNS == tuple(f for f in RunRecord.__dataclass_fields__)
    history = History()
    history.restore([saved, {"run": 4, "text": "older, with fewer keys"}])
    assert history[0] == saved and list(history[0]) == list(COLUMNS)
    older = history[1]
    assert older["chars"] == len("older, with fewer keys") and older["stop_sequences"] == []
    assert older["model"] is None and older["outcome"] is None
    assert history.new_group() == 3  # after the largest saved group
    copy = history.records()[0]
    copy["stop_sequences"].append("x")  # a copy: the history keeps its own list
    assert history[0]["stop_sequences"] == ["\n"]
