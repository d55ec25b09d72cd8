"""``POST /v1/messages`` on the built-in local server, and the clients that speak it.

Three kinds of check: the request rules alone (no model needed); our own client with
``api="messages"`` and ``api="auto"`` against the real server and the real 135M model; and
the current official SDK (``anthropic>=1``, which has only Messages) as an independent peer.
That SDK cannot share an environment with ``anthropic<1`` (test_sdk_peer.py), so it lives in
``.peer/anthropic-current`` (scripts/setup.sh installs it there) and runs in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from fixtures_local import (
    COUNT_MESSAGES,
    COUNT_PREFILL,
    COUNT_PROMPT,
    COUNT_QUESTION,
    DONE_MESSAGES,
    DONE_PREFILL,
    DONE_PROMPT,
    DONE_QUESTION,
    GREEDY_MARGIN,
    LOCAL_API_KEY,
    SHORT_PROMPT,
    assert_clear_greedy_path,
    assert_ends_its_turn,
    assert_ran_to_limit,
    assert_stream_fails_keeping_text,
    cold,
    wait_for,
)

from jupyter_complete import Client, errors
from jupyter_complete._constants import LOCAL_MODEL_NAME
from jupyter_complete.local.request import MessagesRequest, RequestRejected
from jupyter_complete.prompt import Conversation

HEADERS = {"x-api-key": LOCAL_API_KEY, "anthropic-version": "2023-06-01"}
#: A model name the refusing server turns away from /v1/complete.
NEW_MODEL = "claude-new"
REFUSAL = f"{NEW_MODEL} does not support the Text Completions API; use the Messages API"
PEER_DIR = Path(__file__).resolve().parents[1] / ".peer" / "anthropic-current"

QUESTION = "What is the capital of France?"


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def mbody(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-x",
        "max_tokens": 8,
        "temperature": 0,
        "messages": user(QUESTION),
    }
    body.update(overrides)
    return body


def post(
    server: Any, body: Any, headers: dict[str, str] | None = None, path: str = "/v1/messages"
) -> requests.Response:
    return requests.post(
        server.url + path, json=body, headers=HEADERS if headers is None else headers, timeout=60
    )


def envelope(response: requests.Response) -> tuple[int, str, str]:
    data = response.json()
    assert data["type"] == "error"
    assert data["request_id"] == response.headers["request-id"]
    return response.status_code, data["error"]["type"], data["error"]["message"]


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(name, data) of each event in an SSE body."""
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        head, data = block.split("\n", 1)
        assert head.startswith("event: ") and data.startswith("data: "), block
        events.append((head[7:], json.loads(data[6:])))
    return events


def rejection(body: dict[str, Any]) -> str:
    with pytest.raises(RequestRejected) as info:
        MessagesRequest.from_json(json.dumps(body).encode())
    assert (info.value.status, info.value.error_type) == (400, "invalid_request_error")
    return info.value.message


# -- the request rules (no model) ------------------------------------------------------------


def test_system_messages_and_a_final_assistant_message_make_the_conversation() -> None:
    r = MessagesRequest.from_json(
        json.dumps(
            {
                "model": "m",
                "max_tokens": 5,
                "system": "Be brief.",
                "stream": True,
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]},
                    {"role": "user", "content": "Count."},
                    {"role": "assistant", "content": "1, 2,"},
                ],
                "stop_sequences": ["5"],
                "temperature": 0.5,
                "top_k": 3,
                "top_p": 0.9,
                "metadata": {"user_id": "u"},
            }
        ).encode()
    )
    assert r.conversation == Conversation(
        system="Be brief.",
        turns=[("user", "Hi"), ("assistant", "Hello"), ("user", "Count.")],
        prefill="1, 2,",
    )
    assert (r.max_tokens, r.stop_sequences, r.temperature, r.top_k, r.top_p, r.stream) == (
        5,
        ("5",),
        0.5,
        3,
        0.9,
        True,
    )


