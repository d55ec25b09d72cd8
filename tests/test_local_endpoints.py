"""``GET /v1/models`` and ``POST /v1/messages/count_tokens`` on the built-in server.

Shapes follow the API's reference: a models page is ``{"data": [ModelInfo...], "has_more",
"first_id", "last_id"}`` with ``ModelInfo`` = ``type: "model"``, ``id``, ``display_name``,
``created_at`` (RFC 3339); a token count is ``{"input_tokens": N}``, the same N that a
Messages answer for the same conversation reports in ``usage.input_tokens``.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
import requests
from fixtures_local import LOCAL_API_KEY

pytestmark = pytest.mark.local

HEADERS = {"x-api-key": LOCAL_API_KEY, "anthropic-version": "2023-06-01"}
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def get(server: Any, path: str, **kw: Any) -> requests.Response:
    return requests.get(server.url + path, headers=kw.pop("headers", HEADERS), timeout=30, **kw)


def test_the_models_list_names_the_loaded_model_in_the_api_s_shape(local_server):
    r = get(local_server, "/v1/models")
    assert r.status_code == 200 and r.headers["request-id"].startswith("req_")
    page = r.json()
    assert set(page) == {"data", "has_more", "first_id", "last_id"}
    assert page["has_more"] is False
    (info,) = page["data"]
    assert info["type"] == "model" and info["id"] == local_server.model.name
    assert info["display_name"]
    datetime.datetime.strptime(info["created_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert page["first_id"] == page["last_id"] == info["id"]
    assert get(local_server, f"/v1/models/{info['id']}").json() == info


def test_an_unknown_model_id_is_a_404_and_a_bad_limit_a_400(local_server):
    r = get(local_server, "/v1/models/claude-nothing")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    r = get(local_server, "/v1/models", params={"limit": "0"})
    assert r.status_code == 400 and "limit" in r.json()["error"]["message"]
    assert get(local_server, "/v1/models", headers={}).status_code == 401


def test_counted_tokens_are_the_input_tokens_a_message_reports(local_server):
    body = {"model": "m", "messages": MESSAGES, "system": "Be brief."}
    r = requests.post(
        local_server.url + "/v1/messages/count_tokens", json=body, headers=HEADERS, timeout=30
    )
    assert r.status_code == 200, r.text
    counted = r.json()
    assert set(counted) == {"input_tokens"} and counted["input_tokens"] > 0
    answer = requests.post(
        local_server.url + "/v1/messages",
        json={**body, "max_tokens": 1},
        headers=HEADERS,
        timeout=60,
    ).json()
    assert answer["usage"]["input_tokens"] == counted["input_tokens"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"model": "m"}, "messages: Field required"),
        ({"model": "m", "messages": MESSAGES, "max_tokens": 5}, "max_tokens: Extra inputs"),
        ({"model": "m", "messages": []}, "at least one message"),
    ],
)
def test_a_bad_count_tokens_body_is_a_400_naming_the_fault(local_server, body, words):
    r = requests.post(
        local_server.url + "/v1/messages/count_tokens", json=body, headers=HEADERS, timeout=30
    )
    assert r.status_code == 400 and words in r.json()["error"]["message"], r.text
