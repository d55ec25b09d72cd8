"""Translation between our endpoints and an engine's protocol: pure functions, no engine."""

from __future__ import annotations

import json

import pytest

from jupyter_complete.local.request import CompletionRequest, MessagesRequest
from jupyter_complete.local.upstream import (
    PrefillEcho,
    UpstreamConfig,
    anthropic_body,
    anthropic_event,
    chat_messages,
    final_for,
    matched_final,
    openai_body,
    openai_chunk,
    rejection_for,
)


def _complete(prompt: str, **fields: object) -> CompletionRequest:
    body = {"model": "m", "prompt": prompt, "max_tokens_to_sample": 64, **fields}
    return CompletionRequest.from_json(json.dumps(body).encode())


def _messages(messages: list[dict[str, str]], **fields: object) -> MessagesRequest:
    body = {"model": "m", "messages": messages, "max_tokens": 64, **fields}
    return MessagesRequest.from_json(json.dumps(body).encode())


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("\n\nHuman: Hi\n\nAssistant:", [{"role": "user", "content": "Hi"}]),
        (
            "Be brief.\n\nHuman: Hi\n\nAssistant:",
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        ),
        (
            "\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: And?\n\nAssistant:",
            [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "And?"},
            ],
        ),
        (
            "\n\nHuman: Count\n\nAssistant: 1, 2,",
            [{"role": "user", "content": "Count"}, {"role": "assistant", "content": "1, 2,"}],
        ),
    ],
)
def test_human_and_assistant_turns_become_chat_messages(prompt, expected):
    assert chat_messages(_complete(prompt).conversation) == expected


def test_unset_sampling_gets_the_api_defaults_and_llama_cpp_extras_are_off():
    body = openai_body(_complete("\n\nHuman: Hi\n\nAssistant:"), "engine-model")
    assert body["model"] == "engine-model"
    assert (body["temperature"], body["top_k"], body["top_p"]) == (1.0, 0, 1.0)
    assert body["min_p"] == 0.0 and body["repeat_penalty"] == 1.0
    assert body["samplers"] == ["temperature", "top_k", "top_p"]
    assert body["max_tokens"] == 64
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert "continue_final_message" not in body


def test_given_sampling_values_pass_through_unchanged():
    body = openai_body(
        _complete("\n\nHuman: Hi\n\nAssistant:", temperature=0, top_k=5, top_p=0.5), "m"
    )
    assert (body["temperature"], body["top_k"], body["top_p"]) == (0.0, 5, 0.5)


def test_stop_sequences_are_not_left_to_an_openai_engine():
    # OpenAI's protocol does not say which stop ended the text: we match them ourselves.
    body = openai_body(_complete("\n\nHuman: Hi\n\nAssistant:", stop_sequences=["END"]), "m")
    assert "stop" not in body


def test_a_prefill_is_continued_not_closed_as_a_turn():
    body = openai_body(_complete("\n\nHuman: Count\n\nAssistant: 1, 2,"), "m")
    assert body["messages"][-1] == {"role": "assistant", "content": "1, 2,"}
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False


def test_messages_requests_translate_like_completion_requests():
    request = _messages(
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yes"}],
        system="Be brief.",
        temperature=0.3,
    )
    body = openai_body(request, "m")
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Yes"},
    ]
    assert body["temperature"] == 0.3 and body["continue_final_message"] is True


def test_an_anthropic_engine_gets_the_messages_shape_with_the_built_in_stop():
    request = _complete(
        "Sys\n\nHuman: Hi\n\nAssistant: Sure",
        stop_sequences=["END"],
        top_k=3,
        metadata={"user_id": "u1"},
    )
    body = anthropic_body(request, "m")
    assert body["system"] == "Sys"
    assert body["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Sure"},
    ]
    assert body["stop_sequences"] == ["END", "\n\nHuman:"]
    assert body["top_k"] == 3 and "temperature" not in body and "top_p" not in body
    assert body["metadata"] == {"user_id": "u1"} and body["max_tokens"] == 64


@pytest.mark.parametrize(
    ("chunk", "text", "finish", "usage"),
    [
        (
            {"choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]},
            "Hel",
            None,
            (None, None),
        ),
        (
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}]},
            "",
            None,
            (None, None),
        ),
        (
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]},
            "",
            "length",
            (None, None),
        ),
        (
            {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 5}},
            "",
            None,
            (12, 5),
        ),
        ({"choices": [{"index": 1, "delta": {"content": "other choice"}}]}, "", None, (None, None)),
    ],
)
def test_openai_chunks_are_read_for_text_finish_and_usage(chunk, text, finish, usage):
    piece = openai_chunk(chunk)
    assert (piece.text, piece.finish, (piece.input_tokens, piece.output_tokens)) == (
        text,
        finish,
        usage,
    )


def test_an_engine_that_names_its_stop_string_is_believed():
    piece = openai_chunk(
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "stop_reason": "END"}]}
    )
    assert (piece.finish, piece.stop_sequence) == ("stop", "END")


def test_an_error_in_an_openai_stream_is_read_with_or_without_a_type():
    assert openai_chunk({"error": {"message": "boom", "type": "server_error"}}).error == (
        "api_error",
        "boom",
    )
    assert openai_chunk({"error": "plain"}).error == ("api_error", "plain")