def test_text_blocks_of_one_message_or_of_the_system_join_with_blank_lines() -> None:
    blocks = [{"type": "text", "text": "One."}, {"type": "text", "text": "Two."}]
    r = MessagesRequest.from_dict(
        {
            "model": "m",
            "max_tokens": 1,
            "system": blocks,
            "messages": [{"role": "user", "content": blocks}],
        }
    )
    assert r.conversation == Conversation(
        system="One.\n\nTwo.", turns=[("user", "One.\n\nTwo.")], prefill=""
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_tokens": None}, "max_tokens: Field required"),
        ({"messages": None}, "messages: Field required"),
        ({"model": None}, "model: Field required"),
        ({"max_tokens": 0}, "max_tokens: Input should be greater than or equal to 1"),
        ({"max_tokens": "8"}, "max_tokens: Input should be a valid integer"),
        ({"messages": []}, "messages: at least one message is required"),
        ({"messages": "hi"}, "messages: Input should be a valid list"),
        (
            {"messages": [{"role": "system", "content": "x"}]},
            "messages.0.role: Input should be 'user' or 'assistant'",
        ),
        ({"messages": [{"content": "x"}]}, "messages.0.role: Field required"),
        (
            {"messages": [{"role": "user", "content": "x", "name": "a"}]},
            "messages.0.name: Extra inputs are not permitted",
        ),
        (
            {"messages": [{"role": "user", "content": ""}]},
            "messages: all messages must have non-empty content except for the optional final "
            "assistant message",
        ),
        (
            {"messages": [*user("x"), {"role": "assistant", "content": "Sure. "}]},
            "final assistant content cannot end with trailing whitespace",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]},
            "messages.0.content.0.type: the local model reads only 'text' content blocks, not "
            "'image'",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
            "messages.0.content: text content blocks must be non-empty",
        ),
        (
            {"messages": [{"role": "user", "content": 7}]},
            "messages.0.content: Input should be a valid string or a list of content blocks",
        ),
        ({"system": 7}, "system: Input should be a valid string or a list of content blocks"),
        ({"temperature": 1.5}, "temperature: range: 0..1"),
        ({"top_p": -0.1}, "top_p: range: 0..1"),
        ({"top_k": -1}, "top_k: Input should be greater than or equal to 0"),
        ({"stream": "yes"}, "stream: Input should be a valid boolean"),
        ({"metadata": {"session": "x"}}, "metadata.session: Extra inputs are not permitted"),
        ({"prompt": "\n\nHuman: hi\n\nAssistant:"}, "prompt: Extra inputs are not permitted"),
        ({"tools": []}, "tools: Extra inputs are not permitted"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_a_wrong_messages_body_is_refused_with_the_apis_wording(
    change: dict[str, Any],
    message: str,
) -> None:
    body = {**mbody(), **change}
    body = {k: v for k, v in body.items() if v is not None}
    assert rejection(body) == message


def test_a_conversation_may_end_with_an_empty_assistant_message() -> None:
    r = MessagesRequest.from_dict(
        mbody(messages=[*user("x"), {"role": "assistant", "content": ""}])
    )
    assert r.conversation.prefill == "" and r.conversation.turns == [("user", "x")]


# -- answers from the real model ---------------------------------------------------------------


@pytest.fixture()
def messages_client(local_server: Any) -> Iterator[Client]:
    with Client(
        base_url=local_server.url, api_key=LOCAL_API_KEY, max_retries=0, api="messages"
    ) as client:
        yield client


@pytest.fixture(scope="module")
def refusing_server(local_model: Any) -> Iterator[Any]:
    """A server whose /v1/complete turns NEW_MODEL away, as the real API does newer models."""
    from jupyter_complete.local import serve

    server = serve("127.0.0.1", 0, local_model, LOCAL_API_KEY, refuse_complete_models=[NEW_MODEL])
    yield server
    server.close()


@pytest.mark.local
def test_a_messages_answer_has_text_usage_and_the_local_model_name(messages_client):
    c = messages_client.completions.create(
        prompt=SHORT_PROMPT, max_tokens_to_sample=8, temperature=0
    )
    assert c.completion
    assert c.id.startswith("msg_") and c.request_id.startswith("req_")
    assert c.model == LOCAL_MODEL_NAME
    assert c.usage is not None and c.usage["input_tokens"] > 0
    assert 0 < c.usage["output_tokens"] <= 8
    assert c.params["api"] == "messages"


@pytest.mark.local
def test_a_streamed_messages_answer_arrives_in_pieces_with_usage(messages_client):
    with messages_client.completions.create(
        prompt=COUNT_PROMPT, max_tokens_to_sample=12, temperature=0, stream=True
    ) as stream:
        events = list(stream)
    final = stream.get_final_completion()
    assert len(events) >= 4
    assert all(e.stop_reason is None for e in events[:-1])
    assert events[-1].stop_reason == "max_tokens" and events[-1].completion == ""
    assert final.completion == "".join(e.completion for e in events)
    assert final.id.startswith("msg_") and final.model == LOCAL_MODEL_NAME
    assert final.usage is not None and final.usage["input_tokens"] > 0
    assert final.usage["output_tokens"] == 12


@pytest.mark.local
def test_the_stream_is_the_messages_event_sequence_in_order(local_server, local_model):
    cold(local_model)  # the same evaluation as the whole answer below (see `cold`)
    r = requests.post(
        local_server.url + "/v1/messages",
        json=mbody(stream=True, max_tokens=6, messages=COUNT_MESSAGES),
        headers=HEADERS,
        timeout=60,
    )
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    names = [name for name, _ in events]
    deltas = names.count("content_block_delta")
    assert deltas >= 1
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(data["type"] == name for name, data in events)
    start = events[0][1]["message"]
    assert start["id"].startswith("msg_") and start["role"] == "assistant"
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["model"] == LOCAL_MODEL_NAME
    assert start["usage"]["input_tokens"] > 0 and start["usage"]["output_tokens"] == 0
    assert events[1][1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    assert all(
        d["index"] == 0 and d["delta"]["type"] == "text_delta"
        for n, d in events
        if n == "content_block_delta"
    )
    assert events[-2][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
        "usage": {"output_tokens": 6},
    }
    cold(local_model)
    whole = post(local_server, mbody(max_tokens=6, messages=COUNT_MESSAGES)).json()
    streamed = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert whole["content"] == [{"type": "text", "text": streamed}]


@pytest.mark.local
def test_the_whole_answer_is_a_message_object(local_server):
    data = post(local_server, mbody(messages=COUNT_MESSAGES)).json()
    assert set(data) == {
        "id",
        "type",
        "role",
        "model",
        "content",
        "stop_reason",
        "stop_sequence",
        "usage",
    }
    assert (data["type"], data["role"], data["model"]) == ("message", "assistant", LOCAL_MODEL_NAME)
    assert data["id"].startswith("msg_") and len(data["id"]) == len("msg_") + 24
    assert_ran_to_limit(
        data["stop_reason"], data["usage"]["output_tokens"], 8, data["content"][0]["text"]
    )
    assert data["stop_sequence"] is None


@pytest.mark.local
def test_the_model_ending_its_turn_is_end_turn_which_the_client_maps(
    local_server,
    messages_client,
    local_model,
):
    # The prefill is a whole answer: the model ends its turn next, on every build.
    assert_ends_its_turn(
        local_model,
        local_model.apply_chat_template(
            Conversation(system="", turns=[("user", DONE_QUESTION)], prefill=DONE_PREFILL)
        ),
    )
    data = post(local_server, mbody(max_tokens=100, messages=DONE_MESSAGES)).json()
    assert (data["stop_reason"], data["stop_sequence"]) == ("end_turn", None)
    assert data["usage"]["output_tokens"] < 100
    c = messages_client.completions.create(
        prompt=DONE_PROMPT, max_tokens_to_sample=100, temperature=0
    )
    assert (c.stop_reason, c.stop) == ("stop_sequence", None)


@pytest.mark.local
def test_a_stop_sequence_is_stop_sequence_naming_it(local_server, messages_client, local_model):
    cold(local_model)  # each greedy answer below is evaluated the same way (see `cold`)
    free = post(local_server, mbody(max_tokens=20, messages=COUNT_MESSAGES)).json()
    text = free["content"][0]["text"]
    words = text.split()
    assert len(words) >= 4, text
    stop = " " + words[3]
    expected = text[: text.index(stop)]
    cold(local_model)
    data = post(
        local_server, mbody(max_tokens=20, messages=COUNT_MESSAGES, stop_sequences=[stop])
    ).json()
    assert (data["content"][0]["text"], data["stop_reason"], data["stop_sequence"]) == (
        expected,
        "stop_sequence",
        stop,
    )
    for stream in (False, True):
        cold(local_model)
        c = messages_client.completions.create(
            prompt=COUNT_PROMPT,
            max_tokens_to_sample=20,
            temperature=0,
            stop_sequences=[stop],
            stream=stream,
        )
        if stream:
            c = c.get_final_completion()
        assert (c.completion, c.stop_reason, c.stop) == (expected, "stop_sequence", stop)


@pytest.mark.local
def test_the_max_tokens_limit_is_max_tokens(messages_client, local_model):
    c = messages_client.completions.create(
        prompt=COUNT_PROMPT, max_tokens_to_sample=5, temperature=0
    )
    assert c.usage is not None
    assert_ran_to_limit(c.stop_reason, c.usage["output_tokens"], 5, c.completion)
    assert c.stop is None
    assert 1 <= len(local_model.tokenize(c.completion)) <= 5


@pytest.mark.local
def test_a_final_assistant_message_is_continued_not_repeated(local_server, local_model):
    prefill = "My favourite colour is"
    messages = [*user("Name a colour."), {"role": "assistant", "content": prefill}]
    data = post(local_server, mbody(max_tokens=6, messages=messages)).json()
    text = data["content"][0]["text"]
    assert text and not text.lstrip().startswith(prefill)
    conversation = Conversation(system="", turns=[("user", "Name a colour.")], prefill=prefill)
    # The prompt the model read ends with the prefill: the answer continues it.
    assert local_model.render_text(conversation).endswith(prefill)
    assert data["usage"]["input_tokens"] == len(local_model.apply_chat_template(conversation))


@pytest.mark.local
def test_the_system_text_is_the_system_message_of_the_template(local_server, local_model):
    system = "You are a pirate. Always answer like a pirate."
    cold(local_model)  # compared with `blocks` below: the same evaluation (see `cold`)
    with_system = post(local_server, mbody(max_tokens=16, system=system)).json()
    conversation = Conversation(system=system, turns=[("user", QUESTION)], prefill="")
    rendered = local_model.render_text(conversation)
    assert f"system\n{system}" in rendered
    assert with_system["usage"]["input_tokens"] == len(
        local_model.apply_chat_template(conversation)
    )
    # and the model reads it: its next-token logits move (by ~10 here; one context's logits
    # differ between evaluation paths by under 1, see GREEDY_MARGIN), whatever the greedy
    # words happen to be.
    plain = Conversation(system="", turns=[("user", QUESTION)], prefill="")
    cold(local_model)
    read = local_model.next_logits(local_model.apply_chat_template(conversation))
    cold(local_model)
    shift = np.abs(read - local_model.next_logits(local_model.apply_chat_template(plain))).max()
    assert shift > 3 * GREEDY_MARGIN
    cold(local_model)
    blocks = post(
        local_server, mbody(max_tokens=16, system=[{"type": "text", "text": system}])
    ).json()
    assert blocks["content"] == with_system["content"]


@pytest.mark.local
@pytest.mark.parametrize(
    "prompt",
    [
        SHORT_PROMPT,
        "Answer in one word.\n\nHuman: Name a colour.\n\nAssistant:",
        "\n\nHuman: Name a colour.\n\nAssistant: My favourite colour is",
        "\n\nHuman: Hi\n\nAssistant: Hello! How can I help?"
        "\n\nHuman: Count to three.\n\nAssistant:",
    ],
    ids=["plain", "system", "prefill", "turns"],
)
def test_temperature_zero_gives_the_same_text_on_both_endpoints(
    local_client,
    messages_client,
    local_model,
    prompt,
):
    # One chat template, one greedy sampler: the transport must not change the answer.
    cold(local_model)
    complete = local_client.completions.create(
        prompt=prompt, max_tokens_to_sample=12, temperature=0
    )
    cold(local_model)
    via_messages = messages_client.completions.create(
        prompt=prompt, max_tokens_to_sample=12, temperature=0
    )
    cold(local_model)
    with messages_client.completions.create(
        prompt=prompt, max_tokens_to_sample=12, temperature=0, stream=True
    ) as stream:
        streamed = stream.get_final_completion()
    assert complete.completion
    assert via_messages.completion == streamed.completion == complete.completion
    assert via_messages.stop_reason == streamed.stop_reason == complete.stop_reason
    assert complete.id.startswith("compl_") and via_messages.id.startswith("msg_")


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.local
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"messages": [{"role": "system", "content": "Hi"}]},
            "messages.0.role: Input should be 'user' or 'assistant'",
        ),
        ({"max_tokens": None}, "max_tokens: Field required"),
        ({"foo": 1}, "foo: Extra inputs are not permitted"),
    ],
    ids=["bad role", "no max_tokens", "unknown field"],
)
def test_a_wrong_body_is_400_invalid_request_error_with_an_envelope(local_server, change, message):
    body = {k: v for k, v in {**mbody(), **change}.items() if v is not None}
    assert envelope(post(local_server, body)) == (400, "invalid_request_error", message)
    streamed = requests.post(
        local_server.url + "/v1/messages",
        json={**body, "stream": True},
        headers=HEADERS,
        timeout=60,
    )
    # Checked before the first byte: a plain JSON error, not an event stream.
    assert streamed.headers["content-type"] == "application/json"
    assert envelope(streamed) == (400, "invalid_request_error", message)


