"""How far counted tokens are from the probabilities they were drawn with.

Two figures, both on counts of labels (token texts) against a probability for each label:

* `total_variation`: the total variation distance, ``0.5 * sum(|f(t) - p(t)|)``;
* `chi_square_fit`: Pearson's chi-square goodness-of-fit test, with bins pooled by Cochran's
  rule, and its p-value from `chi_square_p_value` (the upper tail of the chi-square
  distribution, computed here so the package needs no scipy; the tests check it against
  ``scipy.special.chdtrc``, which ``scipy.stats.chi2.sf`` evaluates).

`jupyter_complete.first_tokens` shows both beside its chart.
"""

from __future__ import annotations

import dataclasses
import math

#: Bins expected fewer times than this are pooled for the chi-square test (Cochran's rule).
MIN_EXPECTED = 5.0


@dataclasses.dataclass(frozen=True)
class Fit:
    """Pearson's chi-square goodness-of-fit of the counts against the exact probabilities.

    Attributes:
        stat: Pearson's statistic, the sum over the bins of (observed - expected)^2 / expected
            (infinite when a text that cannot be drawn was observed).
        dof: degrees of freedom, bins - 1.
        p_value: P(X >= stat) for X chi-square with ``dof`` degrees of freedom
            (`chi_square_p_value`).
        bins: ``(label, observed, expected)`` per bin after pooling (``"other"`` holds the
            pool).
        impossible: texts observed that the exact distribution says cannot be drawn, with
            their counts.
    """

    stat: float
    dof: int
    p_value: float
    bins: list[tuple[str, int, float]]
    impossible: dict[str, int]


def chi_square_fit(
    counts: dict[str, int],
    probs: dict[str, float],
    ranked: list[tuple[str, float]] | None = None,
) -> Fit | None:
    """Pearson's test of ``counts`` against ``probs``; None with fewer than two bins.

    Each text expected at least `MIN_EXPECTED` times gets its own bin; the rest (and any
    observed text outside ``probs``) share an ``"other"`` bin, merged into the smallest bin
    when it is itself expected fewer than `MIN_EXPECTED` times. A text with probability 0
    that was observed makes the p-value 0 (it cannot happen under ``probs``). ``ranked`` is
    ``probs`` sorted by probability, most likely first, when the caller has it already.
    """
    n = sum(counts.values())
    if n == 0:
        return None
    if ranked is None:
        ranked = sorted(probs.items(), key=lambda item: -item[1])
    impossible = {t: c for t, c in counts.items() if c and probs.get(t, 0.0) <= 0.0}
    bins: list[tuple[str, int, float]] = []
    for text, p in ranked:
        expected = p * n
        if expected < MIN_EXPECTED:
            break  # ranked: every later text is expected less often still
        bins.append((text, counts.get(text, 0), expected))
    other_obs = n - sum(obs for _, obs, _ in bins)
    other_exp = max(0.0, n - sum(exp for _, _, exp in bins))
    if other_exp >= MIN_EXPECTED or (bins == [] and other_exp > 0):
        bins.append(("other", other_obs, other_exp))
    elif bins and (other_obs or other_exp > 1e-9):
        i = min(range(len(bins)), key=lambda j: bins[j][2])
        label, obs, exp = bins[i]
        bins[i] = (label + " + other", obs + other_obs, exp + other_exp)
    if impossible:
        return Fit(
            stat=float("inf"),
            dof=max(1, len(bins) - 1),
            p_value=0.0,
            bins=bins,
            impossible=impossible,
        )
    if len(bins) < 2:
        return None
    stat = sum((obs - exp) ** 2 / exp for _, obs, exp in bins if exp > 0)
    return Fit(
        stat=stat,
        dof=len(bins) - 1,
        p_value=chi_square_p_value(stat, len(bins) - 1),
        bins=bins,
        impossible=impossible,
    )


def total_variation(counts: dict[str, int], probs: dict[str, float]) -> float | None:
    """Total variation distance between the observed frequencies and ``probs``.

    ``0.5 * sum(|f(t) - p(t)|)`` over every text either one has (0: identical; 1:
    disjoint). None before the first sample. ``probs`` sums to 1, so the texts never observed
    add exactly the probability the observed ones leave: the work is O(observed texts).
    """
    n = sum(counts.values())
    if n == 0:
        return None
    seen = [t for t, c in counts.items() if c]
    unseen_mass = max(0.0, 1.0 - sum(probs.get(t, 0.0) for t in seen))
    return 0.5 * (sum(abs(counts[t] / n - probs.get(t, 0.0)) for t in seen) + unseen_mass)


def chi_square_p_value(stat: float, dof: int) -> float:
    """P(X >= stat) for X chi-square distributed with ``dof`` degrees of freedom.

    The regularized upper incomplete gamma function Q(dof/2, stat/2), by its power series
    below the mode and its continued fraction above it (both converge fast there), so a
    goodness-of-fit test needs no scipy. Accurate to about 1e-12 relative, far into the tail.
    """
    if dof < 1:
        raise ValueError(f"dof must be >= 1, got {dof!r}")
    if math.isnan(stat):
        raise ValueError("stat must not be nan")
    if stat <= 0:
        return 1.0
    if math.isinf(stat):
        return 0.0
    a, x = dof / 2.0, stat / 2.0
    # x^a e^-x / Gamma(a), in logs so that large dof or stat do not overflow.
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:
        # P(a, x) = front * sum_n x^n / (a (a+1) ... (a+n)); Q = 1 - P.
        term = total = 1.0 / a
        denominator = a
        while abs(term) > abs(total) * 1e-16:
            denominator += 1.0
            term *= x / denominator
            total += term
        return min(1.0, max(0.0, 1.0 - total * math.exp(log_front)))
    # Q(a, x) = front * 1/(x+1-a- 1(1-a)/(x+3-a- 2(2-a)/(x+5-a- ...))), evaluated with the
    # modified Lentz method; `tiny` stands in for a zero denominator.
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return min(1.0, math.exp(log_front) * h)


__all__ = ["MIN_EXPECTED", "Fit", "chi_square_fit", "chi_square_p_value", "total_variation"]