@pytest.mark.parametrize(
    ("event", "data", "fields"),
    [
        (
            "message_start",
            {"type": "message_start", "message": {"usage": {"input_tokens": 9}}},
            {"input_tokens": 9},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hi"}},
            {"text": "Hi"},
        ),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "stop_sequence", "stop_sequence": "END"},
                "usage": {"output_tokens": 4},
            },
            {"finish": "stop_sequence", "stop_sequence": "END", "output_tokens": 4},
        ),
        (
            "error",
            {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}},
            {"error": ("overloaded_error", "busy")},
        ),
        # llama-server's error bodies lack the top-level "type": the event name says it.
        (
            "error",
            {"error": {"type": "server_error", "message": "x"}},
            {"error": ("api_error", "x")},
        ),
        ("ping", {"type": "ping"}, {}),
    ],
)
def test_anthropic_events_are_read(event, data, fields):
    piece = anthropic_event(event, data)
    for name, value in fields.items():
        assert getattr(piece, name) == value


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            b'{"error":{"code":400,"message":"the request exceeds the available context size",'
            b'"type":"exceed_context_size_error"}}',
            (400, "invalid_request_error", "the request exceeds the available context size"),
        ),
        (
            404,
            b'{"error":{"message":"model not found"}}',
            (404, "not_found_error", "model not found"),
        ),
        (429, b'{"error":{"message":"slow down"}}', (429, "rate_limit_error", "slow down")),
        (
            503,
            b'{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}',
            (529, "overloaded_error", "Loading model"),
        ),
        (500, b"Internal Server Error", (500, "api_error", "Internal Server Error")),
        (502, b"", (500, "api_error", "the upstream engine answered HTTP 502")),
        (
            422,
            b'{"detail":[{"loc":["body","top_p"],"msg":"bad"}]}',
            (400, "invalid_request_error", '[{"loc": ["body", "top_p"], "msg": "bad"}]'),
        ),
    ],
)
def test_engine_error_statuses_map_to_the_api_envelopes(status, body, expected):
    rejection = rejection_for(status, body, {})
    assert (rejection.status, rejection.error_type, rejection.message) == expected


def test_overload_and_rate_limits_say_retry_and_pass_retry_after_on():
    rejection = rejection_for(429, b"{}", {"retry-after": "3"})
    assert rejection.headers == {"x-should-retry": "true", "retry-after": "3"}
    assert rejection_for(503, b"{}", {}).headers["x-should-retry"] == "true"


def test_an_engine_refusing_our_key_is_our_fault_and_does_not_echo_its_message():
    rejection = rejection_for(401, b'{"error":{"message":"invalid key sk-secret"}}', {})
    assert (rejection.status, rejection.error_type) == (500, "api_error")
    assert "sk-secret" not in rejection.message


@pytest.mark.parametrize(
    ("prefill", "pieces", "expected"),
    [
        ("The answer is", ["The ans", "wer is", " 4."], " 4."),
        ("The answer is", ["The answer is 4."], " 4."),
        ("The answer is", [" 4", "."], " 4."),  # not echoed
        ("The answer is", ["The", " end"], "The end"),  # starts alike, then differs
        ("", ["Hello"], "Hello"),
        ("abc", ["ab"], "ab"),  # stream ends mid-candidate
    ],
)
def test_an_echoed_prefill_is_removed_and_anything_else_is_kept(prefill, pieces, expected):
    echo = PrefillEcho(prefill)
    assert "".join(echo.feed(p) for p in pieces) + echo.flush() == expected


@pytest.mark.parametrize(
    ("finish", "named", "stops", "expected"),
    [
        ("length", None, (), ("max_tokens", None)),
        ("stop", None, (), ("end_turn", None)),
        ("end_turn", None, ("END",), ("end_turn", None)),
        ("stop_sequence", "END", ("END",), ("stop_sequence", "END")),
        ("stop_sequence", "\n\nHuman:", ("END",), ("end_turn", None)),
        ("max_tokens", None, (), ("max_tokens", None)),
    ],
)
def test_an_engine_that_ended_by_itself_gets_the_api_stop_reason(finish, named, stops, expected):
    request = _complete("\n\nHuman: Hi\n\nAssistant:", stop_sequences=list(stops))
    final = final_for(finish, named, request, 10, 3)
    assert (final.stop_reason, final.stop_sequence) == expected
    assert (final.input_tokens, final.output_tokens) == (10, 3)


def test_a_stop_matched_here_is_a_stop_sequence_unless_it_is_the_unlisted_built_in():
    request = _complete("\n\nHuman: Hi\n\nAssistant:", stop_sequences=["END"])
    assert matched_final("END", request, 1, 1).stop_reason == "stop_sequence"
    assert matched_final("\n\nHuman:", request, 1, 1).stop_reason == "end_turn"
    listed = _complete("\n\nHuman: Hi\n\nAssistant:", stop_sequences=["\n\nHuman:"])
    assert matched_final("\n\nHuman:", listed, 1, 1).stop_sequence == "\n\nHuman:"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "localhost:8080"}, "must start with http"),
        ({"url": "http://h", "api": "grpc"}, "must be one of openai, anthropic"),
        ({"url": "http://h", "max_outstanding": 0}, "at least 1"),
        (
            {"url": "http://h", "key_env": "JC_TEST_SURELY_UNSET_VARIABLE"},
            "JC_TEST_SURELY_UNSET_VARIABLE",
        ),
    ],
)
def test_a_bad_upstream_setting_is_named_in_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UpstreamConfig(**kwargs)  # type: ignore[arg-type]


def test_the_base_url_may_end_in_v1():
    assert UpstreamConfig(url="http://h:1/v1/").base == "http://h:1"


def test_the_upstream_module_and_the_package_load_without_the_http_client():
    import subprocess
    import sys

    code = (
        "import sys, jupyter_complete, jupyter_complete.local.upstream, "
        "jupyter_complete.cli; print(sorted(m for m in ('httpx', 'httpx_sse', 'uvicorn') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"