@pytest.mark.local
def test_a_bad_key_is_401_authentication_error(local_server):
    assert envelope(post(local_server, mbody(), headers={**HEADERS, "x-api-key": "no"})) == (
        401,
        "authentication_error",
        "invalid x-api-key",
    )
    with (
        Client(base_url=local_server.url, api_key="wrong", max_retries=0, api="messages") as client,
        pytest.raises(errors.AuthenticationError) as info,
    ):
        client.completions.create(prompt=SHORT_PROMPT, max_tokens_to_sample=1)
    assert info.value.status_code == 401 and "invalid x-api-key" in str(info.value)


@pytest.mark.local
def test_versions_are_checked_and_the_current_sdks_version_is_known(local_server):
    missing = {"x-api-key": LOCAL_API_KEY}
    assert envelope(post(local_server, mbody(), headers=missing)) == (
        400,
        "invalid_request_error",
        "anthropic-version: header is required",
    )
    unknown = {**HEADERS, "anthropic-version": "2024-01-01"}
    assert envelope(post(local_server, mbody(), headers=unknown))[:2] == (
        400,
        "invalid_request_error",
    )
    current = {**HEADERS, "anthropic-version": "2026-10-21"}
    assert post(local_server, mbody(max_tokens=1), headers=current).status_code == 200
    # a Messages-only version: /v1/complete still refuses it
    complete = {"model": "x", "prompt": SHORT_PROMPT, "max_tokens_to_sample": 1}
    assert envelope(post(local_server, complete, headers=current, path="/v1/complete")) == (
        400,
        "invalid_request_error",
        'anthropic-version: "2026-10-21" is not a valid version',
    )


