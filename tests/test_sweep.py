"""`spread` and `Sweep`: the figures on fixed inputs, and sweeps over real loopback HTTP.

The figures (counting, clustering by normalised text, distinct-n, lengths) are checked on
fixed samples with exact expected values. The runner is checked against the replay server
(a real TCP server on 127.0.0.1 playing scripted SSE): what each request carries, that up to
``concurrency`` requests are in flight at once, that a stop keeps every sample drawn, and
that a refusal ends the sweep with a one-line error.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from typing import Any

import pytest
from fixtures_replay import (
    ReplayServer,
    Script,
    Wait,
    chunk,
    completion_event,
    error_script,
    final_event,
    head,
    sse_script,
)

from jupyter_complete import Client, errors
from jupyter_complete.sweep import (
    Sample,
    SpreadResult,
    Sweep,
    check_sweep,
    count_answers,
    distinct_n,
    is_builtin_model,
    min_median_max,
    normalize,
    result_html,
    setting_stats,
    spread,
)


# -- the figures on fixed inputs -----------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Blue.\n", "blue."),
        ("A  B\tC\r\nD", "a b c d"),
        ("Straße", "strasse"),  # Unicode case folding, not just lower()
        # One answer whether the accent is one code point or a combining mark (canonical
        # caseless match), shown composed.
        ("Caf\u00e9", "caf\u00e9"),
        ("CAFE\u0301", "caf\u00e9"),
        ("", ""),
        ("\n\n", ""),
    ],
)
def test_normalize_collapses_whitespace_strips_and_folds_case(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (["b", "a", "b"], [("b", 2), ("a", 1)]),
        (["x", "y", "z"], [("x", 1), ("y", 1), ("z", 1)]),  # ties keep first-seen order
        (["y", "x", "x", "y", "z"], [("y", 2), ("x", 2), ("z", 1)]),
        ([], []),
        (["Blue", "blue"], [("Blue", 1), ("blue", 1)]),  # exact text: case matters
    ],
)
def test_count_answers_gives_each_distinct_text_once_most_frequent_first(
    texts: list[str],
    expected: list[tuple[str, int]],
) -> None:
    assert count_answers(texts) == expected
    assert sum(c for _, c in count_answers(texts)) == len(texts)


@pytest.mark.parametrize(
    ("texts", "n", "expected"),
    [
        (["a b a", "a b"], 1, 2 / 5),  # words a b a | a b: 2 distinct of 5
        (["a b a", "a b"], 2, 2 / 3),  # bigrams (a b) (b a) | (a b): 2 distinct of 3
        (["The cat", "the  CAT"], 1, 2 / 4),  # normalised before splitting
        (["the cat", "the cat"], 2, 1 / 2),
        (["one", "two"], 2, None),  # no answer has two words: no bigram at all
        (["a b", "b c"], 2, 1.0),  # bigrams do not cross answers: (b b) is not one
        ([], 1, None),
        (["", "  "], 1, None),
        (["x y z"], 3, 1.0),
    ],
)
def test_distinct_n_is_distinct_ngrams_over_all_ngrams_of_the_pooled_answers(
    texts: list[str],
    n: int,
    expected: float | None,
) -> None:
    assert distinct_n(texts, n) == expected


def test_distinct_n_refuses_n_below_one() -> None:
    with pytest.raises(ValueError, match="n must be >= 1"):
        distinct_n(["a"], 0)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([3.0, 1.0, 2.0], (1.0, 2.0, 3.0)),
        ([1.0, 2.0, 3.0, 4.0], (1.0, 2.5, 4.0)),
        ([7.0], (7.0, 7.0, 7.0)),
        ([], None),
    ],
)
def test_min_median_max(values: list[float], expected: Any) -> None:
    assert min_median_max(values) == expected


def _sample(
    text: str,
    i: int,
    *,
    outcome: str = "done",
    stop: str | None = "stop_sequence",
    ttft: float | None = 0.1,
    tokens: int | None = None,
    setting: int = 0,
    value: float = 0.5,
) -> Sample:
    return Sample(
        setting=setting,
        value=value,
        index=i,
        text=text,
        outcome=outcome,
        stop_reason=stop if outcome == "done" else None,
        output_tokens=tokens,
        time_to_first_token=ttft,
        elapsed=1.0,
    )


FIXED = [
    _sample("Blue.", 0, ttft=0.3),
    _sample(" blue.\n", 1, ttft=0.1),
    _sample("Blue.", 2, ttft=0.2),
    _sample("Red sky", 3, stop="max_tokens", ttft=0.4),
    _sample("Gre", 4, outcome="stopped"),
    _sample("", 5, outcome="error"),
]


def test_setting_stats_counts_clusters_and_measures_the_finished_samples_only() -> None:
    st = setting_stats("temperature", 0.5, 6, FIXED)
    assert (st.requested, st.drawn, st.stopped, st.failed) == (6, 4, 1, 1)
    assert st.answers == [("Blue.", 2), (" blue.\n", 1), ("Red sky", 1)]
    assert st.normalized_answers == [("blue.", 3), ("red sky", 1)]
    assert sum(c for _, c in st.answers) == st.drawn
    assert sum(c for _, c in st.normalized_answers) == st.drawn
    assert st.distinct == 3 / 4
    assert st.distinct_normalized == 2 / 4
    # words: blue. | blue. | blue. | red sky -> 3 distinct of 5
    assert st.distinct_1 == 3 / 5
    # bigrams: only (red sky)
    assert st.distinct_2 == 1.0
    assert st.length_unit == "chars"
    assert st.length == (5.0, 6.0, 7.0)  # lengths 5, 7, 5, 7: median 6
    assert st.stop_reasons == {"stop_sequence": 3, "max_tokens": 1}
    assert st.time_to_first_token == (0.1, 0.25, 0.4)


def test_lengths_are_in_tokens_when_the_server_reports_them_for_every_answer() -> None:
    samples = [_sample("a b c", 0, tokens=3), _sample("a", 1, tokens=1)]
    st = setting_stats("top_p", 0.9, 2, samples)
    assert (st.length_unit, st.length) == ("tokens", (1.0, 2.0, 3.0))
    mixed = [_sample("a b c", 0, tokens=3), _sample("abcdef", 1, tokens=None)]
    st = setting_stats("top_p", 0.9, 2, mixed)
    assert (st.length_unit, st.length) == ("chars", (5.0, 5.5, 6.0))


def test_a_setting_with_nothing_drawn_has_no_figures() -> None:
    st = setting_stats("top_k", 5, 3, [_sample("x", 0, outcome="error")])
    assert (st.drawn, st.distinct, st.distinct_1, st.length, st.time_to_first_token) == (
        0,
        None,
        None,
        None,
        None,
    )
    assert st.answers == [] and st.stop_reasons == {}


def _result(samples: list[Sample], *, stopped_by: str | None = None) -> SpreadResult:
    return SpreadResult(
        prompt="p",
        wire_prompt="\n\nHuman: p\n\nAssistant:",
        parameter="temperature",
        values=[0.5, 1.0],
        n=3,
        params={"max_tokens_to_sample": 20},
        samples=samples,
        concurrency=1,
        elapsed=2.0,
        stopped_by=stopped_by,
    )


def test_the_result_groups_samples_by_setting_and_says_when_it_is_partial() -> None:
    samples = [
        _sample("a", 0),
        _sample("a", 1),
        _sample("b", 2),
        _sample("c", 0, setting=1, value=1.0),
    ]
    full = _result(samples)
    assert not full.partial
    stats = full.stats
    assert [st.value for st in stats] == [0.5, 1.0]
    assert [st.drawn for st in stats] == [3, 1]
    assert stats[0].answers == [("a", 2), ("b", 1)]
    stopped = _result(samples, stopped_by="interrupted")
    assert stopped.partial and stopped.drawn == 4
    assert "partial: interrupted" in stopped.summary_line()
    assert "Partial result" in stopped._repr_html_()
    assert "4 of 6 drawn" in stopped.summary_line()


def test_the_frame_has_one_row_per_sample_with_setting_index_text_and_timings() -> None:
    pd = pytest.importorskip("pandas")
    frame = _result(FIXED[:4]).frame()
    assert isinstance(frame, pd.DataFrame)
    assert len(frame) == 4
    for column in (
        "temperature",
        "setting",
        "sample",
        "text",
        "stop_reason",
        "time_to_first_token",
        "elapsed",
        "outcome",
    ):
        assert column in frame.columns
    assert list(frame["text"]) == [s.text for s in FIXED[:4]]


def test_the_frame_without_pandas_is_a_one_line_import_error(monkeypatch: Any) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"needs pandas \(pip install pandas\)"):
        _result(FIXED[:4]).frame()


def test_the_html_embeds_the_chart_as_a_png_data_uri_and_escapes_answers() -> None:
    pytest.importorskip("matplotlib")
    samples = [
        _sample("<script>alert(1)</script>", 0),
        _sample("a & b", 1),
        _sample("x", 0, setting=1, value=1.0),
    ]
    page = result_html(_result(samples))
    assert re.search(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]{200,}"', page)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "a &amp; b" in page
    assert "<table" in page and "distinct-1" in page


def test_without_matplotlib_the_table_still_shows_with_a_note(monkeypatch: Any) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    page = result_html(_result([_sample("a", 0), _sample("b", 0, setting=1, value=1.0)]))
    assert "<img" not in page
    assert "matplotlib is not installed" in page and "jupyter_complete[plot]" in page
    assert "<table" in page


# -- checking the call ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "sweeps one parameter: give a list of values for one of temperature"),
        ({"temperature": 0.5}, "sweeps one parameter"),
        ({"temperature": [0, 1], "top_p": [0.5, 0.9]}, "temperature and top_p are both lists"),
        ({"temperature": []}, r"temperature=\[\] has no values"),
        ({"top_k": [5, 5]}, "top_k lists 5 twice"),
    ],
)
def test_a_bad_sweep_is_a_one_line_value_error(kwargs: dict[str, Any], message: str) -> None:
    values = {"temperature": None, "top_p": None, "top_k": None, **kwargs}
    with pytest.raises(ValueError, match=message) as info:
        check_sweep(values, 5, None)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "n", "concurrency", "param"),
    [
        ({"temperature": [0.5, 1.5]}, 5, None, "temperature"),
        ({"top_k": [5, -1]}, 5, None, "top_k"),
        ({"top_k": [5, 2.5]}, 5, None, "top_k"),
        ({"top_p": [0.5], "temperature": 2}, 5, None, "temperature"),
        ({"top_p": [0.5]}, 0, None, "n"),
        ({"top_p": [0.5]}, 5, 0, "concurrency"),
        ({"top_p": [0.5]}, 5, 1000, "concurrency"),
        ({"top_p": "0.5"}, 5, None, "top_p"),
    ],
)
def test_a_value_outside_the_api_range_names_the_parameter(
    kwargs: dict[str, Any],
    n: int,
    concurrency: int | None,
    param: str,
) -> None:
    values = {"temperature": None, "top_p": None, "top_k": None, **kwargs}
    with pytest.raises(errors.InvalidParameterError) as info:
        check_sweep(values, n, concurrency)
    assert str(info.value).startswith(param)


def test_sweep_values_may_be_any_iterable_and_keep_their_order() -> None:
    assert check_sweep(
        {"temperature": None, "top_p": None, "top_k": range(0, 30, 10)}, 2, None
    ) == ("top_k", [0, 10, 20])
    assert check_sweep({"temperature": (1.0, 0.2), "top_p": 0.9, "top_k": None}, 2, 3) == (
        "temperature",
        [1.0, 0.2],
    )


def test_a_client_for_the_built_in_model_is_detected_and_others_are_not(
    monkeypatch: Any,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    assert is_builtin_model(Client())
    assert not is_builtin_model(Client(base_url="http://127.0.0.1:9", api_key="k"))
    assert not is_builtin_model(Client(api_key="k"))


def test_a_client_copy_has_the_same_endpoint_and_key_and_its_own_session(
    replay: ReplayServer,
) -> None:
    client = Client(base_url=replay.url, api_key="test-key", max_retries=0)
    twin = client.copy()
    assert twin is not client and twin.base_url == client.base_url
    assert twin.completions._send.__self__ is twin
    replay.enqueue(
        sse_script([completion_event("hi"), final_event()]),
        sse_script([completion_event("hi"), final_event()]),
    )
    for c in (client, twin):
        stream = c.completions.create(prompt="\n\nHuman: x\n\nAssistant:", stream=True)
        assert stream.get_final_completion().completion == "hi"
    assert client._session is not None and twin._session is not None
    assert client._session is not twin._session
    assert [r.headers["x-api-key"] for r in replay.received] == ["test-key", "test-key"]
    client.close()
    twin.close()


# -- sweeps over loopback HTTP -------------------------------------------------------------
def _answers(replay: ReplayServer, texts: list[str], stop: str = "stop_sequence") -> None:
    for text in texts:
        replay.enqueue(sse_script([completion_event(text), final_event(stop)]))


def test_a_sweep_sends_n_requests_per_value_with_the_fixed_settings(
    replay: ReplayServer,
) -> None:
    _answers(replay, ["A", "A", "B", "C", "C", "C"])
    client = Client(base_url=replay.url, api_key="k", max_retries=0)
    result = spread(
        "Name a colour.",
        n=3,
        temperature=[0.2, 1.0],
        top_p=0.9,
        max_tokens=20,
        stop_sequences=["\n"],
        client=client,
        concurrency=1,
        progress=False,
    )
    bodies = [r.json for r in replay.received]
    assert len(bodies) == 6
    # Rounds: sample 0 of every value, then sample 1 ...
    assert [b["temperature"] for b in bodies] == [0.2, 1.0, 0.2, 1.0, 0.2, 1.0]
    for b in bodies:
        assert b["top_p"] == 0.9 and b["max_tokens_to_sample"] == 20
        assert b["stop_sequences"] == ["\n"] and b["stream"] is True
        assert b["prompt"] == "\n\nHuman: Name a colour.\n\nAssistant:"
        assert "top_k" not in b
    assert not result.partial and result.drawn == 6
    low, high = result.stats
    # Answers came back in request order: A(0.2) A(1.0) B(0.2) C(1.0) C(0.2) C(1.0).
    assert low.answers == [("A", 1), ("B", 1), ("C", 1)]
    assert high.answers == [("C", 2), ("A", 1)]
    assert [s.index for s in result.samples] == [0, 1, 2, 0, 1, 2]
    assert all(s.model == "replay-1" and s.time_to_first_token is not None for s in result.samples)


def test_up_to_concurrency_requests_are_in_flight_at_once(replay: ReplayServer) -> None:
    gate = threading.Event()
    waits = [Wait(gate, timeout=20) for _ in range(8)]
    for i, w in enumerate(waits):
        replay.enqueue(
            Script(
                [
                    head(chunked=True),
                    w,
                    chunk(completion_event(f"t{i % 2}")),
                    chunk(final_event()),
                    b"0\r\n\r\n",
                ]
            )
        )

    def open_gate_when_four_arrive() -> None:
        deadline = time.monotonic() + 20
        while len(replay.received) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        gate.set()

    threading.Thread(target=open_gate_when_four_arrive, daemon=True).start()
    client = Client(base_url=replay.url, api_key="k", max_retries=0)
    result = spread("x", n=4, top_k=[1, 50], client=client, concurrency=4, progress=False)
    # Four requests arrived while the first was still held: they were in flight together.
    assert waits[0].satisfied is True
    assert result.concurrency == 4 and result.drawn == 8
    assert sorted(s.index for s in result.samples) == [0, 0, 1, 1, 2, 2, 3, 3]
    for st in result.stats:
        assert sum(c for _, c in st.answers) == 4


def test_the_default_concurrency_against_another_server_is_four(replay: ReplayServer) -> None:
    _answers(replay, ["a"] * 2)
    client = Client(base_url=replay.url, api_key="k", max_retries=0)
    result = spread("x", n=1, temperature=[0, 1], client=client, progress=False)
    assert result.concurrency == 4


def test_stop_mid_sweep_keeps_every_sample_drawn_and_the_partial_text(
    replay: ReplayServer,
) -> None:
    _answers(replay, ["one", "two"])
    never = threading.Event()
    held = Wait(never, timeout=30)
    replay.enqueue(
        Script(
            [
                head(chunked=True),
                chunk(completion_event("thr")),
                held,
                chunk(final_event()),
                b"0\r\n\r\n",
            ]
        )
    )
    _answers(replay, ["four", "five", "six"])
    client = Client(base_url=replay.url, api_key="k", max_retries=0)
    sweep = Sweep(
        client,
        "\n\nHuman: x\n\nAssistant:",
        "temperature",
        [0.5, 1.0],
        3,
        {"max_tokens_to_sample": 10},
        concurrency=1,
    )
    seen: list[str] = []

    def on_progress(p: Any) -> None:
        if p.latest is not None:
            seen.append(p.latest.text)

    def stop_once_the_third_streams() -> None:
        # Stop once "thr" has reached the client (its stream is open and holds the text).
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(
            stream.text == "thr" for stream in list(sweep._open)
        ):
            time.sleep(0.01)
        sweep.stop()

    threading.Thread(target=stop_once_the_third_streams, daemon=True).start()
    result = sweep.run(on_progress, interval=0.05)
    assert held.satisfied is None, "the sweep waited for the held stream instead of closing it"
    assert result.partial and result.stopped_by == "stopped"
    assert [(s.text, s.outcome) for s in result.samples] == [
        ("one", "done"),
        ("thr", "stopped"),
        ("two", "done"),
    ]
    assert result.drawn == 2 and len(replay.received) == 3
    assert seen == ["one", "two", "thr"]
    assert "Partial result" in result._repr_html_()


def test_stop_does_not_wait_for_requests_whose_answer_has_not_begun(
    replay: ReplayServer,
) -> None:
    # A server that takes the requests but sends no response headers (overloaded, or a
    # queue in front of a busy engine): closing a stream cannot end that wait, so stop must
    # not join those requests' threads (it hung until the read timeout, 10 minutes).
    _answers(replay, ["one"])
    release = threading.Event()
    holds = [Wait(release, timeout=30) for _ in range(3)]
    for w in holds:
        replay.enqueue(
            Script(
                [
                    w,
                    head(chunked=True),
                    chunk(completion_event("late")),
                    chunk(final_event()),
                    b"0\r\n\r\n",
                ]
            )
        )
    client = Client(base_url=replay.url, api_key="k", max_retries=0)
    sweep = Sweep(
        client,
        "\n\nHuman: x\n\nAssistant:",
        "temperature",
        [0.5, 1.0],
        2,
        {"max_tokens_to_sample": 10},
        concurrency=3,
    )

    def stop_once_all_wait() -> None:
        deadline = time.monotonic() + 20
        while len(replay.received) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        sweep.stop()

    threading.Thread(target=stop_once_all_wait, daemon=True).start()
    try:
        result = sweep.run(None, interval=0.05)
        assert all(w.satisfied is None for w in holds), "stop waited for the server"
    finally:
        release.set()
    assert result.stopped_by == "stopped" and result.partial
    assert sorted((s.text, s.outcome) for s in result.samples) == [
        ("", "stopped"),
        ("", "stopped"),
        ("", "stopped"),
        ("one", "done"),
    ]
    # Once the server answers, the abandoned threads end and add nothing to the result.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(
        t.name.startswith("jupyter_complete-spread-") for t in threading.enumerate()
    ):
        time.sleep(0.05)
    assert not [t for t in threading.enumerate() if t.name.startswith("jupyter_complete-spread-")]
    assert len(sweep.result().samples) == 4


def test_n_may_be_a_numpy_integer_and_the_result_stays_json_safe(
    replay: ReplayServer,
) -> None:
    np = pytest.importorskip("numpy")
    _answers(replay, ["a", "b"])
    client = Client(base_url=replay.url, api_key="k", max_retries=0)
    result = spread(
        "x", n=np.int64(1), temperature=[0, 1], client=client, concurrency=1, progress=False
    )
    assert result.drawn == 2 and type(result.n) is int
    json.dumps(result.to_dict())


def test_a_refused_request_ends_the_sweep_and_raises_when_nothing_was_drawn(
    replay: ReplayServer,
) -> None:
    replay.enqueue(error_script(401, "authentication_error", "invalid x-api-key"))
    _answers(replay, ["never"] * 3)
    client = Client(base_url=replay.url, api_key="bad", max_retries=0)
    with pytest.raises(errors.AuthenticationError, match="invalid x-api-key") as info:
        spread("x", n=2, temperature=[0, 1], client=client, concurrency=1, progress=False)
    assert "\n" not in str(info.value)
    assert len(replay.received) == 1


def test_a_refusal_after_some_answers_returns_them_with_the_error(
    replay: ReplayServer,
) -> None:
    _answers(replay, ["ok"])
    replay.enqueue(error_script(400, "invalid_request_error", "model: unknown"))
    client = Client(base_url=replay.url, api_key="k", max_retries=0)
    result = spread("x", n=2, temperature=[0, 1], client=client, concurrency=1, progress=False)
    assert result.partial and result.stopped_by == "error"
    assert result.error is not None and "model: unknown" in result.error
    assert [s.outcome for s in result.samples] == ["done", "error"]


def test_an_overloaded_answer_is_one_failed_sample_and_the_sweep_goes_on(
    replay: ReplayServer,
) -> None:
    _answers(replay, ["a"])
    replay.enqueue(error_script(529, "overloaded_error", "Overloaded"))
    _answers(replay, ["b", "c"])
    client = Client(base_url=replay.url, api_key="k", max_retries=0)
    result = spread("x", n=2, temperature=[0, 1], client=client, concurrency=1, progress=False)
    assert not result.partial and result.drawn == 3
    failed = [s for s in result.samples if s.outcome == "error"]
    assert len(failed) == 1 and "OverloadedError" in (failed[0].error or "")
    assert "1 failed" in result.summary_line()


def test_the_text_progress_line_counts_samples_and_ends_with_the_summary(
    replay: ReplayServer,
    capsys: Any,
) -> None:
    _answers(replay, ["a", "b", "c"])
    client = Client(base_url=replay.url, api_key="k", max_retries=0)
    spread("x", n=3, top_p=[0.5], client=client, concurrency=1, progress="text")
    err = capsys.readouterr().err
    assert "spread top_p:" in err and "of 3 samples" in err
    assert err.rstrip().splitlines()[-1].split("\r")[-1].startswith("spread: top_p 0.5")
