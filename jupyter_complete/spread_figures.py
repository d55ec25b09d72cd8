"""The figures of a sweep (`jupyter_complete.sweep`): pure functions on its samples, no I/O.

How the figures are defined (on the samples of one setting that finished, ``outcome ==
"done"``; stopped and failed samples are kept in `SpreadResult.samples` and the frame but
not counted):

* **answers**: the distinct texts with their counts, most frequent first (ties in the order
  first drawn). **normalised answers**: the same after `normalize` (whitespace runs collapsed
  to one space, ends stripped, Unicode canonical caseless match), so "Blue." and " blue."
  count as one.
* **distinct**: distinct answers / answers drawn (1.0: every answer differs; 1/n: all the
  same); **distinct_normalized** the same on normalised answers.
* **distinct-1, distinct-2**: distinct-n as defined by Li et al. (2016), "A Diversity-Promoting
  Objective Function for Neural Conversation Models" (NAACL): the number of distinct word
  n-grams in the pooled answers divided by the total number of word n-grams in them. Words
  are the normalised answer split on whitespace; n-grams do not cross from one answer into
  the next. None when the answers hold no n-gram at all (every answer shorter than n words).
* **length**: min, median and max answer length, in tokens when the server reports them for
  every answer (the Messages API's ``usage.output_tokens``), else in characters.
* **stop reasons**: how many answers ended with each ``stop_reason``.
* **time to first token**: min, median and max seconds from sending the request to the first
  text.
"""

from __future__ import annotations

import dataclasses
import statistics
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any


def normalize(text: str) -> str:
    """``text`` with whitespace runs collapsed to one space, ends stripped, case folded.

    Case folding is Unicode's canonical caseless match (The Unicode Standard, 3.13, D145:
    NFD, fold, NFD), so "é" typed as one code point and as "e" + a combining accent count
    as one; the result is given in NFC.
    """
    folded = unicodedata.normalize("NFD", unicodedata.normalize("NFD", text).casefold())
    return unicodedata.normalize("NFC", " ".join(folded.split()))


def count_answers(texts: Iterable[str]) -> list[tuple[str, int]]:
    """``(text, count)`` for each distinct text, most frequent first, ties in first-seen order.

    >>> count_answers(["b", "a", "b"])
    [('b', 2), ('a', 1)]
    """
    counts: dict[str, int] = {}
    for text in texts:
        counts[text] = counts.get(text, 0) + 1
    # sorted() is stable and dicts keep insertion order, so ties keep first-seen order.
    return sorted(counts.items(), key=lambda item: -item[1])


