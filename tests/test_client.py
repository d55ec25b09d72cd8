"""The client against a replay server: request shape, errors, retries, timeouts, validation."""

from __future__ import annotations

import email.utils
import json
import socket
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fixtures_replay import (
    ReplayServer,
    Reset,
    Script,
    completion_event,
    error_script,
    final_event,
    head,
    json_script,
    sse_script,
)

from jupyter_complete import Client, errors

PROMPT = "\n\nHuman: hi\n\nAssistant:"
# A copy of the published OpenAPI document's /v1/complete operation
# (https://docs.anthropic.com/en/api/complete), so the tests need no network.
SPEC = json.loads((Path(__file__).parent / "data" / "complete-openapi.json").read_text())


def _drop_null_types(node: Any) -> Any:
    # The published spec says `"type": null` on Model (an OpenAPI generator quirk) which
    # JSON Schema rejects; dropping it keeps the anyOf that carries the real constraint.
    if isinstance(node, dict):
        return {k: _drop_null_types(v) for k, v in node.items() if not (k == "type" and v is None)}
    if isinstance(node, list):
        return [_drop_null_types(v) for v in node]
    return node


SPEC = _drop_null_types(SPEC)
OK_BODY = {
    "type": "completion",
    "id": "compl_1",
    "completion": " Hi!",
    "stop_reason": "stop_sequence",
    "model": "replay-1",
}