@pytest.mark.local
def test_a_wrong_method_on_messages_is_405(local_server):
    r = requests.get(local_server.url + "/v1/messages", headers=HEADERS, timeout=10)
    assert envelope(r)[:2] == (405, "invalid_request_error")
    assert r.headers["allow"] == "POST"


@pytest.mark.local
def test_messages_and_completions_share_one_queue(local_model):
    from jupyter_complete.local import serve

    with (
        serve(model=local_model, api_key="k", max_queue=0) as server,
        Client(base_url=server.url, api_key="k", max_retries=0) as complete,
        Client(base_url=server.url, api_key="k", max_retries=0, api="messages") as client,
    ):
        busy = complete.completions.create(
            prompt=COUNT_PROMPT, max_tokens_to_sample=300, stream=True
        )
        next(iter(busy))  # the model is generating for /v1/complete now
        with pytest.raises(errors.OverloadedError) as info:
            client.completions.create(prompt=SHORT_PROMPT, max_tokens_to_sample=1)
        busy.close()
    assert info.value.status_code == 529 and info.value.type == "overloaded_error"
    assert info.value.headers.get("x-should-retry") == "true"


@pytest.mark.local
def test_a_messages_client_that_disconnects_frees_the_model(local_server, messages_client):
    before = local_server.stats["disconnected"]
    stream = messages_client.completions.create(
        prompt=COUNT_PROMPT, max_tokens_to_sample=1000, stream=True
    )
    next(iter(stream))
    stream.close()
    assert wait_for(lambda: local_server.stats["disconnected"] > before)
    assert wait_for(lambda: not local_server.gate.busy)
    assert messages_client.completions.create(
        prompt=SHORT_PROMPT, max_tokens_to_sample=2
    ).completion


