"""The settings declaration and the error hierarchy."""

from __future__ import annotations

import pytest
from traitlets import TraitError

from jupyter_complete import CompletionSettings, errors
from jupyter_complete.completion import Completion
from jupyter_complete.settings import slider_spec


def test_settings_reject_values_outside_the_spec_ranges() -> None:
    s = CompletionSettings()
    for name, bad in [
        ("temperature", 1.5),
        ("top_p", -0.1),
        ("top_k", -1),
        ("max_tokens", 0),
        ("temperature", float("nan")),
    ]:
        with pytest.raises(TraitError):
            setattr(s, name, bad)


def test_request_params_leave_out_unset_top_k_and_top_p() -> None:
    s = CompletionSettings(temperature=0.3)
    assert s.request_params() == {"max_tokens_to_sample": 256, "temperature": 0.3}
    s.top_k, s.top_p, s.stop_sequences, s.model = 5, 0.9, ["END"], "m"
    assert s.request_params() == {
        "max_tokens_to_sample": 256,
        "temperature": 0.3,
        "top_k": 5,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "model": "m",
    }


def test_slider_specs_come_from_the_trait_declarations() -> None:
    spec = slider_spec("temperature")
    assert (spec["min"], spec["max"], spec["description"]) == (0.0, 1.0, "temperature")
    assert "Randomness" in spec["tooltip"]
    assert slider_spec("top_k")["default_on"] == 40


def test_settings_are_configurable_through_a_traitlets_config() -> None:
    from traitlets.config import Config

    cfg = Config()
    cfg.CompletionSettings.temperature = 0.25
    assert CompletionSettings(config=cfg).temperature == 0.25


def test_an_error_with_partial_text_says_so_in_its_one_line_message() -> None:
    err = errors.OverloadedError(
        "529 overloaded_error: Overloaded",
        status_code=529,
        partial=Completion(" abc"),
        request_id="req_1",
    )
    text = str(err)
    assert text == (
        "529 overloaded_error: Overloaded. The server is overloaded; try again in "
        "a moment. (4 characters received were kept.) [request req_1]"
    )


def test_render_traceback_gives_one_line_unless_the_switch_asks_for_the_full_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    err = errors.AuthenticationError("401 authentication_error: invalid x-api-key", status_code=401)
    lines = err._render_traceback_()
    assert len(lines) == 1 and "AuthenticationError" in lines[0] and "ANTHROPIC_API_KEY" in lines[0]
    monkeypatch.setattr(errors.CompleteError, "show_traceback", True)
    with pytest.raises(NotImplementedError):
        err._render_traceback_()


def test_error_classes_mirror_the_sdk_hierarchy() -> None:
    assert issubclass(errors.OverloadedError, errors.InternalServerError)
    assert issubclass(errors.APITimeoutError, errors.APIConnectionError)
    assert errors.class_for_status(502) is errors.InternalServerError
    assert errors.class_for_status(418) is errors.APIStatusError
    assert errors.class_for_type("overloaded_error") == (errors.OverloadedError, 529)