def distinct_n(texts: Sequence[str], n: int) -> float | None:
    """distinct-n of ``texts`` (Li et al. 2016): distinct word n-grams / all word n-grams.

    Each text is normalised (`normalize`) and split on whitespace; n-grams are taken within
    each text. None when the texts hold no n-gram (each is shorter than ``n`` words).

    >>> distinct_n(["a b a", "a b"], 1)   # words a b a a b: 2 distinct of 5
    0.4
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        words = normalize(text).split()
        for i in range(len(words) - n + 1):
            seen.add(tuple(words[i : i + n]))
            total += 1
    return None if total == 0 else len(seen) / total


def min_median_max(values: Sequence[float]) -> tuple[float, float, float] | None:
    """``(min, median, max)`` of ``values``; None when there are none.

    The median of an even count is the mean of the middle two, as `statistics.median`.
    """
    if not values:
        return None
    return (min(values), statistics.median(values), max(values))


@dataclasses.dataclass
class Sample:
    """One drawn (or attempted) answer of a sweep."""

    #: Position of the swept value in `SpreadResult.values`.
    setting: int
    #: The swept parameter's value for this sample.
    value: float
    #: 0-based index of the sample within its setting.
    index: int
    #: The text received (all of it, also when stopped or failed part-way).
    text: str
    #: ``"done"`` (the server ended it), ``"stopped"`` (the sweep was stopped while it
    #: streamed) or ``"error"``.
    outcome: str
    stop_reason: str | None = None
    #: ``ErrorClass: message`` when ``outcome == "error"``.
    error: str | None = None
    #: Output tokens when the server reports them (the Messages API does), else None.
    output_tokens: int | None = None
    #: Seconds from sending the request to the first text (None if no text came).
    time_to_first_token: float | None = None
    #: Seconds from sending the request to the end of the answer.
    elapsed: float | None = None
    #: Seconds from the start of the sweep to sending this request.
    started: float = 0.0
    #: The model the server reported.
    model: str | None = None
    request_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The sample as a JSON-safe dict."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class SettingStats:
    """The figures for one value of the swept parameter (see the module docstring)."""

    #: The swept parameter's name and this value of it.
    parameter: str
    value: float
    #: Samples asked for, finished (``done``), stopped part-way, failed.
    requested: int
    drawn: int
    stopped: int
    failed: int
    #: ``(text, count)``, most frequent first.
    answers: list[tuple[str, int]]
    #: ``(normalised text, count)``, most frequent first.
    normalized_answers: list[tuple[str, int]]
    #: distinct answers / drawn (None when nothing was drawn).
    distinct: float | None
    distinct_normalized: float | None
    distinct_1: float | None
    distinct_2: float | None
    #: ``"tokens"`` or ``"chars"``.
    length_unit: str
    #: ``(min, median, max)`` answer length in `length_unit` (None when nothing was drawn).
    length: tuple[float, float, float] | None
    #: ``stop_reason`` -> count.
    stop_reasons: dict[str, int]
    #: ``(min, median, max)`` seconds to the first text.
    time_to_first_token: tuple[float, float, float] | None


def setting_stats(
    parameter: str,
    value: float,
    requested: int,
    samples: Sequence[Sample],
    length_unit: str | None = None,
) -> SettingStats:
    """The figures of one setting from its samples (any order; only ``done`` ones count).

    ``length_unit`` None picks tokens when every counted sample has ``output_tokens``.
    """
    done = [s for s in samples if s.outcome == "done"]
    texts = [s.text for s in done]
    if length_unit is None:
        length_unit = common_length_unit(done)
    lengths: list[float] = [
        float(
            s.output_tokens
            if length_unit == "tokens" and s.output_tokens is not None
            else len(s.text)
        )
        for s in done
    ]
    answers = count_answers(texts)
    normalized = count_answers(normalize(t) for t in texts)
    reasons = count_answers(s.stop_reason or "none" for s in done)
    ttfts = [s.time_to_first_token for s in done if s.time_to_first_token is not None]
    return SettingStats(
        parameter=parameter,
        value=value,
        requested=requested,
        drawn=len(done),
        stopped=sum(s.outcome == "stopped" for s in samples),
        failed=sum(s.outcome == "error" for s in samples),
        answers=answers,
        normalized_answers=normalized,
        distinct=len(answers) / len(done) if done else None,
        distinct_normalized=len(normalized) / len(done) if done else None,
        distinct_1=distinct_n(texts, 1),
        distinct_2=distinct_n(texts, 2),
        length_unit=length_unit,
        length=min_median_max(lengths),
        stop_reasons=dict(reasons),
        time_to_first_token=min_median_max(ttfts),
    )


def common_length_unit(samples: Sequence[Sample]) -> str:
    """``"tokens"`` if ``output_tokens`` came for every finished sample, else ``"chars"``.

    One unit for a whole sweep, so its settings compare.
    """
    done = [s for s in samples if s.outcome == "done"]
    return "tokens" if done and all(s.output_tokens is not None for s in done) else "chars"


__all__ = [
    "Sample",
    "SettingStats",
    "common_length_unit",
    "count_answers",
    "distinct_n",
    "min_median_max",
    "normalize",
    "setting_stats",
]
