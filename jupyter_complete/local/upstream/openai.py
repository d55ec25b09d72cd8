"""The OpenAI chat-completions protocol (``POST /v1/chat/completions``), both ways.

`openai_body` is the engine's request body for one of ours (the API's sampling, the engine's
extra samplers off: see `jupyter_complete.local.upstream`), and `openai_chunk` reads one
streamed ``chat.completion.chunk`` into a `Piece`. The protocol is OpenAI's
(https://platform.openai.com/docs/api-reference/chat/create), with the extensions
llama-server and vLLM read (``top_k``, ``min_p``, ``continue_final_message``...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .answer import Piece, int_or_none
from .errors import error_fields

if TYPE_CHECKING:
    from ...prompt import Conversation
    from ..request import GenerationRequest

#: The order llama.cpp applies the API's samplers in: temperature first, so that top_p's
#: nucleus is taken from the distribution the temperature has shaped (the API's meaning,
#: and `jupyter_complete.sampling`'s order); llama.cpp's own default applies it last.
LLAMA_CPP_SAMPLERS = ("temperature", "top_k", "top_p")


def chat_messages(conversation: Conversation) -> list[dict[str, str]]:
    """OpenAI chat ``messages`` for a conversation.

    System, turns, then the prefill (if any) as a final ``assistant`` message for the engine
    to continue.
    """
    messages: list[dict[str, str]] = []
    if conversation.system:
        messages.append({"role": "system", "content": conversation.system})
    messages += [{"role": role, "content": text} for role, text in conversation.turns]
    if conversation.prefill:
        messages.append({"role": "assistant", "content": conversation.prefill})
    return messages


def openai_body(request: GenerationRequest, model: str, *, stream: bool = True) -> dict[str, Any]:
    """The ``/v1/chat/completions`` body for ``request`` (see `jupyter_complete.local.upstream`).

    ``temperature``, ``top_k`` and ``top_p`` are always sent, with the API's defaults (1, no
    cut, 1) when the request leaves them unset, because engines' own defaults differ
    (llama.cpp: 0.8, 40, 0.95).
    """
    body: dict[str, Any] = {
        "model": model,
        "messages": chat_messages(request.conversation),
        "max_tokens": request.max_tokens,
        "temperature": 1.0 if request.temperature is None else request.temperature,
        "top_k": 0 if request.top_k is None else request.top_k,
        "top_p": 1.0 if request.top_p is None else request.top_p,
        "min_p": 0.0,
        "repeat_penalty": 1.0,
        "samplers": list(LLAMA_CPP_SAMPLERS),
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    if request.conversation.prefill:
        body["continue_final_message"] = True
        body["add_generation_prompt"] = False
    user = (request.metadata or {}).get("user_id")
    if user:
        body["user"] = user
    return body


def openai_chunk(data: Mapping[str, Any]) -> Piece:
    """Read one ``chat.completion.chunk`` (or an ``{"error": ...}`` event)."""
    piece = Piece()
    error = data.get("error")
    if error is not None:
        piece.error = error_fields(error, "api_error")
        return piece
    for choice in data.get("choices") or ():
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            continue
        delta = choice.get("delta") or {}
        content = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(content, str):
            piece.text += content
        finish = choice.get("finish_reason")
        if isinstance(finish, str):
            piece.finish = finish
            # vLLM names the stop string that matched (its `stop_reason` extension).
            named = choice.get("stop_reason")
            if isinstance(named, str):
                piece.stop_sequence = named
    usage = data.get("usage")
    if isinstance(usage, dict):
        piece.input_tokens = int_or_none(usage.get("prompt_tokens"))
        piece.output_tokens = int_or_none(usage.get("completion_tokens"))
    return piece


__all__ = ["LLAMA_CPP_SAMPLERS", "chat_messages", "openai_body", "openai_chunk"]
