"""`Completion`: one answer (or one streamed delta) of `/v1/complete`, plus what we measured."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class Completion:
    """A completion as the API returns it, with timings measured on our side.

    In a stream, each event is a `Completion` whose ``completion`` is the *delta*; the
    stream's final `Completion` (``CompletionStream.get_final_completion()``) holds the
    joined text.
    """

    completion: str
    stop_reason: str | None = None
    model: str | None = None
    id: str | None = None
    type: str = "completion"
    #: The stop sequence that matched, when the server says (an undocumented extra field).
    stop: str | None = None
    #: ``request-id`` response header, for support requests.
    request_id: str | None = None
    #: Seconds from sending the request to the end of the answer (None for a stream delta).
    elapsed: float | None = None
    #: Seconds from sending the request to the first text (streaming only).
    time_to_first_token: float | None = None
    #: Token counts when the server reports them (the Messages API does; /v1/complete does not).
    usage: dict[str, int] | None = None
    #: The request body that produced this answer, minus the prompt (what a notebook records).
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: True when the caller stopped the stream (kernel interrupt, Stop button) before the end.
    interrupted: bool = False

    @property
    def text(self) -> str:
        """The completion text (same as ``.completion``)."""
        return self.completion

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of every field (what notebooks store in output metadata)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_wire(cls, data: dict[str, Any], request_id: str | None = None) -> Completion:
        """Build from a response body or stream event, tolerating missing and extra fields."""
        text = data.get("completion")
        return cls(
            completion=text if isinstance(text, str) else "",
            stop_reason=data.get("stop_reason"),
            model=data.get("model"),
            id=data.get("id") or data.get("log_id"),
            type=data.get("type") or "completion",
            stop=data.get("stop"),
            request_id=request_id,
        )

    @classmethod
    def from_body(cls, data: dict[str, Any], request_id: str | None = None) -> Completion | None:
        """A whole ``/v1/complete`` answer; None when it has no ``completion`` text.

        With ``usage`` when the server adds it, which the spec does not.
        """
        if not isinstance(data.get("completion"), str):
            return None
        result = cls.from_wire(data, request_id=request_id)
        result.usage = usage_of(data.get("usage"))
        return result


def usage_of(value: object) -> dict[str, int] | None:
    """A ``usage`` object's integer counts; None when ``value`` is not an object.

    The counts are ``input_tokens``, ``output_tokens``, ... The Messages API reports usage;
    ``/v1/complete`` does not, though some servers add it.
    """
    if not isinstance(value, dict):
        return None
    return {k: int(v) for k, v in value.items() if isinstance(v, int)}
