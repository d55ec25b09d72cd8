"""``client.completions``: the ``create`` call, shaped like the official SDK 0.x's.

The resource builds and checks the request body; the `jupyter_complete.client.Client` that
owns it sends it (`Completions` gets the client's send function, not the client, so this
module needs nothing from `jupyter_complete.client`). Fields and their ranges:
https://docs.anthropic.com/en/api/complete.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypedDict, overload

from .completion import Completion
from .settings import check_params
from .streaming import CompletionStream

if TYPE_CHECKING:  # PEP 692 ``**kwargs`` typing; annotations are never evaluated at run time
    if sys.version_info >= (3, 11):
        from typing import Unpack
    else:
        from typing_extensions import Unpack

Api = Literal["complete", "messages", "auto"]


class CreateParams(TypedDict, total=False):
    """The optional keywords of `Completions.create` (beside ``prompt`` and ``stream``)."""

    #: The model; default: the client's `Client.default_model`.
    model: str | None
    #: Most tokens to generate (default 256).
    max_tokens_to_sample: int
    #: Strings that end the completion when generated (not included in the text).
    stop_sequences: list[str] | None
    #: Sampling: temperature in [0, 1], top_k >= 0 (0: no cut), top_p in [0, 1].
    temperature: float | None
    top_k: int | None
    top_p: float | None
    #: ``{"user_id": ...}``: an opaque id of the end user, at most 256 characters.
    metadata: dict[str, Any] | None
    #: Beta features, sent as the ``anthropic-beta`` header.
    betas: list[str] | None
    #: Read timeout in seconds for this call (default: the client's).
    timeout: float | None
    #: The transport for this call (default: the client's ``api``).
    api: Api | None


#: How `Completions` hands a checked body to its client: ``Client._complete(body, *,
#: headers, stream, timeout, api)``.
Send = Callable[..., "Completion | CompletionStream"]


class Completions:
    """``client.completions``: the ``create`` call, shaped like the official SDK's.

    Args:
        send: the client's sender of a checked body.
        default_model: the ``model`` used when a call names none (asked at each call).
    """

    def __init__(self, send: Send, default_model: Callable[[], str]) -> None:
        self._send = send
        self._default_model = default_model

    @overload
    def create(
        self, *, prompt: str, stream: Literal[False] = False, **params: Unpack[CreateParams]
    ) -> Completion: ...

    @overload
    def create(
        self, *, prompt: str, stream: Literal[True], **params: Unpack[CreateParams]
    ) -> CompletionStream: ...

    def create(
        self, *, prompt: str, stream: bool = False, **params: Unpack[CreateParams]
    ) -> Completion | CompletionStream:
        """Send a completion request; a `Completion`, or a `CompletionStream` if ``stream``.

        Keywords (`CreateParams`): ``model``, ``max_tokens_to_sample`` (default 256),
        ``stop_sequences``, ``temperature``, ``top_k``, ``top_p``, ``metadata``, ``betas``,
        ``timeout`` and ``api``. Parameters are checked against the spec's ranges before
        anything is sent; a bad one raises `~jupyter_complete.errors.InvalidParameterError`.
        Unset (None) values are left out of the body, so the server's defaults apply.
        ``betas`` go in the ``anthropic-beta`` header; ``timeout`` (seconds) replaces the
        client's read timeout for this call; ``api`` overrides the client's transport for
        this call (see `Client`).
        Raises the `~jupyter_complete.errors.APIError` subclasses for a failed request.
        """
        unknown = set(params) - set(CreateParams.__annotations__)
        if unknown:
            # What Python says for an unknown keyword of an explicit signature.
            raise TypeError(
                f"Completions.create() got an unexpected keyword argument {min(unknown)!r}"
            )
        stops = params.get("stop_sequences")
        body: dict[str, Any] = {
            "model": params.get("model") or self._default_model(),
            "prompt": prompt,
            "max_tokens_to_sample": params.get("max_tokens_to_sample", 256),
            "stop_sequences": list(stops) if stops else None,
            **{k: params.get(k) for k in ("temperature", "top_k", "top_p", "metadata")},
        }
        body = {k: v for k, v in body.items() if v is not None}
        check_params(body)
        if stream:
            body["stream"] = True
        betas = params.get("betas")
        headers = {"anthropic-beta": ",".join(betas)} if betas else {}
        return self._send(
            body,
            headers=headers,
            stream=stream,
            timeout=params.get("timeout"),
            api=params.get("api"),
        )


__all__ = ["Api", "Completions"]
