"""The wire: what both endpoints' requests and streams are made of, in one place.

The client (`jupyter_complete.client`, the Messages transport `jupyter_complete.messages`)
and the local server (`jupyter_complete.local.request`, `jupyter_complete.local.api`,
`jupyter_complete.local.http`) import their paths, versions, field lists, event names and
stop-reason rules from here, so the two sides cannot drift apart. Standard library only:
importing it loads nothing else.

Sources: Text Completions, https://docs.anthropic.com/en/api/complete (the request fields,
in the order of the published OpenAPI document's ``CompletionRequest``); Messages,
https://docs.anthropic.com/en/api/messages; the event streams of both,
https://docs.anthropic.com/en/api/streaming and
https://docs.anthropic.com/en/api/messages-streaming; versions,
https://docs.anthropic.com/en/api/versioning; how one maps onto the other,
https://docs.anthropic.com/en/api/migrating-from-text-completions-to-messages.
"""

from __future__ import annotations

from collections.abc import Sequence

# -- turns ------------------------------------------------------------------------------------
# A Text Completions prompt starts with a Human turn and ends with an Assistant turn
# (https://docs.anthropic.com/en/api/prompt-validation); HUMAN_PROMPT at the end of an answer
# is the model ending its turn.
HUMAN_PROMPT = "\n\nHuman:"
AI_PROMPT = "\n\nAssistant:"

# -- paths ------------------------------------------------------------------------------------
COMPLETE_PATH = "/v1/complete"
MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
MODELS_PATH = "/v1/models"

# -- versions (the ``anthropic-version`` header) ------------------------------------------------
#: The version the client sends (and an upstream ``anthropic`` engine is sent).
API_VERSION = "2023-06-01"
#: The first version: ``/v1/complete`` streams cumulative, unnamed events ending in ``[DONE]``.
LEGACY_VERSION = "2023-01-01"
#: Versions ``/v1/complete`` accepts.
COMPLETE_VERSIONS = (API_VERSION, LEGACY_VERSION)
#: Versions ``/v1/messages`` accepts: also 2026-10-21, a Messages-only version that the
#: current official SDK sends (the local server reads every version's bodies the same way).
MESSAGES_VERSIONS = (*COMPLETE_VERSIONS, "2026-10-21")

# -- request fields ---------------------------------------------------------------------------
#: The sampling fields both endpoints share, spelled the same way in both.
SHARED_FIELDS = ("stop_sequences", "temperature", "top_k", "top_p", "metadata", "stream")
#: ``POST /v1/complete``'s body (the spec's ``CompletionRequest``); nothing else is allowed.
COMPLETE_FIELDS = ("model", "prompt", "max_tokens_to_sample", *SHARED_FIELDS)
COMPLETE_REQUIRED = ("model", "prompt", "max_tokens_to_sample")
#: ``POST /v1/messages``'s body, as far as text completion uses it (no tools, no images).
MESSAGES_FIELDS = ("model", "messages", "max_tokens", "system", *SHARED_FIELDS)
MESSAGES_REQUIRED = ("model", "messages", "max_tokens")
#: ``POST /v1/messages/count_tokens``'s body.
COUNT_TOKENS_FIELDS = ("model", "messages", "system")
COUNT_TOKENS_REQUIRED = ("model", "messages")
#: The roles of ``messages``.
ROLES = ("user", "assistant")

# -- errors -----------------------------------------------------------------------------------
#: The ``error.type`` values of the API's error envelope
#: (https://docs.anthropic.com/en/api/errors).
ERROR_TYPES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
        "rate_limit_error",
        "api_error",
        "timeout_error",
        "overloaded_error",
        "billing_error",
    }
)

# -- event names --------------------------------------------------------------------------------
#: Both streams: a keep-alive, and the error that ends a stream that failed.
PING = "ping"
ERROR = "error"
#: ``/v1/complete``'s one event: a ``Completion`` whose ``completion`` is the new text.
COMPLETION = "completion"
#: ``/v1/messages``' events, in the order a stream sends them (``ping`` may come anywhere).
MESSAGE_START = "message_start"
CONTENT_BLOCK_START = "content_block_start"
CONTENT_BLOCK_DELTA = "content_block_delta"
CONTENT_BLOCK_STOP = "content_block_stop"
MESSAGE_DELTA = "message_delta"
MESSAGE_STOP = "message_stop"
#: The ``delta.type`` of a ``content_block_delta`` that carries text.
TEXT_DELTA = "text_delta"

# -- stop reasons -------------------------------------------------------------------------------
#: A Messages ``stop_reason`` in Text Completions terms. The model ending its turn is a
#: ``stop_sequence`` stop (at ``"\n\nHuman:"``, where the next turn would begin); other
#: reasons (``refusal``, ``pause_turn``, ...) have no Text Completions name and pass through.
TO_COMPLETE_STOP_REASON = {
    "end_turn": "stop_sequence",
    "stop_sequence": "stop_sequence",
    "max_tokens": "max_tokens",
}


def complete_stop_reason(reason: str | None) -> str | None:
    """A Messages ``stop_reason`` in Text Completions terms (`TO_COMPLETE_STOP_REASON`).

    Unknown reasons pass through unchanged, None stays None.
    """
    return None if reason is None else TO_COMPLETE_STOP_REASON.get(reason, reason)


def complete_stop(reason: str, sequence: str | None) -> tuple[str, str | None]:
    """A Messages stop as ``/v1/complete``'s.

    (``stop_reason``, ``stop_sequence``) becomes (``stop_reason``, ``stop``): ``end_turn``
    is a stop at ``"\\n\\nHuman:"`` (`HUMAN_PROMPT`), as the Text Completions API reports
    the end of a turn.
    """
    if reason == "end_turn":
        return "stop_sequence", HUMAN_PROMPT
    if reason == "max_tokens":
        return "max_tokens", None
    return TO_COMPLETE_STOP_REASON.get(reason, reason), sequence


def messages_stop(
    reason: str, stop: str | None, stop_sequences: Sequence[str]
) -> tuple[str, str | None]:
    """A Text Completions stop as the Messages API's, the inverse of `complete_stop`.

    (``stop_reason``, ``stop``) becomes (``stop_reason``, ``stop_sequence``).

    A stop at `HUMAN_PROMPT` that the request did not list in ``stop_sequences`` is the
    model ending its turn (``end_turn``); a stop at a listed sequence is ``stop_sequence``
    with it; ``max_tokens`` stays ``max_tokens``.
    """
    if reason == "stop_sequence":
        if stop == HUMAN_PROMPT and stop not in stop_sequences:
            return "end_turn", None
        return "stop_sequence", stop
    return reason, None if reason == "max_tokens" else stop


__all__ = [
    "AI_PROMPT",
    "HUMAN_PROMPT",
    "API_VERSION",
    "COMPLETE_FIELDS",
    "COMPLETE_PATH",
    "COMPLETE_REQUIRED",
    "COMPLETE_VERSIONS",
    "COUNT_TOKENS_FIELDS",
    "COUNT_TOKENS_PATH",
    "COUNT_TOKENS_REQUIRED",
    "ERROR_TYPES",
    "LEGACY_VERSION",
    "MESSAGES_FIELDS",
    "MESSAGES_PATH",
    "MESSAGES_REQUIRED",
    "MESSAGES_VERSIONS",
    "MODELS_PATH",
    "ROLES",
    "SHARED_FIELDS",
    "TO_COMPLETE_STOP_REASON",
    "complete_stop",
    "complete_stop_reason",
    "messages_stop",
]
