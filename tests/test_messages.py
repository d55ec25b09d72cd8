"""The Messages transport: conversion, replayed Messages streams and ``auto`` switching."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import requests
from fixtures_replay import (
    Close,
    ReplayServer,
    Script,
    error_script,
    head,
    json_script,
    sse,
    sse_script,
)

from jupyter_complete import Client, errors
from jupyter_complete._decoder import Delta
from jupyter_complete.messages import MessagesDecoder, to_messages_body
from jupyter_complete.wire import complete_stop_reason


def body(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"model": "m", "prompt": prompt, "max_tokens_to_sample": 50, **extra}


def test_system_text_turns_and_parameters_convert_to_a_messages_body() -> None:
    out = to_messages_body(
        body(
            "Be terse.\n\nHuman: hi\n\nAssistant: hello\n\nHuman: 2+2?\n\nAssistant:",
            stop_sequences=["END"],
            temperature=0.2,
            top_k=5,
            top_p=0.9,
            metadata={"user_id": "u"},
            stream=True,
        )
    )
    assert out == {
        "model": "m",
        "max_tokens": 50,
        "system": "Be terse.",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "2+2?"},
        ],
        "stop_sequences": ["END"],
        "temperature": 0.2,
        "top_k": 5,
        "top_p": 0.9,
        "metadata": {"user_id": "u"},
        "stream": True,
    }


def test_a_trailing_assistant_text_becomes_the_prefill_message() -> None:
    out = to_messages_body(body("\n\nHuman: count\n\nAssistant: 1, 2,"))
    assert out["messages"][-1] == {"role": "assistant", "content": "1, 2,"}
    assert "system" not in out


def test_a_prompt_without_turns_is_refused_before_sending() -> None:
    with pytest.raises(errors.InvalidParameterError, match="prompt="):
        to_messages_body(body("no turns here"))


@pytest.mark.parametrize(
    ("messages_reason", "complete_reason"),
    [
        ("end_turn", "stop_sequence"),
        ("stop_sequence", "stop_sequence"),
        ("max_tokens", "max_tokens"),
        ("refusal", "refusal"),
        (None, None),
    ],
)
def test_stop_reasons_map_to_text_completions_terms(
    messages_reason: str | None, complete_reason: str | None
) -> None:
    assert complete_stop_reason(messages_reason) == complete_reason


def test_messages_events_become_deltas_and_only_the_base_decoder_keeps_the_state() -> None:
    response = requests.Response()
    response.url, response.raw = "http://127.0.0.1:9/v1/messages", io.BytesIO()
    decoder = MessagesDecoder(response, started=0.0, params={"model": "m"}, on_close=None)
    before = dict(vars(decoder))

    def event(name: str, **fields: Any) -> Delta | None:
        return decoder.parse_event(name, json.dumps({"type": name, **fields}))

    message = {"id": "msg_1", "model": "claude-x", "usage": {"input_tokens": 3}}
    assert event("message_start", message=message) == Delta(
        id="msg_1", model="claude-x", usage={"input_tokens": 3}
    )
    text = event("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hi"})
    assert text is not None and text.completion is not None
    assert (text.completion.completion, text.completion.stop_reason) == ("Hi", None)
    assert event("ping") is None and event("content_block_stop", index=0) is None
    stop = {"stop_reason": "max_tokens", "stop_sequence": None}
    assert event("message_delta", delta=stop, usage={"output_tokens": 2}) == Delta(
        usage={"output_tokens": 2}
    )
    # Reading events wrote nothing of the stream's state (only this decoder's pending stop).
    assert {k: v for k, v in vars(decoder).items() if k != "pending_stop"} == before
    final = event("message_stop")
    assert final is not None and final.completion is not None
    assert final.completion.stop_reason == "max_tokens"
    decoder.close()


def messages_events(*texts: str, stop_reason: str = "end_turn") -> list[bytes]:
    events = [
        sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-x",
                    "content": [],
                    "stop_reason": None,
                    "usage": {"input_tokens": 12, "output_tokens": 1},
                },
            },
        ),
        sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        sse("ping", {"type": "ping"}),
    ]
    events += [
        sse(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}},
        )
        for t in texts
    ]
    events += [
        sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": 7},
            },
        ),
        sse("message_stop", {"type": "message_stop"}),
    ]
    return events


PROMPT = "\n\nHuman: hi\n\nAssistant:"


def test_a_messages_stream_reads_as_completion_deltas_with_usage(replay: ReplayServer) -> None:
    replay.enqueue(sse_script(messages_events("Hel", "lo", stop_reason="max_tokens")))
    client = Client(base_url=replay.url, api_key="k", api="messages")
    with client.completions.create(prompt=PROMPT, model="claude-x", stream=True) as stream:
        got = [(e.completion, e.stop_reason) for e in stream]
    final = stream.get_final_completion()
    assert got == [("Hel", None), ("lo", None), ("", "max_tokens")]
    assert final.completion == "Hello" and final.id == "msg_1" and final.model == "claude-x"
    assert final.usage == {"input_tokens": 12, "output_tokens": 7}
    assert final.params["api"] == "messages"
    sent = replay.received[0]
    assert (
        sent.path == "/v1/messages"
        and sent.json["messages"] == [{"role": "user", "content": "hi"}]
        and sent.json["stream"] is True
    )


def test_a_non_streaming_messages_answer_becomes_a_completion(replay: ReplayServer) -> None:
    replay.enqueue(
        json_script(
            200,
            {
                "id": "msg_2",
                "type": "message",
                "role": "assistant",
                "model": "claude-x",
                "content": [{"type": "text", "text": "Hi there"}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 3, "output_tokens": 2},
            },
        )
    )
    client = Client(base_url=replay.url, api_key="k", api="messages")
    c = client.completions.create(prompt=PROMPT, model="claude-x")
    assert (c.completion, c.stop_reason, c.usage) == (
        "Hi there",
        "stop_sequence",
        {"input_tokens": 3, "output_tokens": 2},
    )


def test_an_error_event_mid_messages_stream_raises_its_class_keeping_the_text(
    replay: ReplayServer,
) -> None:
    events = messages_events("kept")[:4] + [
        sse(
            "error",
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        )
    ]
    replay.enqueue(sse_script(events))
    client = Client(base_url=replay.url, api_key="k", api="messages")
    with pytest.raises(errors.OverloadedError) as info:
        client.completions.create(prompt=PROMPT, stream=True).get_final_completion()
    assert info.value.partial is not None and info.value.partial.completion == "kept"


def test_a_cut_messages_stream_is_a_connection_error_keeping_the_text(
    replay: ReplayServer,
) -> None:
    events = messages_events("part", "ial")[:5]
    replay.enqueue(Script([head(chunked=False), *events, Close()]))
    client = Client(base_url=replay.url, api_key="k", api="messages", max_retries=0)
    with pytest.raises(errors.APIConnectionError) as info:
        client.completions.create(prompt=PROMPT, stream=True).get_final_completion()
    assert info.value.partial is not None and info.value.partial.completion == "partial"


def test_auto_switches_a_refusing_model_to_messages_once_and_says_so(
    replay: ReplayServer, capsys: pytest.CaptureFixture[str]
) -> None:
    replay.enqueue(
        error_script(
            400, "invalid_request_error", "claude-new does not support the Text Completions API"
        ),
        sse_script(messages_events("via messages")),
        sse_script(messages_events("again")),
    )
    client = Client(base_url=replay.url, api_key="k", api="auto")
    first = client.completions.create(
        prompt=PROMPT, model="claude-new", stream=True
    ).get_final_completion()
    second = client.completions.create(
        prompt=PROMPT, model="claude-new", stream=True
    ).get_final_completion()
    assert (first.completion, second.completion) == ("via messages", "again")
    assert [r.path for r in replay.received] == ["/v1/complete", "/v1/messages", "/v1/messages"]
    assert capsys.readouterr().err.count("using the Messages API") == 1


@pytest.mark.parametrize(
    "message",
    [
        "temperature: range: 0..1",
        "prompt cannot be rendered with the model's chat template",
        "model: field required",
    ],
)
def test_auto_does_not_switch_on_an_unrelated_bad_request(
    replay: ReplayServer, message: str
) -> None:
    replay.enqueue(error_script(400, "invalid_request_error", message))
    client = Client(base_url=replay.url, api_key="k", api="auto")
    with pytest.raises(errors.BadRequestError):
        client.completions.create(prompt=PROMPT)
    assert len(replay.received) == 1 and not client.messages_models


def test_auto_switches_on_the_apis_own_refusal_wording(replay: ReplayServer) -> None:
    replay.enqueue(
        error_script(
            400,
            "invalid_request_error",
            '"claude-3-opus-20240229" is not supported '
            "on this API. Please use the Messages API instead.",
        ),
        json_script(
            200,
            {
                "id": "msg_3",
                "type": "message",
                "role": "assistant",
                "model": "claude-3-opus-20240229",
                "stop_reason": "end_turn",
                "content": [{"type": "text", "text": "ok"}],
            },
        ),
    )
    client = Client(base_url=replay.url, api_key="k", api="auto")
    assert (
        client.completions.create(prompt=PROMPT, model="claude-3-opus-20240229").completion == "ok"
    )
    assert client.messages_models == {"claude-3-opus-20240229"}


def test_an_unknown_transport_name_is_refused() -> None:
    with pytest.raises(errors.InvalidParameterError, match="api="):
        Client(api_key="k", api="chat")  # type: ignore[arg-type]
