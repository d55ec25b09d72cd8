"""The ``%complete`` line as text, in tables: how it splits into option words and the prompt,
how option values are unquoted and interpolated, and which lines ending in ``?`` the magic
takes from IPython's help. Pure functions (`jupyter_complete._magic_line`), no shell; the
option table is the magic's own (`jupyter_complete._magic_options.OPTIONS`).
"""

from __future__ import annotations

from typing import Any

import pytest
from IPython.core.inputtransformer2 import make_tokens_by_line

from jupyter_complete._magic_line import (
    LineSyntax,
    UserNamespace,
    has_question_line,
    question_start,
    run_call,
)
from jupyter_complete._magic_options import OPTIONS

LINE = LineSyntax.of(OPTIONS)
NAMES = {"name": "m-from-var", "temp": 0.35, "q": 'a "b" c', "n": 5}


def tokenize(line: str, namespace: dict[str, Any] | None = NAMES) -> tuple[list[str], str]:
    return LINE.tokenize(line, namespace)


# -- words, options and the text after them -------------------------------------------------


def test_an_empty_line_has_no_options_and_no_text() -> None:
    assert tokenize("") == ([], "")


def test_text_without_options_is_all_text() -> None:
    assert tokenize("What is a monad?") == ([], "What is a monad?")


def test_an_option_takes_the_next_word_as_its_value() -> None:
    assert tokenize("-t 0.7 What is a monad?") == (["-t", "0.7"], "What is a monad?")


def test_a_flag_takes_no_value() -> None:
    assert tokenize("--raw Hi there") == (["--raw"], "Hi there")


def test_a_short_option_may_carry_its_value() -> None:
    assert tokenize("-t0.5 Hi") == (["-t0.5"], "Hi")


def test_a_long_option_may_carry_its_value_after_an_equals_sign() -> None:
    assert tokenize("--model=x Hi") == (["--model=x"], "Hi")


def test_an_unambiguous_prefix_of_a_long_option_takes_a_value() -> None:
    assert tokenize("--temp 0.5 Hi") == (["--temp", "0.5"], "Hi")


def test_an_ambiguous_prefix_takes_no_value_and_is_left_to_argparse() -> None:
    assert tokenize("--t 0.5 Hi") == (["--t"], "0.5 Hi")


def test_a_double_dash_ends_the_options_and_is_dropped() -> None:
    assert tokenize("-t 0 -- --not-an-option here") == (["-t", "0"], "--not-an-option here")


def test_a_double_dash_alone_leaves_no_text() -> None:
    assert tokenize("--") == ([], "")


def test_a_negative_number_starts_the_text() -> None:
    assert tokenize("-1 is negative?") == ([], "-1 is negative?")


def test_a_lone_dash_starts_the_text() -> None:
    assert tokenize("- a list item") == ([], "- a list item")


def test_an_optional_value_is_taken_when_a_word_follows() -> None:
    assert tokenize("--chat work Hi") == (["--chat", "work"], "Hi")


def test_an_optional_value_is_not_taken_from_a_following_option() -> None:
    assert tokenize("--chat -t 0 Hi") == (["--chat", "-t", "0"], "Hi")


def test_an_optional_value_may_be_a_negative_number() -> None:
    assert tokenize("--reset -1 x") == (["--reset", "-1"], "x")


def test_an_optional_value_may_be_left_out_at_the_end_of_the_line() -> None:
    assert tokenize("--chat") == (["--chat"], "")


def test_the_text_keeps_quotes_apostrophes_and_dashes_as_typed() -> None:
    line = '-t 0 --system "Be \'brief\'." it\'s "quoted" -x'
    assert tokenize(line) == (["-t", "0", "--system", "Be 'brief'."], 'it\'s "quoted" -x')


def test_an_apostrophe_in_the_text_does_not_break_the_split() -> None:
    assert tokenize("don't stop") == ([], "don't stop")


def test_a_quoted_value_with_spaces_is_one_word() -> None:
    assert tokenize('-s "a b" c') == (["-s", "a b"], "c")


def test_single_quotes_keep_backslashes() -> None:
    assert tokenize(r"-s '\n' c") == (["-s", r"\n"], "c")


def test_a_value_with_an_unclosed_quote_stays_as_typed() -> None:
    assert tokenize('--system "oops Hi') == (["--system", '"oops'], "Hi")


def test_stop_escapes_reach_the_parser_still_escaped() -> None:
    line = r'-s "\n\nEND" --stop=### -s "a\tb" Hi'
    assert tokenize(line) == (["-s", r"\n\nEND", "--stop=###", "-s", r"a\tb"], "Hi")


def test_tabs_separate_words_and_stay_in_the_text() -> None:
    assert tokenize("-t\t0.5\tHi\tthere") == (["-t", "0.5"], "Hi\tthere")


def test_leading_blanks_are_not_text() -> None:
    assert tokenize("  -t 0 Hi") == (["-t", "0"], "Hi")


# -- {name} in option values ----------------------------------------------------------------


def test_a_name_in_an_option_value_is_interpolated() -> None:
    assert tokenize("-t {temp} -m {name} Hi") == (["-t", "0.35", "-m", "m-from-var"], "Hi")


def test_the_text_is_left_for_the_body_rule() -> None:
    assert tokenize("-m {name} Hi {name}") == (["-m", "m-from-var"], "Hi {name}")


