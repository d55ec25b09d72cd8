"""The official ``anthropic`` SDK (0.x) as an independent client of the built-in server.

If the SDK, written against the real API, gets text, stop reasons and its own exception
classes from our server, the server speaks the protocol, not just our client's reading of it.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import pytest
from fixtures_local import COUNT_PROMPT, LOCAL_API_KEY, SHORT_PROMPT, cold

from jupyter_complete._constants import LOCAL_MODEL_NAME

anthropic = pytest.importorskip("anthropic")

pytestmark = pytest.mark.local


@pytest.fixture()
def sdk(local_server: Any) -> Any:
    client = anthropic.Anthropic(base_url=local_server.url, api_key=LOCAL_API_KEY, max_retries=0)
    yield client
    client.close()


def test_the_sdk_gets_a_completion(sdk):
    c = sdk.completions.create(
        model="claude-2.1", prompt=SHORT_PROMPT, max_tokens_to_sample=6, temperature=0
    )
    assert isinstance(c, anthropic.types.Completion)
    assert c.completion
    assert c.stop_reason in ("stop_sequence", "max_tokens")
    assert c.model == LOCAL_MODEL_NAME
    assert c.id.startswith("compl_")
    assert c.type == "completion"


def test_the_sdk_raw_response_validates_against_the_published_schema(sdk, spec_validator):
    raw = sdk.completions.with_raw_response.create(
        model="claude-2.1", prompt=SHORT_PROMPT, max_tokens_to_sample=3, temperature=0
    )
    assert raw.headers["request-id"].startswith("req_")
    spec_validator(raw.http_response.json(), "CompletionResponse")


def test_the_sdk_streams_the_same_text_it_gets_whole(sdk, local_model):
    cold(local_model)  # both answers evaluated the same way (see `cold`)
    whole = sdk.completions.create(
        model="claude-2.1", prompt=COUNT_PROMPT, max_tokens_to_sample=10, temperature=0
    )
    cold(local_model)
    events = list(
        sdk.completions.create(
            model="claude-2.1",
            prompt=COUNT_PROMPT,
            max_tokens_to_sample=10,
            temperature=0,
            stream=True,
        )
    )
    assert len(events) >= 3
    assert "".join(e.completion for e in events) == whole.completion
    assert [e.stop_reason for e in events[:-1]] == [None] * (len(events) - 1)
    assert events[-1].stop_reason == "max_tokens" == whole.stop_reason
    assert events[-1].completion == ""


def test_the_sdk_sees_stop_sequences_honoured(sdk, local_model):
    cold(local_model)  # both answers evaluated the same way (see `cold`)
    free = sdk.completions.create(
        model="claude-2.1", prompt=COUNT_PROMPT, max_tokens_to_sample=16, temperature=0
    ).completion
    stop = free.split()[2]
    cold(local_model)
    c = sdk.completions.create(
        model="claude-2.1",
        prompt=COUNT_PROMPT,
        max_tokens_to_sample=16,
        temperature=0,
        stop_sequences=[stop],
    )
    assert c.completion == free[: free.index(stop)]
    assert c.stop_reason == "stop_sequence"


def test_a_bad_key_raises_the_sdks_authentication_error(local_server):
    with (
        anthropic.Anthropic(base_url=local_server.url, api_key="nope", max_retries=0) as bad,
        pytest.raises(anthropic.AuthenticationError) as info,
    ):
        bad.completions.create(model="x", prompt=SHORT_PROMPT, max_tokens_to_sample=1)
    assert info.value.status_code == 401
    assert info.value.body["error"] == {
        "type": "authentication_error",
        "message": "invalid x-api-key",
    }
    assert info.value.request_id.startswith("req_")


def test_an_invalid_parameter_raises_the_sdks_bad_request_error(sdk):
    with pytest.raises(anthropic.BadRequestError) as info:
        sdk.completions.create(
            model="x", prompt=SHORT_PROMPT, max_tokens_to_sample=1, temperature=1.5
        )
    assert info.value.body["error"]["message"] == "temperature: range: 0..1"
    with pytest.raises(anthropic.BadRequestError) as info:
        sdk.completions.create(
            model="x", prompt=SHORT_PROMPT, max_tokens_to_sample=1, extra_body={"foo": 1}
        )
    assert info.value.body["error"]["message"] == "foo: Extra inputs are not permitted"


def test_a_streamed_bad_request_raises_before_any_event(sdk):
    with pytest.raises(anthropic.BadRequestError) as info:
        sdk.completions.create(
            model="x", prompt="no turns here", max_tokens_to_sample=1, stream=True
        )
    assert info.value.body["error"]["message"] == (
        'prompt must start with "\\n\\nHuman:" turn after an optional system prompt'
    )


def test_a_wrong_path_raises_the_sdks_not_found_error(local_server):
    with (
        anthropic.Anthropic(
            base_url=local_server.url + "/nowhere", api_key=LOCAL_API_KEY, max_retries=0
        ) as lost,
        pytest.raises(anthropic.NotFoundError),
    ):
        lost.completions.create(model="x", prompt=SHORT_PROMPT, max_tokens_to_sample=1)


def test_a_body_past_the_limit_raises_the_sdks_request_too_large_error(local_model):
    from jupyter_complete.local import serve

    with (
        serve(model=local_model, api_key="k", max_body_bytes=1024) as server,
        anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=0) as client,
        pytest.raises(anthropic.RequestTooLargeError),
    ):
        client.completions.create(
            model="x", max_tokens_to_sample=1, prompt="\n\nHuman: " + "y" * 4000 + "\n\nAssistant:"
        )


def test_a_full_queue_raises_the_sdks_overloaded_error(local_model):
    from jupyter_complete.local import serve

    with (
        serve(model=local_model, api_key="k", max_queue=0) as server,
        anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=0) as client,
    ):
        busy = client.completions.create(
            model="x", prompt=COUNT_PROMPT, max_tokens_to_sample=200, stream=True
        )
        next(iter(busy))  # the model is now generating for this stream
        with pytest.raises(anthropic.OverloadedError) as info:
            client.completions.create(model="x", prompt=SHORT_PROMPT, max_tokens_to_sample=1)
        busy.close()
    assert info.value.status_code == 529
    assert info.value.response.headers["x-should-retry"] == "true"


def test_an_sdk_stream_closed_early_frees_the_model(local_server, sdk):
    before = local_server.stats["disconnected"]
    stream = sdk.completions.create(
        model="x", prompt=COUNT_PROMPT, max_tokens_to_sample=1000, stream=True
    )
    for _ in zip(range(2), stream, strict=False):
        pass
    stream.close()
    deadline = time.monotonic() + 5
    while local_server.stats["disconnected"] == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert local_server.stats["disconnected"] > before
    c = sdk.completions.create(model="x", prompt=SHORT_PROMPT, max_tokens_to_sample=1)
    assert c.completion is not None


def test_the_sdk_retries_a_529_and_then_succeeds(local_model):
    from jupyter_complete.local import serve

    with serve(model=local_model, api_key="k", max_queue=0) as server:
        host, port = server.url.removeprefix("http://").split(":")
        hold = socket.create_connection((host, int(port)))
        body = json.dumps(
            {"model": "x", "prompt": COUNT_PROMPT, "max_tokens_to_sample": 30}
        ).encode()
        hold.sendall(
            b"POST /v1/complete HTTP/1.1\r\nHost: x\r\nx-api-key: k\r\n"
            b"anthropic-version: 2023-06-01\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        while not server.gate.busy:
            time.sleep(0.01)
        released = threading.Timer(0.3, hold.close)
        released.start()
        with anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=4) as client:
            c = client.completions.create(model="x", prompt=SHORT_PROMPT, max_tokens_to_sample=2)
        released.join()
    assert c.completion
    assert server.stats["overloaded"] >= 1
