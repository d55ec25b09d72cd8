"""The local server's request checks: the real API's statuses and messages, no model needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jupyter_complete.local.request import (
    CompletionRequest,
    RequestRejected,
    check_key,
    check_version,
)

GOOD = {"model": "claude-2.1", "prompt": "\n\nHuman: Hi\n\nAssistant:", "max_tokens_to_sample": 5}


def _message(body: object) -> str:
    with pytest.raises(RequestRejected) as info:
        CompletionRequest.from_json(json.dumps(body).encode())
    assert info.value.status == 400
    assert info.value.error_type == "invalid_request_error"
    return info.value.message


def test_a_minimal_request_is_accepted_with_api_defaults():
    r = CompletionRequest.from_json(json.dumps(GOOD).encode())
    assert r.max_tokens_to_sample == 5
    assert (r.temperature, r.top_k, r.top_p, r.stream) == (None, None, None, False)
    assert r.conversation.turns == [("user", "Hi")]


def test_every_spec_field_is_accepted():
    body = {
        **GOOD,
        "stop_sequences": ["x"],
        "temperature": 0,
        "top_k": 3,
        "top_p": 1,
        "metadata": {"user_id": "u"},
        "stream": True,
    }
    r = CompletionRequest.from_json(json.dumps(body).encode())
    assert (r.temperature, r.top_k, r.top_p, r.stream) == (0.0, 3, 1.0, True)


def test_unknown_fields_are_rejected_like_additional_properties_false():
    assert _message({**GOOD, "foo": 1}) == "foo: Extra inputs are not permitted"
    assert _message({**GOOD, "metadata": {"tags": 1}}) == (
        "metadata.tags: Extra inputs are not permitted"
    )


def test_missing_required_fields_are_named():
    for name in ("model", "prompt", "max_tokens_to_sample"):
        body = {k: v for k, v in GOOD.items() if k != name}
        assert _message(body) == f"{name}: Field required"


def test_ranges_use_the_api_wording():
    assert _message({**GOOD, "temperature": 1.5}) == "temperature: range: 0..1"
    assert _message({**GOOD, "temperature": -0.1}) == "temperature: range: 0..1"
    assert _message({**GOOD, "top_p": 2}) == "top_p: range: 0..1"
    assert _message({**GOOD, "top_k": -1}) == "top_k: Input should be greater than or equal to 0"
    assert _message({**GOOD, "max_tokens_to_sample": 0}) == (
        "max_tokens_to_sample: Input should be greater than or equal to 1"
    )


def test_wrong_types_are_rejected():
    assert _message({**GOOD, "temperature": "hot"}) == "temperature: Input should be a valid number"
    assert _message({**GOOD, "top_k": 2.5}).startswith("top_k: Input should be a valid integer")
    assert _message({**GOOD, "max_tokens_to_sample": True}) == (
        "max_tokens_to_sample: Input should be a valid integer"
    )
    assert _message({**GOOD, "stream": "yes"}) == "stream: Input should be a valid boolean"
    assert _message({**GOOD, "stop_sequences": "x"}) == (
        "stop_sequences: Input should be a valid list"
    )
    assert _message({**GOOD, "stop_sequences": [1]}) == (
        "stop_sequences.0: Input should be a valid string"
    )
    assert _message({**GOOD, "metadata": {"user_id": "u" * 257}}) == (
        "metadata.user_id: String should have at most 256 characters"
    )


def test_an_integral_float_is_an_integer():
    r = CompletionRequest.from_json(json.dumps({**GOOD, "max_tokens_to_sample": 4.0}).encode())
    assert r.max_tokens_to_sample == 4


def test_a_prompt_without_a_human_turn_gets_the_api_message():
    assert _message({**GOOD, "prompt": "Hello, world"}) == (
        'prompt must start with "\\n\\nHuman:" turn after an optional system prompt'
    )


def test_an_empty_prompt_is_too_short():
    assert _message({**GOOD, "prompt": ""}) == "prompt: String should have at least 1 character"


def test_a_prompt_that_starts_with_human_without_blank_lines_is_sanitized():
    r = CompletionRequest.from_json(
        json.dumps({**GOOD, "prompt": "Human: Hi\n\nAssistant:"}).encode()
    )
    assert r.conversation.turns == [("user", "Hi")]


def test_system_text_and_prefill_are_split_out():
    body = {**GOOD, "prompt": "Be brief.\n\nHuman: Hi\n\nAssistant: Hello"}
    conv = CompletionRequest.from_json(json.dumps(body).encode()).conversation
    assert (conv.system, conv.turns, conv.prefill) == ("Be brief.", [("user", "Hi")], "Hello")


def test_a_body_that_is_not_json_or_not_an_object_is_a_bad_request():
    with pytest.raises(RequestRejected) as info:
        CompletionRequest.from_json(b"{nope")
    assert info.value.status == 400
    assert _message([1, 2]).startswith("Input should be a valid dictionary")


def test_the_version_header_is_required_and_checked():
    with pytest.raises(RequestRejected) as info:
        check_version([])
    assert info.value.message == "anthropic-version: header is required"
    with pytest.raises(RequestRejected) as info:
        check_version(["2023-10-01"])
    assert info.value.message == 'anthropic-version: "2023-10-01" is not a valid version'
    with pytest.raises(RequestRejected):
        check_version(["2023-06-01", "2023-06-01"])
    assert check_version(["2023-06-01"]) == "2023-06-01"


def test_the_key_check_uses_the_api_messages():
    check_key(None, None, None)  # no key configured: anything goes
    check_key("k", None, "k")
    check_key(None, "Bearer k", "k")
    for given, message in ((None, "x-api-key header is required"), ("bad", "invalid x-api-key")):
        with pytest.raises(RequestRejected) as info:
            check_key(given, None, "k")
        assert (info.value.status, info.value.error_type, info.value.message) == (
            401,
            "authentication_error",
            message,
        )


SPEC_COPY = Path(__file__).parent / "data" / "complete-openapi.json"


def test_the_spec_copy_in_tests_data_matches_the_shared_one_when_present():
    shared = Path(__file__).resolve().parents[2] / "shared" / "spec" / "complete-openapi.json"
    if not shared.exists():
        pytest.skip("shared/ is not beside the repository")
    assert json.loads(SPEC_COPY.read_text()) == json.loads(shared.read_text())


CASES = [
    GOOD,
    {**GOOD, "temperature": 1},
    {**GOOD, "temperature": 1.0001},
    {**GOOD, "top_p": 0},
    {**GOOD, "top_p": -0.5},
    {**GOOD, "top_k": 0},
    {**GOOD, "top_k": 2.0},
    {**GOOD, "top_k": 2.5},
    {**GOOD, "max_tokens_to_sample": 0},
    {**GOOD, "max_tokens_to_sample": "5"},
    {**GOOD, "stop_sequences": ["a", "b"]},
    {**GOOD, "stop_sequences": [None]},
    {**GOOD, "metadata": {}},
    {**GOOD, "metadata": {"user_id": None}},
    {**GOOD, "metadata": {"user_id": "x", "other": 1}},
    {**GOOD, "stream": False},
    {**GOOD, "stream": 1},
    {**GOOD, "model": 3},
    {**GOOD, "extra": True},
    {k: v for k, v in GOOD.items() if k != "model"},
]


@pytest.mark.parametrize("body", CASES)
def test_the_server_accepts_exactly_what_the_published_schema_accepts(body, spec_validator):
    jsonschema = pytest.importorskip("jsonschema")
    try:
        spec_validator(body, "CompletionRequest")
        schema_ok = True
    except jsonschema.ValidationError:
        schema_ok = False
    try:
        CompletionRequest.from_dict(body)
        server_ok = True
    except RequestRejected:
        server_ok = False
    assert server_ok == schema_ok


def test_json_nested_deeper_than_the_parser_can_go_is_a_400():
    for raw in (b"[" * 100_000 + b"]" * 100_000, b'{"a": ' * 50_000 + b"1" + b"}" * 50_000):
        with pytest.raises(RequestRejected) as info:
            CompletionRequest.from_json(raw)
        assert info.value.status == 400
        assert info.value.message == "Request body is nested too deeply"