@pytest.mark.local
def test_a_model_failure_mid_stream_is_an_error_event_keeping_the_text(
    failing_server,
    monkeypatch,
):
    server, calls = failing_server
    with Client(
        base_url=server.url, api_key=LOCAL_API_KEY, max_retries=0, api="messages"
    ) as client:
        assert_stream_fails_keeping_text(client)
        calls.clear()
        raw = requests.post(
            server.url + "/v1/messages",
            headers=HEADERS,
            timeout=60,
            json=mbody(max_tokens=20, messages=COUNT_MESSAGES, stream=True),
        )
        name, data = sse_events(raw.text)[-1]
        assert (name, data["type"], data["error"]["type"]) == ("error", "error", "api_error")
        assert wait_for(lambda: server.stats["failed"] == 2)
        monkeypatch.undo()
        assert client.completions.create(prompt=SHORT_PROMPT, max_tokens_to_sample=2)


# -- auto: switching to Messages when a model refuses Text Completions -------------------------


@pytest.mark.local
def test_a_refused_model_gets_the_apis_message_on_complete_only(refusing_server):
    with (
        Client(base_url=refusing_server.url, api_key=LOCAL_API_KEY, max_retries=0) as client,
        pytest.raises(errors.BadRequestError) as info,
    ):
        client.completions.create(prompt=SHORT_PROMPT, model=NEW_MODEL, max_tokens_to_sample=1)
    assert info.value.message.endswith(REFUSAL)
    assert post(refusing_server, mbody(model=NEW_MODEL, max_tokens=1)).status_code == 200
    complete = {"model": "claude-2.1", "prompt": SHORT_PROMPT, "max_tokens_to_sample": 1}
    assert post(refusing_server, complete, path="/v1/complete").status_code == 200


