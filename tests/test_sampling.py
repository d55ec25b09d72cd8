"""jupyter_complete.sampling: the API's temperature -> top_k -> top_p pipeline, in numpy."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from jupyter_complete.sampling import Stages, sample, stages

LOGITS = np.log(np.array([0.5, 0.2, 0.15, 0.1, 0.05]))


def _probs(values: list[float]) -> np.ndarray:
    return np.log(np.array(values))


def test_raw_is_the_softmax_of_the_logits():
    s = stages(LOGITS, None, None, None)
    assert np.allclose(s.raw, [0.5, 0.2, 0.15, 0.1, 0.05])
    assert s.raw.sum() == pytest.approx(1.0)


def test_no_parameters_leave_the_distribution_unchanged_at_every_stage():
    s = stages(LOGITS, None, None, None)
    for stage in (s.tempered, s.after_top_k, s.after_top_p, s.final):
        assert np.allclose(stage, s.raw)


def test_temperature_none_means_one():
    assert np.allclose(
        stages(LOGITS, None, None, None).final, stages(LOGITS, 1.0, None, None).final
    )


def test_temperature_zero_is_a_one_hot_on_the_argmax():
    s = stages(LOGITS, 0.0, None, None)
    assert s.tempered.tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert s.final.tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    # raw still shows the model's own distribution, for the explorer
    assert s.raw[0] == pytest.approx(0.5)


def test_temperature_zero_always_draws_the_argmax():
    rng = np.random.default_rng(0)
    logits = np.array([0.0, 3.0, 2.9, -1.0])
    final = stages(logits, 0, None, None).final
    assert {sample(final, rng) for _ in range(50)} == {1}


def test_lower_temperature_sharpens_and_keeps_the_order():
    s = stages(LOGITS, 0.5, None, None)
    assert s.tempered[0] > s.raw[0]
    assert s.tempered[4] < s.raw[4]
    assert list(np.argsort(-s.tempered)) == list(np.argsort(-s.raw))
    assert np.allclose(s.tempered, np.exp(LOGITS / 0.5) / np.exp(LOGITS / 0.5).sum())


def test_top_k_zeroes_everything_outside_the_k_likeliest_without_renormalising():
    s = stages(LOGITS, None, 2, None)
    assert np.allclose(s.after_top_k, [0.5, 0.2, 0, 0, 0])
    assert np.allclose(s.final, [0.5 / 0.7, 0.2 / 0.7, 0, 0, 0])


def test_top_k_zero_or_none_or_larger_than_the_vocabulary_is_no_cut():
    for k in (None, 0, 5, 10_000):
        assert np.allclose(stages(LOGITS, None, k, None).final, [0.5, 0.2, 0.15, 0.1, 0.05])


def test_top_k_one_is_greedy():
    s = stages(LOGITS, 0.9, 1, None)
    assert np.count_nonzero(s.final) == 1
    assert s.final[0] == 1.0


def test_top_p_keeps_the_smallest_set_that_reaches_it():
    # cumulative: 0.5, 0.7, 0.85, 0.95, 1.0
    assert np.count_nonzero(stages(LOGITS, None, None, 0.5).after_top_p) == 1
    assert np.count_nonzero(stages(LOGITS, None, None, 0.6).after_top_p) == 2
    assert np.count_nonzero(stages(LOGITS, None, None, 0.7).after_top_p) == 2
    assert np.count_nonzero(stages(LOGITS, None, None, 0.71).after_top_p) == 3
    s = stages(LOGITS, None, None, 0.8)
    assert np.allclose(s.after_top_p, [0.5, 0.2, 0.15, 0, 0])
    assert np.allclose(s.final, np.array([0.5, 0.2, 0.15, 0, 0]) / 0.85)


def test_top_p_zero_still_keeps_the_likeliest_token():
    s = stages(LOGITS, None, None, 0.0)
    assert s.final.tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]


def test_top_p_one_or_none_is_no_cut():
    for p in (None, 1.0):
        assert np.count_nonzero(stages(LOGITS, None, None, p).final) == 5


def test_top_p_is_computed_after_top_k_on_the_renormalised_survivors():
    # After top_k=3 the survivors renormalise to 0.588, 0.235, 0.176: top_p=0.8 needs two of
    # them (0.824), although on the uncut distribution two tokens hold only 0.7.
    s = stages(LOGITS, None, 3, 0.8)
    assert np.allclose(s.after_top_p, [0.5 / 0.85, 0.2 / 0.85, 0, 0, 0])
    assert np.allclose(s.final, [0.5 / 0.7, 0.2 / 0.7, 0, 0, 0])


def test_temperature_is_applied_before_top_p():
    # At temperature 0.5 the first token holds 0.5^2/sum(p^2) = 0.76 of the mass, so
    # top_p=0.75 keeps it alone; untempered it would need two tokens.
    assert np.count_nonzero(stages(LOGITS, 0.5, None, 0.75).final) == 1
    assert np.count_nonzero(stages(LOGITS, 1.0, None, 0.75).final) == 3


def test_every_stage_is_read_only():
    s = stages(LOGITS, 0.7, 3, 0.9)
    for stage in (s.raw, s.tempered, s.after_top_k, s.after_top_p, s.final):
        with pytest.raises(ValueError):
            stage[0] = 0.5


def test_the_input_logits_are_not_modified():
    logits = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    stages(logits, 0.5, 2, 0.5)
    assert logits.tolist() == [1.0, 2.0, 3.0]


def test_sample_follows_the_distribution():
    rng = np.random.default_rng(1)
    final = stages(_probs([0.6, 0.3, 0.1]), None, None, None).final
    draws = np.bincount([sample(final, rng) for _ in range(20_000)], minlength=3) / 20_000
    assert np.allclose(draws, [0.6, 0.3, 0.1], atol=0.015)


def test_sample_never_draws_a_token_that_was_cut():
    rng = np.random.default_rng(2)
    final = stages(LOGITS, 1.0, 2, None).final
    assert {sample(final, rng) for _ in range(2000)} == {0, 1}


def test_sample_with_the_same_seed_repeats():
    final = stages(LOGITS, 1.0, None, None).final
    a = [sample(final, np.random.default_rng(7)) for _ in range(20)]
    b = [sample(final, np.random.default_rng(7)) for _ in range(20)]
    assert a == b


def test_sample_rejects_an_all_zero_distribution():
    with pytest.raises(ValueError):
        sample(np.zeros(4), np.random.default_rng())


def test_invalid_parameters_are_refused():
    with pytest.raises(ValueError):
        stages(LOGITS, -0.1, None, None)
    with pytest.raises(ValueError):
        stages(LOGITS, None, -1, None)
    with pytest.raises(ValueError):
        stages(np.array([]), None, None, None)


def test_stages_is_a_dataclass_with_the_five_arrays():
    s = stages(LOGITS, 0.8, 4, 0.9)
    assert isinstance(s, Stages)
    assert [f for f in Stages.__dataclass_fields__] == [
        "raw",
        "tempered",
        "after_top_k",
        "after_top_p",
        "final",
    ]


def test_a_full_vocabulary_nucleus_matches_a_plain_sort():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal(49_152) * 4
    for top_p in (0.1, 0.5, 0.9, 0.99):
        s = stages(logits, 0.8, None, top_p)
        p = s.tempered
        order = np.argsort(-p)
        keep = int(np.searchsorted(np.cumsum(p[order]), top_p)) + 1
        expected = np.zeros_like(p)
        expected[order[:keep]] = p[order[:keep]]
        assert np.allclose(s.final, expected / expected.sum())


def test_a_full_vocabulary_token_is_staged_and_sampled_in_a_few_milliseconds():
    rng = np.random.default_rng(4)
    logits = (rng.standard_normal(49_152) * 3).astype(np.float32)
    for args in ((0.0, None, None), (1.0, None, None), (0.7, 40, 0.9), (0.7, None, 0.9)):
        stages(logits, *args)  # warm up
        started = time.perf_counter()
        for _ in range(20):
            sample(stages(logits, *args).final, rng)
        per_token = (time.perf_counter() - started) / 20
        # Generous bound for a loaded CI machine; typical is about 1 ms.
        assert per_token < 0.02, (args, per_token)


@settings(max_examples=200, deadline=None)
@given(
    logits=arrays(np.float64, st.integers(1, 40), elements=st.floats(-30, 30, allow_nan=False)),
    temperature=st.one_of(st.none(), st.floats(0, 1)),
    top_k=st.one_of(st.none(), st.integers(0, 50)),
    top_p=st.one_of(st.none(), st.floats(0, 1)),
)
def test_final_is_always_a_distribution_over_a_subset_of_the_top_k(
    logits, temperature, top_k, top_p
):
    s = stages(logits, temperature, top_k, top_p)
    assert s.final.sum() == pytest.approx(1.0)
    assert (s.final >= 0).all()
    assert np.count_nonzero(s.final) >= 1
    if top_k:
        assert np.count_nonzero(s.final) <= top_k
    # nothing that an earlier stage removed comes back
    assert not ((s.final > 0) & (s.after_top_k == 0)).any()
    assert not ((s.after_top_p > 0) & (s.after_top_k == 0)).any()
    token = sample(s.final, np.random.default_rng(0))
    assert s.final[token] > 0