def test_a_dollar_name_stays_literal() -> None:
    assert tokenize("-m $name Hi") == (["-m", "$name"], "Hi")


def test_an_unknown_name_stays_literal() -> None:
    assert tokenize('--system "at most {max} words" Hi') == (
        ["--system", "at most {max} words"],
        "Hi",
    )


def test_an_expression_in_braces_stays_literal() -> None:
    assert tokenize("--system {n+1} Hi") == (["--system", "{n+1}"], "Hi")


def test_doubled_braces_give_a_literal_name() -> None:
    assert tokenize("--system {{n}} Hi") == (["--system", "{n}"], "Hi")


def test_a_value_with_quotes_in_it_cannot_change_the_split() -> None:
    assert tokenize("--system {q} Hi") == (["--system", 'a "b" c'], "Hi")


def test_no_interpolate_leaves_every_option_as_typed() -> None:
    assert tokenize('--no-interpolate --system "{n}" {n}') == (
        ["--no-interpolate", "--system", "{n}"],
        "{n}",
    )


def test_a_prefix_of_no_interpolate_counts_as_it() -> None:
    assert tokenize('--no-interp --system "{n}" Hi') == (["--no-interp", "--system", "{n}"], "Hi")


def test_no_namespace_means_no_interpolation() -> None:
    assert tokenize("-m {name} Hi", None) == (["-m", "{name}"], "Hi")


# -- the user's names ----------------------------------------------------------------------


class Shell:
    def __init__(self, user_ns: dict[str, Any], hidden: dict[str, Any]) -> None:
        self.user_ns = user_ns
        self.user_ns_hidden = hidden


def test_the_user_namespace_hides_ipythons_names_until_the_user_rebinds_them() -> None:
    history = ["x = 1"]
    shell = Shell({"In": history, "_": 2, "topic": "rivers", "__name__": "__main__"}, {})
    shell.user_ns_hidden = {"In": history, "_": 2}
    names = UserNamespace(shell)
    assert dict(names) == {"topic": "rivers"}
    shell.user_ns["_"] = "mine"
    assert dict(names) == {"_": "mine", "topic": "rivers"} and len(names) == 2
    assert "In" not in names and "__name__" not in names and "max" not in names
    with pytest.raises(KeyError):
        names["In"]


# -- a question mark at the end ------------------------------------------------------------


def start(cell: str) -> tuple[int, int] | None:
    return question_start(make_tokens_by_line(cell.splitlines(keepends=True)))


def test_a_magic_line_ending_in_a_question_mark_is_found() -> None:
    assert start("%complete What is a monad?\n") == (1, 0)


def test_a_double_question_mark_is_found_too() -> None:
    assert start("%complete What is a monad??\n") == (1, 0)


def test_a_magic_line_after_other_code_is_found_on_its_row() -> None:
    assert start("x = 1\n%complete Why?\n") == (2, 0)


def test_an_indented_magic_line_is_found_at_its_column() -> None:
    assert start("if x:\n    %complete Why?\n") == (2, 4)


def test_a_question_after_a_backslash_continuation_is_found() -> None:
    assert start("%complete What is \\\n  a monad?\n") == (1, 0)


def test_the_magic_name_with_only_question_marks_is_left_to_ipythons_help() -> None:
    assert start("%complete?\n") is None


def test_the_magic_name_and_a_spaced_double_question_mark_is_left_to_help() -> None:
    assert start("%complete ??\n") is None


def test_another_magic_ending_in_a_question_mark_is_not_ours() -> None:
    assert start("%completely Why?\n") is None


def test_a_percent_sign_apart_from_the_name_is_not_a_magic() -> None:
    assert start("x = 10 % complete?\n") is None


def test_a_line_without_a_question_mark_is_not_taken() -> None:
    assert start("%complete Why\n") is None


def test_a_magic_line_inside_a_string_is_not_taken() -> None:
    assert start("s = '''\n%complete Why?\n'''\n") is None


def test_the_call_passes_everything_after_the_name_and_one_blank() -> None:
    assert run_call("%complete What?") == "get_ipython().run_line_magic('complete', 'What?')"


def test_the_call_drops_a_tab_after_the_name_like_a_space() -> None:
    assert run_call("%complete\tWhat?") == "get_ipython().run_line_magic('complete', 'What?')"


def test_the_call_keeps_a_second_blank() -> None:
    assert run_call("%complete  Why?") == "get_ipython().run_line_magic('complete', ' Why?')"


def test_the_call_quotes_quotes_and_backslashes_as_python() -> None:
    assert run_call(r"%complete -s '\n' it's?") == (
        "get_ipython().run_line_magic('complete', \"-s '\\\\n' it's?\")"
    )


def test_a_cell_with_a_question_line_is_recognised() -> None:
    assert has_question_line("%load_ext jupyter_complete\n%complete What is a monad?")


def test_an_indented_question_line_with_trailing_blanks_is_recognised() -> None:
    assert has_question_line("x = 1\n  %complete a ?  \n")


def test_the_magics_own_help_is_not_a_question_line() -> None:
    assert not has_question_line("%complete?\n%complete ??")


def test_a_line_without_a_question_mark_is_not_a_question_line() -> None:
    assert not has_question_line("%complete Why")


def test_a_question_inside_other_code_is_not_a_question_line() -> None:
    assert not has_question_line("print('%complete Why?')")
