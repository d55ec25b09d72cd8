"""The explorer shows the truth: the local server's first tokens follow `sampling.stages`.

For a fixed prompt and settings, hundreds of real HTTP requests (``max_tokens_to_sample=1``)
go to `jupyter_complete.local.serve`; the first tokens they return are counted and compared
with the distribution the explorer shows (`sampling.stages` on the same model's logits for
the same rendered prompt) by a chi-square goodness-of-fit test. The prompt ends in a prefill
("My favourite fruit is"), so the first token is a word of the answer, not template markup.

Calibration (measured by simulation with these prompts, settings and sample sizes, 200,000
runs each): the chi-square approximation's tail is about twice as heavy as it claims at
1e-4, and a run makes two tests, so a test fails at p < 1e-5 (FAIL_BELOW). That made false
failures about 5 in 100,000 runs, and the negative checks below (the same samples against a
deliberately wrong distribution) were rejected in every simulated run, with p below 1e-8.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from jupyter_complete import prompt as prompts
from jupyter_complete.goodness_of_fit import chi_square_p_value
from jupyter_complete.sampling import entropy_bits, stages

CELL = "Human: Name a fruit.\nAssistant: My favourite fruit is"
#: A test fails when the p-value falls below this (see the module docstring).
FAIL_BELOW = 1e-5
#: Categories expected fewer times than this are pooled into "other".
MIN_EXPECTED = 5.0

Settings = tuple[float, int | None, float | None]


@dataclasses.dataclass(frozen=True)
class Case:
    """Settings the server samples with, how many samples, and wrong settings to reject."""

    name: str
    settings: Settings
    samples: int
    wrong: dict[str, Settings]


CASES = [
    Case(
        "temperature 0.8, top_k 20, top_p 0.9",
        (0.8, 20, 0.9),
        800,
        {"without top_p": (0.8, 20, None), "at temperature 1": (1.0, 20, 0.9)},
    ),
    Case(
        "temperature 1, no cuts (the model's own distribution)",
        (1.0, None, None),
        400,
        {"at temperature 0.7": (0.7, None, None)},
    ),
]


@dataclasses.dataclass(frozen=True)
class FitResult:
    """A chi-square goodness-of-fit test of observed counts against a distribution."""

    stat: float
    dof: int
    p_value: float
    #: (label, observed, expected) per bin after pooling.
    bins: list[tuple[str, int, float]]
    #: Observed categories the distribution says are impossible (probability 0).
    impossible: dict[str, int]

    def describe(self) -> str:
        return f"chi2 = {self.stat:.2f}, dof = {self.dof}, p = {self.p_value:.3g}"


def chi_square_fit(observed: Counter[str], probs: dict[str, float]) -> FitResult:
    """Pearson's test of ``observed`` against ``probs``, pooling rare categories into "other".

    Each category expected at least `MIN_EXPECTED` times gets its own bin; the rest (and any
    observed category outside ``probs``) share an "other" bin, which is merged into the
    smallest bin if it is itself expected fewer than `MIN_EXPECTED` times. An observation of
    a probability-0 category makes the p-value 0 (it cannot happen under ``probs``).
    """
    n = sum(observed.values())
    impossible = {k: c for k, c in observed.items() if probs.get(k, 0.0) == 0.0}
    big = sorted((k for k, p in probs.items() if p * n >= MIN_EXPECTED), key=lambda k: -probs[k])
    bins = [(repr(k), observed.get(k, 0), probs[k] * n) for k in big]
    rest = [k for k in {*probs, *observed} if k not in set(big)]
    other_obs = sum(observed.get(k, 0) for k in rest)
    other_exp = sum(probs.get(k, 0.0) for k in rest) * n
    other = f"other ({len(rest)})"
    if other_exp >= MIN_EXPECTED:
        bins.append((other, other_obs, other_exp))
    elif rest:
        i = min(range(len(bins)), key=lambda j: bins[j][2])
        label, o, e = bins[i]
        bins[i] = (f"{label} + {other}", o + other_obs, e + other_exp)
    if len(bins) < 2:
        raise ValueError("the distribution is too concentrated to test (fewer than 2 bins)")
    stat = sum((o - e) ** 2 / e for _, o, e in bins)
    dof = len(bins) - 1
    p_value = 0.0 if impossible else chi_square_p_value(stat, dof)
    return FitResult(stat, dof, p_value, bins, impossible)


def server_text(model: Any, token: int) -> str:
    """The completion text the server returns for a one-token answer ``token``.

    An end-of-turn token ends the answer with no text; other tokens are their bytes as UTF-8
    (a piece of a character becomes U+FFFD, as the server's decoder flushes it).
    """
    if model.is_end(token):
        return ""
    return str(model.token_bytes(token).decode("utf-8", errors="replace"))


def text_distribution(model: Any, final: np.ndarray[Any, Any]) -> dict[str, float]:
    """``final`` over tokens, as a distribution over the texts the server would return."""
    out: dict[str, float] = {}
    for token in np.flatnonzero(final > 0).tolist():
        key = server_text(model, token)
        out[key] = out.get(key, 0.0) + float(final[token])
    return out


@pytest.fixture(scope="module")
def model(local_server: Any) -> Any:
    pytest.importorskip("llama_cpp")
    return local_server.model


Samples = tuple[Counter[str], np.ndarray[Any, Any]]


@pytest.fixture(scope="module")
def server_samples(local_server: Any, local_api_key: str) -> Iterator[Callable[[Case], Samples]]:
    """``server_samples(case)``: first-token texts from real requests, and the logits the
    server sampled them from (cached per case).

    The logits are the model's for the prompt exactly as the server renders ``CELL``, and
    exactly the ones the server uses: llama.cpp's logits differ in the last bits between
    evaluation paths (one batch, or the last token on a cached prefix), which could move a
    token across a top_k or top_p cut. The server re-evaluates the last prompt token on the
    prefix left in the cache; after evaluating the prompt twice here, every request does
    the same on the same prefix, so the distribution tested is the one really sampled.
    """
    import requests

    cache: dict[str, Samples] = {}
    session = requests.Session()
    headers = {"x-api-key": local_api_key, "anthropic-version": "2023-06-01"}
    model = local_server.model
    tokens = model.apply_chat_template(prompts.parse(prompts.build(CELL)))

    def collect(case: Case) -> Samples:
        if case.name not in cache:
            with model.lock:
                model.llm.reset()
                model.next_logits(tokens)  # the prefix the server's requests will reuse
                logits = np.asarray(model.next_logits(tokens))
            t, k, p = case.settings
            body: dict[str, Any] = {
                "model": "local",
                "prompt": prompts.build(CELL),
                "max_tokens_to_sample": 1,
                "temperature": t,
            }
            if k is not None:
                body["top_k"] = k
            if p is not None:
                body["top_p"] = p
            counts: Counter[str] = Counter()
            for _ in range(case.samples):
                response = session.post(
                    f"{local_server.url}/v1/complete", json=body, headers=headers, timeout=60
                )
                assert response.status_code == 200, response.text
                counts[response.json()["completion"]] += 1
            cache[case.name] = (counts, logits)
        return cache[case.name]

    yield collect
    session.close()


def report(record_property: Any, label: str, fit: FitResult) -> None:
    """Print the result (shown by ``pytest -s`` or ``-rA``) and record it in the report."""
    print(f"\n{label}: {fit.describe()}")
    for name, observed, expected in fit.bins:
        print(f"    {name:>28}  observed {observed:4d}  expected {expected:7.1f}")
    if fit.impossible:
        print(f"    impossible under this distribution: {fit.impossible}")
    record_property(label, fit.describe())


@pytest.mark.local
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_servers_first_tokens_follow_the_distribution_the_explorer_shows(
    case: Case, model: Any, server_samples: Any, record_property: Any
) -> None:
    observed, logits = server_samples(case)
    final = stages(logits, *case.settings).final
    probs = text_distribution(model, final)
    assert sum(observed.values()) == case.samples
    fit = chi_square_fit(observed, probs)
    report(record_property, f"server vs explorer, {case.name}", fit)
    # A token outside the explorer's survivors would be a plain contradiction.
    assert not fit.impossible, f"the server drew tokens the explorer says it cannot: {fit}"
    assert fit.dof >= 3, "too few bins for the test to mean much"
    assert fit.p_value >= FAIL_BELOW, (
        f"the server's first tokens do not follow the explorer's distribution: "
        f"{fit.describe()}, bins {fit.bins}"
    )


@pytest.mark.local
@pytest.mark.parametrize(
    ("case", "wrong"),
    [(c, w) for c in CASES for w in c.wrong],
    ids=[f"{c.name} / {w}" for c in CASES for w in c.wrong],
)
def test_the_same_samples_reject_a_deliberately_wrong_distribution(
    case: Case, wrong: str, model: Any, server_samples: Any, record_property: Any
) -> None:
    observed, logits = server_samples(case)
    probs = text_distribution(model, stages(logits, *case.wrong[wrong]).final)
    fit = chi_square_fit(observed, probs)
    report(record_property, f"negative check, {case.name}, {wrong}", fit)
    assert fit.p_value < FAIL_BELOW, (
        f"the test could not tell the server's distribution from one {wrong}: {fit.describe()}"
    )


# -- the statistics the tests rest on ------------------------------------------------------
@pytest.mark.parametrize("stat", [0.01, 0.5, 1.0, 3.84, 10.0, 40.0, 120.0])
def test_the_p_value_matches_the_closed_forms_for_one_two_and_four_dof(stat: float) -> None:
    # dof 1: erfc(sqrt(x/2)); dof 2: exp(-x/2); dof 4: exp(-x/2) (1 + x/2).
    assert chi_square_p_value(stat, 1) == pytest.approx(math.erfc(math.sqrt(stat / 2)), rel=1e-10)
    assert chi_square_p_value(stat, 2) == pytest.approx(math.exp(-stat / 2), rel=1e-10)
    assert chi_square_p_value(stat, 4) == pytest.approx(
        math.exp(-stat / 2) * (1 + stat / 2), rel=1e-10
    )


def test_the_p_value_agrees_with_scipy_far_into_the_tail() -> None:
    # scipy.special.chdtrc is the chi-square survival function that scipy.stats.chi2.sf
    # evaluates (Cephes' chdtrc); importing scipy.special alone skips scipy.stats' load time.
    special = pytest.importorskip("scipy.special")
    for dof in (1, 3, 5, 9, 30, 200):
        for x in (0.1, 1.0, dof - 0.5, dof + 2.0, 2.0 * dof + 10, 25.0, 60.0, 300.0):
            if x <= 0:
                continue
            expected = float(special.chdtrc(dof, x))
            assert chi_square_p_value(x, dof) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_the_p_value_edges() -> None:
    assert chi_square_p_value(0.0, 3) == 1.0
    assert chi_square_p_value(math.inf, 3) == 0.0
    # The 1e-4 critical value for 5 dof is 25.7448 (tables, scipy.stats.chi2.isf).
    assert chi_square_p_value(25.7448, 5) == pytest.approx(1e-4, rel=1e-4)
    with pytest.raises(ValueError):
        chi_square_p_value(1.0, 0)
    with pytest.raises(ValueError):
        chi_square_p_value(math.nan, 2)


def test_entropy_in_bits() -> None:
    assert entropy_bits([1.0, 0.0, 0.0]) == 0.0
    assert entropy_bits(np.full(8, 0.125)) == pytest.approx(3.0)
    assert entropy_bits([2.0, 2.0]) == pytest.approx(1.0)  # scaled to sum 1 first
    with pytest.raises(ValueError):
        entropy_bits([0.0, 0.0])


def test_pooling_keeps_every_bin_expected_at_least_five_times() -> None:
    probs = {"a": 0.5, "b": 0.3, "c": 0.15, "d": 0.03, "e": 0.02}
    fit = chi_square_fit(Counter(a=50, b=30, c=15, d=3, e=2), probs)
    assert [b[0] for b in fit.bins] == ["'a'", "'b'", "'c'", "other (2)"]
    assert all(e >= MIN_EXPECTED for _, _, e in fit.bins) and fit.dof == 3
    assert fit.stat == pytest.approx(0.0) and fit.p_value == pytest.approx(1.0)
    small = chi_square_fit(
        Counter(a=60, b=30, c=8, d=2), {"a": 0.6, "b": 0.3, "c": 0.08, "d": 0.02}
    )
    assert small.bins[-1][0] == "'c' + other (1)" and small.bins[-1][2] == pytest.approx(10.0)
    zero = chi_square_fit(Counter(a=50, z=1), {"a": 0.5, "b": 0.5})
    assert zero.impossible == {"z": 1} and zero.p_value == 0.0
