"""`first_tokens`' figures on fixed inputs: total variation, the chi-square fit, the chart rows.

And, on the built-in model (in this process, through the real local server), that every
first token the server returns is one the explorer's distribution allows, that the counts
add up, and that a client for another endpoint is refused with a one-line error.
"""

from __future__ import annotations

from typing import Any

import pytest

from jupyter_complete import Client
from jupyter_complete.settling import (
    END_OF_TURN,
    FirstTokens,
    chart_html,
    chi_square_fit,
    first_tokens,
    label_of,
    total_variation,
)
from jupyter_complete.sweep import Sample


@pytest.mark.parametrize(
    ("counts", "probs", "expected"),
    [
        ({"a": 50, "b": 50}, {"a": 0.5, "b": 0.5}, 0.0),
        ({"a": 60, "b": 40}, {"a": 0.5, "b": 0.5}, 0.1),
        ({"a": 9, "c": 1}, {"a": 1.0}, 0.1),  # c cannot happen under probs
        ({"a": 2}, {"a": 0.5, "b": 0.5}, 0.5),  # b never seen: its mass counts
        ({"x": 3}, {"a": 0.25, "b": 0.75}, 1.0),  # disjoint
        ({}, {"a": 1.0}, None),
    ],
)
def test_total_variation_is_half_the_summed_differences(
    counts: dict[str, int],
    probs: dict[str, float],
    expected: float | None,
) -> None:
    got = total_variation(counts, probs)
    assert got == (None if expected is None else pytest.approx(expected))


def test_chi_square_fit_of_a_perfect_match_has_p_one() -> None:
    fit = chi_square_fit({"a": 50, "b": 50}, {"a": 0.5, "b": 0.5})
    assert fit is not None
    assert (fit.stat, fit.dof, fit.p_value) == (0.0, 1, 1.0)
    assert fit.bins == [("a", 50, 50.0), ("b", 50, 50.0)]


def test_chi_square_fit_of_sixty_forty_against_fifty_fifty() -> None:
    fit = chi_square_fit({"a": 60, "b": 40}, {"a": 0.5, "b": 0.5})
    assert fit is not None
    assert fit.stat == pytest.approx(4.0) and fit.dof == 1
    assert fit.p_value == pytest.approx(0.0455002638, rel=1e-6)  # chi2(1).sf(4)


def test_chi_square_fit_pools_rare_texts_into_the_smallest_bin() -> None:
    probs = {"a": 0.5, "b": 0.3, "c": 0.1, "d": 0.1}
    fit = chi_square_fit({"a": 10, "b": 6, "c": 2, "d": 2}, probs)
    assert fit is not None
    # c and d are expected 2 times each: pooled (4 < 5), so merged into b (expected 6).
    assert [(label, obs, round(exp, 9)) for label, obs, exp in fit.bins] == [
        ("a", 10, 10.0),
        ("b + other", 10, 10.0),
    ]
    assert fit.stat == pytest.approx(0.0) and fit.dof == 1


def test_chi_square_fit_keeps_a_pooled_bin_expected_often_enough() -> None:
    probs = {"a": 0.4, "b": 0.3} | {f"r{i}": 0.03 for i in range(10)}
    counts = {"a": 40, "b": 30, "r0": 20, "zzz": 10}
    fit = chi_square_fit(counts, probs)
    assert fit is not None
    assert fit.bins[:2] == [("a", 40, pytest.approx(40.0)), ("b", 30, pytest.approx(30.0))]
    assert fit.bins[2][0] == "other" and fit.bins[2][1] == 30
    assert fit.bins[2][2] == pytest.approx(30.0)
    assert fit.impossible == {"zzz": 10} and fit.p_value == 0.0


def test_an_observed_text_the_distribution_forbids_makes_p_zero() -> None:
    fit = chi_square_fit({"a": 9, "c": 1}, {"a": 1.0})
    assert fit is not None and fit.p_value == 0.0 and fit.impossible == {"c": 1}


def test_a_one_token_sample_is_labelled_by_its_text_or_as_the_end_of_turn() -> None:
    def s(text: str, stop: str) -> Sample:
        return Sample(setting=0, value=1.0, index=0, text=text, outcome="done", stop_reason=stop)

    assert label_of(s(" the", "max_tokens")) == " the"
    assert label_of(s("", "stop_sequence")) == END_OF_TURN
    assert label_of(s("", "max_tokens")) == ""


def _ft(counts: dict[str, int], top: int = 2) -> FirstTokens:
    return FirstTokens(
        prompt="p",
        wire_prompt="w",
        temperature=1.0,
        top_k=None,
        top_p=None,
        n=10,
        probabilities={"a": 0.5, "b": 0.3, "c": 0.2},
        counts=counts,
        top=top,
    )


def test_the_chart_rows_show_the_likeliest_then_surprises_then_all_others() -> None:
    ft = _ft({"a": 4, "c": 3, "b": 2, "<odd>": 1})
    rows = ft.rows()
    assert rows[:2] == [("a", 0.5, 4), ("b", 0.3, 2)]
    assert rows[2] == ("c", 0.2, 3) and rows[3] == ("<odd>", 0.0, 1)
    assert rows[-1][0] != "all others"  # everything is shown: nothing left over
    assert sum(c for _, _, c in rows) == ft.drawn == 10
    page = chart_html(ft)
    assert "&lt;odd&gt;" in page and "<odd>" not in page
    assert "<b>10</b> of 10 samples" in page
    few = _ft({"a": 1}, top=1)
    assert few.rows() == [("a", 0.5, 1), ("all others", pytest.approx(0.5), 0)]


def test_first_tokens_refuses_a_client_that_is_not_the_built_in_model() -> None:
    client = Client(base_url="http://127.0.0.1:9", api_key="k")
    with pytest.raises(ValueError, match="needs the built-in model") as info:
        first_tokens("Name a fruit.", n=5, client=client)
    assert "\n" not in str(info.value)


@pytest.mark.local
def test_first_tokens_from_the_local_server_are_all_allowed_and_add_up(
    local_model: Any,
    monkeypatch: Any,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    prompt = "Human: Name a fruit.\nAssistant: My favourite fruit is"
    ft = first_tokens(prompt, n=30, temperature=0.9, top_k=8, live=False)
    assert ft.drawn == 30 and sum(ft.counts.values()) == 30
    assert len(ft.probabilities) <= 8
    assert sum(ft.probabilities.values()) == pytest.approx(1.0)
    # The server samples from exactly the distribution the explorer computes.
    assert set(ft.counts) <= set(ft.probabilities)
    fit = ft.fit()
    assert fit is None or fit.impossible == {}
    assert ft.sweep is not None and ft.sweep.concurrency == 1
    assert all(s.stop_reason in ("max_tokens", "stop_sequence") for s in ft.sweep.samples)
