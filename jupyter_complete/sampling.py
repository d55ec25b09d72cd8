"""Next-token sampling as the Text Completions API defines it, in plain numpy.

The built-in local server draws every token with `stages` and `sample`, and the sampling
explorer shows the same `Stages`, so what a student sees is exactly what the server does.

The order is the API's, not llama.cpp's: temperature -> top_k -> top_p -> renormalise ->
draw. ``temperature`` 0 is greedy (a one-hot on the likeliest token), ``top_k`` unset or 0
means no cut, ``top_p`` unset means 1 (no cut), and there are no other samplers (no min_p,
no repetition penalty).

Everything here is a pure function of its arguments; the only randomness is the
`numpy.random.Generator` passed to `sample`. `chi_square_p_value`, for checking draws
against `Stages`' probabilities, lives in `goodness_of_fit` and is importable from here too.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import numpy.typing as npt

from .goodness_of_fit import chi_square_p_value

#: A probability vector over the vocabulary.
Vector = npt.NDArray[np.float64]

# Candidate-set sizes tried, in turn, when finding the nucleus without a full sort: the
# nucleus is a prefix of the tokens sorted by probability, so once the m likeliest tokens
# hold top_p of the mass, sorting those m is enough. Peaked distributions stop at 64.
_NUCLEUS_STEPS = (64, 1024, 8192)
# A stage whose sum is this close to 1 is already normalised (float64 rounding).
_UNIT_TOLERANCE = 1e-12
# Probabilities come from a float32 exp (see _softmax), so a running total "reaches" top_p
# when it is within float32 rounding of it: 0.5 + 0.2 must reach 0.7.
_REACH_TOLERANCE = 1e-6


@dataclasses.dataclass(frozen=True)
class Stages:
    """The next-token distribution after each step of the sampling pipeline.

    Every array has one entry per vocabulary token. Arrays are read-only and may be shared
    between stages when a step changes nothing (e.g. ``tempered is raw`` at temperature 1).
    """

    #: ``softmax(logits)``: the model's own distribution.
    raw: Vector
    #: ``softmax(logits / temperature)``; a one-hot on the argmax at temperature 0.
    tempered: Vector
    #: ``tempered`` with every token outside the ``top_k`` likeliest set to 0 (not renormalised,
    #: so the mass that was cut is visible).
    after_top_k: Vector
    #: The nucleus cut: ``after_top_k`` renormalised to sum 1, then every token outside the
    #: smallest set of likeliest tokens whose cumulative probability reaches ``top_p`` set to 0
    #: (values are on the renormalised scale, so the threshold reads directly off them).
    after_top_p: Vector
    #: ``after_top_p`` renormalised to sum 1: what `sample` draws from.
    final: Vector


def _frozen(a: Vector) -> Vector:
    a.flags.writeable = False
    return a


def _softmax(x: npt.NDArray[np.float32], temperature: float = 1.0) -> Vector:
    """``softmax(x / temperature)`` as float64, stable for any finite x and temperature > 0."""
    # Shift by the max before dividing: exp never overflows, and a tiny temperature sends
    # the other logits to -inf (probability 0) instead of making inf - inf = nan.
    z = x - x.max()
    if temperature != 1.0:
        # A temperature below float32's smallest normal acts like that smallest one: every
        # logit short of the max goes to -inf either way.
        t32 = np.float32(max(temperature, float(np.finfo(np.float32).tiny)))
        with np.errstate(over="ignore"):
            np.divide(z, t32, out=z)
    # This runs for every generated token over a 49k vocabulary, so: exp in float32 (the
    # logits' own precision; several times faster than float64 here), in place, and one
    # new float64 array for the result (fresh memory costs page faults on this scale).
    np.exp(z, out=z)
    out: Vector = np.empty(z.shape[0], dtype=np.float64)
    np.divide(z, z.sum(dtype=np.float64), out=out)
    return out


def _sum(a: Vector) -> float:
    return float(a.sum(dtype=np.float64))


def _normalised(a: Vector, total: float) -> Vector:
    """``a`` scaled to sum 1 (``a`` itself when it already does)."""
    if abs(total - 1.0) <= _UNIT_TOLERANCE:
        return a
    return _frozen(a / total)


def _one_hot(n: int, index: int) -> Vector:
    out = np.zeros(n, dtype=np.float64)
    out[index] = 1.0
    return out


def _top_k_indices(logits: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.intp]:
    # Rank by logits, not by tempered probabilities: the order is the same for any positive
    # temperature, and logits never tie through underflow to 0.
    n = logits.shape[0]
    top: npt.NDArray[np.intp] = np.argpartition(logits, n - k)[n - k :]
    return top


def _nucleus(probs: Vector, candidates: npt.NDArray[np.intp] | None, top_p: float) -> Vector:
    """Zero every token outside the nucleus of ``probs`` (which sums to 1)."""
    n = probs.shape[0]
    if candidates is None:
        # No top-k cut: grow a candidate set from the likeliest tokens until it holds top_p.
        candidates = np.arange(n)
        for m in _NUCLEUS_STEPS:
            if m >= n:
                break
            part = np.argpartition(probs, n - m)[n - m :]
            if probs[part].sum(dtype=np.float64) >= top_p:
                candidates = part
                break
    # Stable sort, so equal probabilities keep a deterministic order.
    order = candidates[np.argsort(-probs[candidates], kind="stable")]
    cumulative = np.cumsum(probs[order], dtype=np.float64)
    # The first position where the running total reaches top_p; keep up to and including it.
    # If rounding keeps the total just under top_p, keep every candidate.
    keep = int(np.searchsorted(cumulative, top_p - _REACH_TOLERANCE, side="left")) + 1
    keep = max(1, min(keep, order.shape[0]))
    out = np.zeros(n, dtype=np.float64)
    kept = order[:keep]
    out[kept] = probs[kept]
    return out


def stages(
    logits: npt.ArrayLike,
    temperature: float | None,
    top_k: int | None,
    top_p: float | None,
) -> Stages:
    """Apply temperature, top_k and top_p to next-token ``logits``, keeping every stage.

    Args:
        logits: one logit per vocabulary token (any float dtype; it is not modified). They
            are read as float32, llama.cpp's own precision.
        temperature: in [0, 1] for the API; None means 1. At 0 the result is greedy: a
            one-hot on the likeliest token.
        top_k: keep only the k likeliest tokens; None or 0 means no cut.
        top_p: keep the smallest set of likeliest tokens whose cumulative probability
            (after the top_k cut, renormalised) reaches top_p, always at least one token;
            None (or >= 1) means no cut.

    Returns:
        The `Stages` (float64 arrays); ``final`` is the distribution to pass to `sample`.
    """
    x = np.asarray(logits, dtype=np.float32).reshape(-1)
    n = x.shape[0]
    if n == 0:
        raise ValueError("logits must not be empty")
    t = 1.0 if temperature is None else float(temperature)
    if t < 0 or not math.isfinite(t):
        raise ValueError(f"temperature must be >= 0, got {temperature!r}")
    if top_k is not None and top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k!r}")

    raw = _frozen(_softmax(x))
    if t == 0:
        tempered = _frozen(_one_hot(n, int(np.argmax(x))))
    elif t == 1:
        tempered = raw
    else:
        tempered = _frozen(_softmax(x, t))

    kept: npt.NDArray[np.intp] | None = None
    if t == 0 or not top_k or top_k >= n:
        # A one-hot survives any top_k cut unchanged (its token is the top-1 by logit).
        after_top_k = tempered
    else:
        kept = _top_k_indices(x, top_k)
        cut = np.zeros(n, dtype=np.float64)
        cut[kept] = tempered[kept]
        after_top_k = _frozen(cut)

    if t == 0:
        # Greedy: every later stage is the same one-hot (no sums over the vocabulary needed).
        return Stages(
            raw=raw, tempered=tempered, after_top_k=tempered, after_top_p=tempered, final=tempered
        )
    renormalised = _normalised(after_top_k, _sum(after_top_k))
    if top_p is None or top_p >= 1:
        after_top_p = renormalised
    else:
        after_top_p = _frozen(_nucleus(renormalised, kept, float(top_p)))
    final = _normalised(after_top_p, _sum(after_top_p))
    return Stages(
        raw=raw, tempered=tempered, after_top_k=after_top_k, after_top_p=after_top_p, final=final
    )


def sample(final: npt.ArrayLike, rng: np.random.Generator) -> int:
    """Draw one token index from the distribution ``final`` (e.g. ``Stages.final``).

    Only tokens with a probability above 0 can be drawn; a one-hot always gives its token
    without consuming randomness (so greedy steps do not shift a seeded sequence).
    ``final`` need not sum exactly to 1 (it is scaled).
    """
    p = np.asarray(final).reshape(-1)
    if not np.issubdtype(p.dtype, np.floating):
        p = p.astype(np.float64)
    best = int(np.argmax(p))
    if not p[best] > 0:
        raise ValueError("cannot sample from a distribution with no positive probability")
    if float(p[best]) >= float(p.sum(dtype=np.float64)):  # a one-hot: nothing to draw
        return best
    cumulative = np.cumsum(p, dtype=np.float64)
    # Inverse CDF: the first index whose running total passes u. A token with probability 0
    # adds nothing to the running total, so it can never be the first to pass.
    u = rng.random() * float(cumulative[-1])
    i = int(np.searchsorted(cumulative, u, side="right"))
    if i >= p.shape[0]:  # u rounded up to the total: the last token that can be drawn
        i = int(np.flatnonzero(p > 0)[-1])
    return i


def entropy_bits(probs: npt.ArrayLike) -> float:
    """Shannon entropy of a distribution, in bits (e.g. of ``Stages.final``).

    0 for a one-hot (greedy), log2(n) for n equally likely tokens. Zero entries contribute
    nothing; ``probs`` is scaled to sum 1 first, like `sample` does.
    """
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    p = p[p > 0]
    if p.shape[0] == 0:
        raise ValueError("entropy of a distribution with no positive probability")
    p = p / p.sum()
    # + 0.0 turns the -0.0 of a one-hot into 0.0.
    return float(-(p * np.log2(p)).sum()) + 0.0


__all__ = ["Stages", "chi_square_p_value", "entropy_bits", "sample", "stages"]