@pytest.mark.local
def test_auto_switches_a_refused_model_to_messages_once_and_says_so(
    refusing_server,
    capsys,
    local_model,
):
    before = refusing_server.stats["rejected"]
    with Client(
        base_url=refusing_server.url, api_key=LOCAL_API_KEY, max_retries=0, api="auto"
    ) as client:
        # Each greedy answer is evaluated the same way (see `cold`), so they can be compared.
        cold(local_model)
        first = client.completions.create(
            prompt=SHORT_PROMPT, model=NEW_MODEL, max_tokens_to_sample=8, temperature=0, stream=True
        ).get_final_completion()
        cold(local_model)
        second = client.completions.create(
            prompt=SHORT_PROMPT, model=NEW_MODEL, max_tokens_to_sample=8, temperature=0
        )
        cold(local_model)
        other = client.completions.create(
            prompt=SHORT_PROMPT, model="claude-2.1", max_tokens_to_sample=8, temperature=0
        )
        assert client.messages_models == {NEW_MODEL}
    assert first.completion and first.completion == second.completion == other.completion
    assert first.id.startswith("msg_") and second.id.startswith("msg_")
    assert (first.params["api"], second.params["api"]) == ("messages", "messages")
    assert other.id.startswith("compl_")  # a model that is not refused stays on /v1/complete
    assert capsys.readouterr().err.count("using the Messages API") == 1
    assert refusing_server.stats["rejected"] == before + 1  # only the first call was refused


