"""Prompt building, parsing and interpolation."""

from __future__ import annotations

import pytest

from jupyter_complete import prompt


def test_a_cell_without_turns_is_wrapped_in_one_human_turn() -> None:
    assert prompt.build("  Tell me a joke\n") == "\n\nHuman: Tell me a joke\n\nAssistant:"


def test_a_system_option_goes_before_the_first_human_turn() -> None:
    assert prompt.build("Hi", system="Be brief.") == "Be brief.\n\nHuman: Hi\n\nAssistant:"


def test_typed_turns_are_normalised_to_the_double_newline_form() -> None:
    cell = "Human: What is 2+2?\nAssistant: 4\nHuman: And 3+3?"
    assert prompt.build(cell) == (
        "\n\nHuman: What is 2+2?\n\nAssistant: 4\n\nHuman: And 3+3?\n\nAssistant:"
    )


def test_text_after_the_last_assistant_label_is_kept_as_a_prefill() -> None:
    built = prompt.build("Human: List three colours\nAssistant: 1.")
    assert built == "\n\nHuman: List three colours\n\nAssistant: 1."
    assert prompt.parse(built).prefill == "1."


def test_text_before_the_first_human_turn_is_the_system_prompt() -> None:
    built = prompt.build("You are a pirate.\n\nHuman: hello")
    conv = prompt.parse(built)
    assert conv.system == "You are a pirate." and conv.turns == [("user", "hello")]


def test_raw_sends_the_cell_exactly_as_written() -> None:
    assert prompt.build("Human:x", raw=True) == "Human:x"


def test_parse_rejects_a_prompt_without_a_human_turn_in_the_apis_words() -> None:
    with pytest.raises(prompt.PromptFormatError, match="must start with"):
        prompt.parse("Hello, world")


def test_parse_rejects_a_prompt_that_does_not_end_with_an_assistant_turn() -> None:
    with pytest.raises(prompt.PromptFormatError, match="must end with"):
        prompt.parse("\n\nHuman: Hello, Claude")


def test_parse_then_render_round_trips() -> None:
    text = "sys\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: d"
    assert prompt.render(prompt.parse(text)) == text


def test_known_names_are_interpolated_and_unknown_names_left_alone() -> None:
    assert prompt.interpolate("{x} and {y}", {"x": 42}) == "42 and {y}"


def test_json_and_code_braces_survive_interpolation() -> None:
    text = '{"a": {"b": 1}} def f(): return {k: v for k, v in d.items()}'
    assert prompt.interpolate(text, {"k": 1, "b": 2}) == text


def test_doubled_braces_escape_a_name_that_exists() -> None:
    assert prompt.interpolate("{{x}} is {x}", {"x": 1}) == "{x} is 1"


def test_parse_rejects_an_assistant_turn_before_the_first_human_turn() -> None:
    with pytest.raises(prompt.PromptFormatError, match="must start with"):
        prompt.parse("\n\nAssistant: Hello, world\n\nHuman: Hello, Claude\n\nAssistant:")


# -- stop sequences as typed: one table for the magic's --stop and the panel's stop box -------


def test_an_escaped_newline_is_a_newline() -> None:
    assert prompt.unescape_stop_sequence(r"\n\nEND") == "\n\nEND"


def test_an_escaped_tab_is_a_tab() -> None:
    assert prompt.unescape_stop_sequence(r"a\tb") == "a\tb"


def test_an_escaped_carriage_return_is_a_carriage_return() -> None:
    assert prompt.unescape_stop_sequence(r"\r\n") == "\r\n"


def test_a_doubled_backslash_is_one_backslash() -> None:
    assert prompt.unescape_stop_sequence(r"a\\b") == "a\\b"


def test_a_doubled_backslash_before_n_is_a_backslash_and_an_n() -> None:
    assert prompt.unescape_stop_sequence(r"\\n") == "\\n"


def test_an_unknown_escape_stays_as_typed() -> None:
    assert prompt.unescape_stop_sequence(r"\d+") == r"\d+"


def test_a_trailing_backslash_stays_as_typed() -> None:
    assert prompt.unescape_stop_sequence("end\\") == "end\\"


def test_a_plain_stop_sequence_is_unchanged_both_ways() -> None:
    assert prompt.escape_stop_sequence("###") == prompt.unescape_stop_sequence("###") == "###"


def test_control_characters_are_escaped_for_display() -> None:
    assert prompt.escape_stop_sequence("\n\nHuman:\t\r") == r"\n\nHuman:\t\r"


def test_a_backslash_is_escaped_for_display() -> None:
    assert prompt.escape_stop_sequence("a\\nb") == r"a\\nb"


@pytest.mark.parametrize("text", ["\n\nHuman:", "a\\nb", "\\", "\\\\t\t", "x\r\n\\d", ""])
def test_unescape_inverts_escape(text: str) -> None:
    assert prompt.unescape_stop_sequence(prompt.escape_stop_sequence(text)) == text