class Recorder:
    """Replaces Client._sleep so retries are instant and their delays are visible."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def make_client(replay: ReplayServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)

    def make(**kwargs: Any) -> tuple[Client, Recorder]:
        kwargs.setdefault("api_key", "test-key")
        client = Client(base_url=replay.url, **kwargs)
        rec = Recorder()
        client._sleep = rec  # type: ignore[method-assign]
        return client, rec

    return make


def test_headers_carry_key_version_content_type_and_comma_joined_betas(
    replay: ReplayServer, make_client: Any
) -> None:
    replay.enqueue(json_script(200, OK_BODY))
    client, _ = make_client(default_headers={"x-extra": "1"})
    client.completions.create(prompt=PROMPT, betas=["beta-a", "beta-b"])
    h = replay.received[0].headers
    assert h["x-api-key"] == "test-key"
    assert h["anthropic-version"] == "2023-06-01"
    assert h["content-type"] == "application/json"
    assert h["anthropic-beta"] == "beta-a,beta-b"
    assert h["x-extra"] == "1"
    assert replay.received[0].method == "POST" and replay.received[0].path == "/v1/complete"


def test_the_body_holds_only_spec_fields_and_omits_unset_ones(
    replay: ReplayServer, make_client: Any
) -> None:
    replay.enqueue(json_script(200, OK_BODY), json_script(200, OK_BODY))
    client, _ = make_client()
    client.completions.create(prompt=PROMPT, model="m")
    client.completions.create(
        prompt=PROMPT,
        model="m",
        max_tokens_to_sample=5,
        temperature=0.0,
        top_k=3,
        top_p=0.5,
        stop_sequences=["END"],
        metadata={"user_id": "u1"},
    )
    minimal, full = replay.received[0].json, replay.received[1].json
    assert minimal == {"model": "m", "prompt": PROMPT, "max_tokens_to_sample": 256}
    assert full == {
        "model": "m",
        "prompt": PROMPT,
        "max_tokens_to_sample": 5,
        "temperature": 0.0,
        "top_k": 3,
        "top_p": 0.5,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u1"},
    }
    schema = SPEC["components"]["schemas"]["CompletionRequest"]
    resolver_doc = {"components": SPEC["components"], **schema}
    for body in (minimal, full):
        jsonschema.validate(body, resolver_doc)


def test_streaming_requests_send_stream_true(replay: ReplayServer, make_client: Any) -> None:
    replay.enqueue(sse_script([completion_event(" x"), final_event()]))
    client, _ = make_client()
    client.completions.create(prompt=PROMPT, stream=True).get_final_completion()
    assert replay.received[0].json["stream"] is True


def test_a_base_url_path_prefix_is_kept(replay: ReplayServer, monkeypatch: Any) -> None:
    replay.enqueue(json_script(200, OK_BODY))
    client = Client(base_url=replay.url + "/gateway/anthropic/", api_key="k")
    client.completions.create(prompt=PROMPT)
    assert replay.received[0].path == "/gateway/anthropic/v1/complete"


def test_environment_variables_supply_key_and_base_url(
    replay: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", replay.url)
    replay.enqueue(json_script(200, OK_BODY))
    Client().completions.create(prompt=PROMPT)
    assert replay.received[0].headers["x-api-key"] == "env-key"


def test_a_key_without_a_base_url_targets_the_anthropic_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    client = Client(api_key="k")
    assert client.base_url == "https://api.anthropic.com" and not client.is_local


def test_the_repr_never_shows_the_key() -> None:
    client = Client(api_key="sk-ant-SECRET-123", base_url="http://127.0.0.1:1")
    assert "SECRET" not in repr(client) and "api_key=set" in repr(client)
    assert "SECRET" not in repr(vars(client))


def test_a_non_streaming_answer_becomes_a_completion_with_extra_fields_tolerated(
    replay: ReplayServer, make_client: Any
) -> None:
    replay.enqueue(
        json_script(
            200,
            {
                "completion": " 2",
                "stop_reason": "stop_sequence",
                "model": "claude-instant-1.2",
                "stop": "\n\nHuman:",
                "log_id": "52b6",
                "surprise": [1],
            },
        )
    )
    client, _ = make_client()
    c = client.completions.create(prompt=PROMPT, model="claude-instant-1.2")
    assert (c.completion, c.stop_reason, c.stop, c.id) == (
        " 2",
        "stop_sequence",
        "\n\nHuman:",
        "52b6",
    )
    assert c.request_id == "req_replay_1" and c.elapsed is not None and c.elapsed >= 0
    assert c.params["model"] == "claude-instant-1.2" and "prompt" not in c.params


@pytest.mark.parametrize(
    ("status", "etype", "cls"),
    [
        (400, "invalid_request_error", errors.BadRequestError),
        (401, "authentication_error", errors.AuthenticationError),
        (403, "permission_error", errors.PermissionDeniedError),
        (404, "not_found_error", errors.NotFoundError),
        (413, "request_too_large", errors.RequestTooLargeError),
        (429, "rate_limit_error", errors.RateLimitError),
        (500, "api_error", errors.InternalServerError),
        (529, "overloaded_error", errors.OverloadedError),
    ],
)
def test_each_error_status_raises_its_own_class_with_status_type_message_and_request_id(
    replay: ReplayServer, make_client: Any, status: int, etype: str, cls: type
) -> None:
    replay.enqueue(error_script(status, etype, "what went wrong"))
    client, _ = make_client(max_retries=0)
    with pytest.raises(cls) as info:
        client.completions.create(prompt=PROMPT)
    err = info.value
    assert type(err) is cls
    assert (err.status_code, err.type, err.request_id) == (status, etype, "req_replay_1")
    assert "what went wrong" in str(err) and "\n" not in str(err)
    assert isinstance(err, errors.APIStatusError) and isinstance(err, errors.CompleteError)


def test_an_html_error_page_from_a_proxy_gives_a_short_readable_message(
    replay: ReplayServer, make_client: Any
) -> None:
    page = (
        b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>"
        b"<hr><center>nginx</center></body></html>"
    )
    replay.enqueue(Script([head(502, content_type="text/html", length=len(page)) + page]))
    client, _ = make_client(max_retries=0)
    with pytest.raises(errors.InternalServerError) as info:
        client.completions.create(prompt=PROMPT)
    assert "502 Bad Gateway" in str(info.value) and "<" not in str(info.value)


@pytest.mark.parametrize("status", [408, 409, 429, 500, 503, 529])
def test_retryable_statuses_are_retried_then_succeed(
    replay: ReplayServer, make_client: Any, status: int
) -> None:
    replay.enqueue(error_script(status, "api_error", "x"), json_script(200, OK_BODY))
    client, rec = make_client()
    assert client.completions.create(prompt=PROMPT).completion == " Hi!"
    assert len(replay.received) == 2 and len(rec.delays) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413])
def test_client_errors_are_not_retried(replay: ReplayServer, make_client: Any, status: int) -> None:
    replay.enqueue(error_script(status, "invalid_request_error", "x"), json_script(200, OK_BODY))
    client, rec = make_client()
    with pytest.raises(errors.APIStatusError):
        client.completions.create(prompt=PROMPT)
    assert len(replay.received) == 1 and rec.delays == []


def test_x_should_retry_overrides_the_status_rules(replay: ReplayServer, make_client: Any) -> None:
    replay.enqueue(
        error_script(400, "invalid_request_error", "x", {"x-should-retry": "true"}),
        json_script(200, OK_BODY),
    )
    client, _ = make_client()
    assert client.completions.create(prompt=PROMPT).completion == " Hi!"
    replay.enqueue(error_script(529, "overloaded_error", "x", {"x-should-retry": "false"}))
    with pytest.raises(errors.OverloadedError):
        client.completions.create(prompt=PROMPT)
    assert len(replay.received) == 3


def test_retries_stop_after_max_retries_and_raise_the_last_error(
    replay: ReplayServer, make_client: Any
) -> None:
    replay.enqueue(*[error_script(529, "overloaded_error", "Overloaded")] * 4)
    client, rec = make_client(max_retries=2)
    with pytest.raises(errors.OverloadedError):
        client.completions.create(prompt=PROMPT)
    assert len(replay.received) == 3 and len(rec.delays) == 2


def test_retry_after_ms_then_retry_after_seconds_are_obeyed_exactly(
    replay: ReplayServer, make_client: Any
) -> None:
    replay.enqueue(
        error_script(429, "rate_limit_error", "x", {"retry-after-ms": "1500", "retry-after": "9"}),
        error_script(429, "rate_limit_error", "x", {"retry-after": "3"}),
        json_script(200, OK_BODY),
    )
    client, rec = make_client()
    client.completions.create(prompt=PROMPT)
    assert rec.delays == [1.5, 3.0]


def test_retry_after_as_an_http_date_is_obeyed() -> None:
    client = Client(api_key="k", base_url="http://127.0.0.1:1")
    when = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8 <= client._retry_delay({"retry-after": when}, 0) <= 10.5


def test_retry_after_outside_zero_to_sixty_seconds_falls_back_to_jittered_backoff() -> None:
    client = Client(api_key="k", base_url="http://127.0.0.1:1")
    for attempt, (lo, hi) in enumerate(
        [(0.375, 0.5), (0.75, 1.0), (1.5, 2.0), (3, 4), (6, 8), (6, 8)]
    ):
        for headers in ({"retry-after": "120"}, {"retry-after": "0"}, {}):
            delay = client._retry_delay(headers, attempt)
            assert lo <= delay <= hi, (attempt, headers, delay)


def test_connection_refused_is_retried_then_raises_a_connection_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here now
    client = Client(base_url=f"http://127.0.0.1:{port}", api_key="k", max_retries=2)
    rec = Recorder()
    client._sleep = rec  # type: ignore[method-assign]
    with pytest.raises(errors.APIConnectionError, match="Connection refused") as info:
        client.completions.create(prompt=PROMPT)
    assert len(rec.delays) == 2 and info.value.partial is None
    assert "\n" not in str(info.value)


def test_a_reset_before_headers_is_retried(replay: ReplayServer, make_client: Any) -> None:
    replay.enqueue(Script([Reset()]), json_script(200, OK_BODY))
    client, rec = make_client()
    assert client.completions.create(prompt=PROMPT).completion == " Hi!"
    assert len(rec.delays) == 1


def test_a_stream_is_never_retried_once_its_first_event_reached_the_caller(
    replay: ReplayServer, make_client: Any
) -> None:
    replay.enqueue(
        Script([head(chunked=False), completion_event(" partial"), Reset()]),
        sse_script([completion_event(" second try"), final_event()]),
    )
    client, rec = make_client(max_retries=2)
    with pytest.raises(errors.APIConnectionError) as info:
        client.completions.create(prompt=PROMPT, stream=True).get_final_completion()
    assert info.value.partial is not None and info.value.partial.completion == " partial"
    assert len(replay.received) == 1 and rec.delays == []


def test_a_slow_non_streaming_answer_times_out_with_a_timeout_error(
    replay: ReplayServer, make_client: Any
) -> None:
    from fixtures_replay import Sleep

    replay.enqueue(*[Script([Sleep(1.0), head(200, length=2) + b"{}"])] * 2)
    client, rec = make_client(timeout=0.2, max_retries=1)
    with pytest.raises(errors.APITimeoutError):
        client.completions.create(prompt=PROMPT)
    assert len(rec.delays) == 1


@pytest.mark.parametrize(
    ("kwargs", "param", "allowed"),
    [
        ({"temperature": 1.5}, "temperature", "from 0 to 1"),
        ({"temperature": -0.1}, "temperature", "from 0 to 1"),
        ({"temperature": float("nan")}, "temperature", "from 0 to 1"),
        ({"top_p": 2}, "top_p", "from 0 to 1"),
        ({"top_k": -1}, "top_k", ">= 0"),
        ({"top_k": 2.5}, "top_k", "an integer"),
        ({"max_tokens_to_sample": 0}, "max_tokens_to_sample", ">= 1"),
        ({"prompt": ""}, "prompt", "non-empty"),
        ({"prompt": "   "}, "prompt", "non-empty"),
        ({"stop_sequences": [""]}, "stop_sequences", "non-empty strings"),
        ({"metadata": {"user": "x"}}, "metadata", "user_id"),
    ],
)
def test_bad_parameters_raise_one_line_errors_naming_them_and_send_nothing(
    replay: ReplayServer, make_client: Any, kwargs: dict[str, Any], param: str, allowed: str
) -> None:
    client, _ = make_client()
    call = {"prompt": PROMPT, **kwargs}
    with pytest.raises(errors.InvalidParameterError) as info:
        client.completions.create(**call)
    message = str(info.value)
    assert message.startswith(f"{param}=") and allowed in message and "\n" not in message
    assert isinstance(info.value, ValueError)
    assert replay.received == []


def test_the_response_connection_is_released_after_a_non_streaming_call(
    replay: ReplayServer, make_client: Any
) -> None:
    replay.enqueue(json_script(200, OK_BODY))
    client, _ = make_client()
    client.completions.create(prompt=PROMPT)
    client.close()
    assert replay.wait_idle()


def test_importing_the_package_loads_neither_widgets_nor_llama_cpp_nor_requests() -> None:
    import subprocess
    import sys

    code = (
        "import sys, jupyter_complete; "
        "print(sorted(m for m in ('ipywidgets','llama_cpp','requests','IPython') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"


def test_models_list_stops_when_the_server_repeats_its_page_cursor(
    replay: ReplayServer,
) -> None:
    page = {
        "data": [{"type": "model", "id": "m1"}],
        "has_more": True,
        "first_id": "m1",
        "last_id": "m1",
    }
    replay.enqueue(*[json_script(200, page) for _ in range(6)])
    client = Client(base_url=replay.url, api_key="k", max_retries=0)
    assert [m.id for m in client.models.list()] == ["m1"]
    assert len(replay.received) == 2  # the second page did not move on: no third request


def test_models_list_bounds_the_bytes_read_over_all_pages(replay: ReplayServer) -> None:
    from jupyter_complete import _models

    pages = _models.MAX_LIST_BYTES // (1024 * 1024) + 2
    for n in range(pages):  # ~1 MB pages, each within the page bound, always "has_more"
        data = [
            {"type": "model", "id": f"p{n}-{i}", "display_name": "x" * 1000} for i in range(1000)
        ]
        replay.enqueue(
            json_script(200, {"data": data, "has_more": True, "last_id": data[-1]["id"]})
        )
    client = Client(base_url=replay.url, api_key="k", max_retries=0)
    with pytest.raises(errors.APIResponseValidationError, match="larger than"):
        client.models.list()
    assert len(replay.received) < pages
