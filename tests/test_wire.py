"""`jupyter_complete.wire`: the names both sides share, checked against the spec and each other."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_complete import wire
from jupyter_complete.wire import HUMAN_PROMPT

SPEC = json.loads((Path(__file__).parent / "data" / "complete-openapi.json").read_text())


def test_the_complete_fields_are_the_specs_completion_request_fields() -> None:
    schema = SPEC["components"]["schemas"]["CompletionRequest"]
    assert set(wire.COMPLETE_FIELDS) == set(schema["properties"])
    assert set(wire.COMPLETE_REQUIRED) == set(schema["required"])
    assert len(wire.COMPLETE_FIELDS) == len(set(wire.COMPLETE_FIELDS))


def test_the_complete_path_is_the_specs_only_path() -> None:
    assert list(SPEC["paths"]) == [wire.COMPLETE_PATH]


def test_both_endpoints_share_the_sampling_fields_and_require_only_listed_ones() -> None:
    for fields, required in (
        (wire.COMPLETE_FIELDS, wire.COMPLETE_REQUIRED),
        (wire.MESSAGES_FIELDS, wire.MESSAGES_REQUIRED),
        (wire.COUNT_TOKENS_FIELDS, wire.COUNT_TOKENS_REQUIRED),
    ):
        assert set(required) <= set(fields)
    assert set(wire.SHARED_FIELDS) <= set(wire.COMPLETE_FIELDS) & set(wire.MESSAGES_FIELDS)


def test_every_endpoint_accepts_the_version_the_client_sends() -> None:
    assert wire.API_VERSION in wire.COMPLETE_VERSIONS
    assert set(wire.COMPLETE_VERSIONS) <= set(wire.MESSAGES_VERSIONS)
    assert wire.LEGACY_VERSION in wire.COMPLETE_VERSIONS


@pytest.mark.parametrize(
    ("messages_stop", "complete_stop"),
    [
        (("end_turn", None), ("stop_sequence", HUMAN_PROMPT)),
        (("stop_sequence", "END"), ("stop_sequence", "END")),
        (("max_tokens", None), ("max_tokens", None)),
    ],
)
def test_stops_map_to_text_completions_terms_and_back(
    messages_stop: tuple[str, str | None], complete_stop: tuple[str, str | None]
) -> None:
    assert wire.complete_stop(*messages_stop) == complete_stop
    assert wire.messages_stop(*complete_stop, stop_sequences=["END"]) == messages_stop


def test_a_listed_human_prompt_stop_stays_a_stop_sequence_both_ways() -> None:
    listed = [HUMAN_PROMPT]
    assert wire.messages_stop("stop_sequence", HUMAN_PROMPT, listed) == (
        "stop_sequence",
        HUMAN_PROMPT,
    )
    assert wire.complete_stop("stop_sequence", HUMAN_PROMPT) == ("stop_sequence", HUMAN_PROMPT)


def test_every_messages_stop_reason_has_a_text_completions_name_and_others_pass() -> None:
    assert set(wire.TO_COMPLETE_STOP_REASON.values()) == {"stop_sequence", "max_tokens"}
    assert wire.complete_stop_reason("refusal") == "refusal"
    assert wire.complete_stop("pause_turn", None) == ("pause_turn", None)


def test_importing_the_wire_loads_nothing_outside_the_standard_library() -> None:
    # Compared with what the interpreter had loaded before (site hooks, editable finders).
    code = (
        "import sys; before = set(sys.modules); import jupyter_complete.wire; "
        "top = {name.partition('.')[0] for name in sys.modules.keys() - before}; "
        "print(sorted(top - set(sys.stdlib_module_names) - {'jupyter_complete'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