# -- the current official SDK as a peer ----------------------------------------------------------

_SDK_SCRIPT = r"""
import json, sys
import anthropic

url, key = sys.argv[1], sys.argv[2]
question = [{"role": "user", "content": "What is the capital of France?"}]
count, done = json.loads(sys.argv[3]), json.loads(sys.argv[4])
# This SDK has no temperature argument (newer models take none); the server still reads it.
greedy = {"temperature": 0}
out = {"version": anthropic.__version__}
with anthropic.Anthropic(base_url=url, api_key=key, max_retries=0) as client:
    m = client.messages.create(model="claude-x", max_tokens=8, system="Be brief.",
                               messages=count, extra_body=greedy)
    out["create"] = m.model_dump(mode="json")
    with client.messages.stream(model="claude-x", max_tokens=8, system="Be brief.",
                                messages=count, extra_body=greedy) as stream:
        out["stream_text"] = stream.get_final_text()
        out["stream_message"] = stream.get_final_message().model_dump(mode="json")
    events = list(client.messages.create(model="claude-x", max_tokens=4, messages=question,
                                         stream=True, extra_body=greedy))
    out["events"] = [e.type for e in events]
    out["event_text"] = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    out["free"] = client.messages.create(model="claude-x", max_tokens=20, messages=count,
                                         extra_body=greedy).content[0].text
    stop = " " + out["free"].split()[3]
    s = client.messages.create(model="claude-x", max_tokens=20, messages=count,
                               stop_sequences=[stop], extra_body=greedy)
    out["stopped"] = [s.content[0].text, s.stop_reason, s.stop_sequence, stop]
    ended = client.messages.create(model="claude-x", max_tokens=100, extra_body=greedy,
                                   messages=done)
    out["ended"] = [ended.stop_reason, ended.stop_sequence]
    p = client.messages.create(model="claude-x", max_tokens=6, extra_body=greedy, messages=[
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "My favourite colour is"}])
    out["prefill"] = p.content[0].text
    try:
        client.messages.create(model="x", max_tokens=1, messages=question,
                               extra_body={"foo": 1})
    except anthropic.BadRequestError as err:
        out["bad_request"] = [err.status_code, err.body]
try:
    anthropic.Anthropic(base_url=url, api_key="wrong", max_retries=0).messages.create(
        model="x", max_tokens=1, messages=question)
except anthropic.AuthenticationError as err:
    out["auth"] = [err.status_code, err.body]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def current_sdk(local_server: Any) -> dict[str, Any]:
    """What the current SDK (run in a subprocess from .peer/) got from the local server."""
    if not (PEER_DIR / "anthropic").is_dir():
        pytest.skip(
            f"the current anthropic SDK is not in {PEER_DIR}: run "
            "`bash scripts/setup.sh test`, or `pip install --target "
            ".peer/anthropic-current 'anthropic>=1'` from the repository root"
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env["PYTHONPATH"] = str(PEER_DIR)  # ahead of site-packages, where anthropic<1 lives
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            _SDK_SCRIPT,
            local_server.url,
            LOCAL_API_KEY,
            json.dumps(COUNT_MESSAGES),
            json.dumps(DONE_MESSAGES),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    result: dict[str, Any] = json.loads(run.stdout)
    return result


@pytest.mark.local
def test_the_peer_is_the_current_sdk_not_the_legacy_one(current_sdk):
    assert int(current_sdk["version"].split(".")[0]) >= 1


@pytest.mark.local
def test_the_current_sdk_gets_a_message(current_sdk):
    m = current_sdk["create"]
    assert m["type"] == "message" and m["role"] == "assistant"
    assert m["id"].startswith("msg_") and m["model"] == LOCAL_MODEL_NAME
    assert m["content"][0]["type"] == "text" and m["content"][0]["text"]
    assert_ran_to_limit(m["stop_reason"], m["usage"]["output_tokens"], 8, m["content"][0]["text"])
    assert m["stop_sequence"] is None and m["usage"]["input_tokens"] > 0


@pytest.mark.local
def test_the_current_sdk_streams_the_same_text_it_gets_whole(
    current_sdk,
    messages_client,
    local_model,
):
    # The SDK's two requests meet different cache states (the test cannot empty the cache
    # between them, see `cold`): comparable because this greedy path has no near tie.
    assert_clear_greedy_path(
        local_model,
        local_model.apply_chat_template(
            Conversation(
                system="Be brief.", turns=[("user", COUNT_QUESTION)], prefill=COUNT_PREFILL
            )
        ),
        8,
    )
    assert current_sdk["stream_text"] == current_sdk["create"]["content"][0]["text"]
    streamed = current_sdk["stream_message"]
    assert streamed["stop_reason"] == "max_tokens"
    assert streamed["usage"] == current_sdk["create"]["usage"]
    # Our client, sending the same conversation through the Messages transport, renders
    # the same prompt.
    ours = messages_client.completions.create(
        prompt=f"Be brief.\n\nHuman: {COUNT_QUESTION}\n\nAssistant: {COUNT_PREFILL}",
        max_tokens_to_sample=1,
        temperature=0,
    )
    assert ours.usage is not None
    assert ours.usage["input_tokens"] == current_sdk["create"]["usage"]["input_tokens"]


@pytest.mark.local
def test_the_current_sdk_sees_the_raw_event_sequence(current_sdk):
    events = current_sdk["events"]
    assert events[:2] == ["message_start", "content_block_start"]
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(events[2:-3]) == {"content_block_delta"}
    assert current_sdk["event_text"]


@pytest.mark.local
def test_the_current_sdk_sees_stop_reasons_and_a_continued_prefill(current_sdk, local_model):
    # As above, two greedy answers meet different cache states; and the end of turn is
    # the clear next token after DONE_MESSAGES on every build.
    assert_clear_greedy_path(
        local_model,
        local_model.apply_chat_template(
            Conversation(system="", turns=[("user", COUNT_QUESTION)], prefill=COUNT_PREFILL)
        ),
        20,
    )
    assert_ends_its_turn(
        local_model,
        local_model.apply_chat_template(
            Conversation(system="", turns=[("user", DONE_QUESTION)], prefill=DONE_PREFILL)
        ),
    )
    text, reason, sequence, stop = current_sdk["stopped"]
    free = current_sdk["free"]
    assert (text, reason, sequence) == (free[: free.index(stop)], "stop_sequence", stop)
    assert current_sdk["ended"] == ["end_turn", None]
    assert current_sdk["prefill"]
    assert not current_sdk["prefill"].lstrip().startswith("My favourite colour is")


@pytest.mark.local
def test_the_current_sdk_raises_its_own_error_classes(current_sdk):
    status, body = current_sdk["auth"]
    assert status == 401
    assert body["error"] == {"type": "authentication_error", "message": "invalid x-api-key"}
    assert body["request_id"].startswith("req_")
    status, body = current_sdk["bad_request"]
    assert status == 400
    assert body["error"] == {
        "type": "invalid_request_error",
        "message": "foo: Extra inputs are not permitted",
    }
