"""Upstream engines: our ``/v1/complete`` and ``/v1/messages`` in front of a real serving engine.

``jupyter-complete serve --upstream URL`` keeps everything clients see (validation, key,
envelopes, SSE framing, pings, stop handling, ``stop_reason``) and takes the text from an
engine that batches many requests at once: llama.cpp's ``llama-server`` (``--parallel``
slots), vLLM, Ollama, llama-cpp-python's server, or LiteLLM's router in front of several.
Two engine protocols are spoken:

``openai`` (the default), ``POST {URL}/v1/chat/completions`` with ``stream: true``:
  - the conversation becomes chat messages: the text before the first Human turn is the
    ``system`` message, Human/Assistant turns are ``user``/``assistant`` messages, and a
    prefill is a final ``assistant`` message sent with ``continue_final_message: true`` and
    ``add_generation_prompt: false`` (the names llama-server and vLLM read), so the engine
    continues it through the model's own chat template;
  - sampling keeps the API's meaning: ``temperature`` (default 1; 0 is greedy), ``top_k``
    (0 = no cut), ``top_p`` (default 1), applied in that order (``samplers`` for
    llama-server), and the engine's own extra samplers are turned off: ``min_p: 0``,
    ``repeat_penalty: 1`` (llama.cpp's and llama-cpp-python's defaults are 0.05 and, for
    llama-cpp-python, 1.1); engines ignore the fields they do not know;
  - ``max_tokens`` is the request's;
  - stop sequences (the request's, and the built-in ``"\\n\\nHuman:"``) are matched here, on
    the engine's text, and the engine's request is closed the moment one appears (the
    engine frees its slot at once). The OpenAI protocol does not say which stop sequence
    ended a text (``finish_reason`` is ``"stop"`` for a stop string and for the model's end
    of turn alike), so leaving the matching to the engine would lose ``stop_reason``
    ``stop_sequence`` and the matched ``stop`` that our clients read.

``anthropic``, ``POST {URL}/v1/messages`` with ``stream: true`` (llama-server, vLLM,
LiteLLM, or another Messages API): the request goes as the Messages API spells it, with the
built-in ``"\\n\\nHuman:"`` added to ``stop_sequences``. The engine's extra samplers cannot be
set through this protocol: start llama-server with ``--min-p 0 --top-k 0 --samplers
"temperature;top_k;top_p"`` (see the README).

Either way, an engine that echoes the prefill at the start of its answer (llama-server's
``/v1/messages`` does; the real API does not) has the echo removed (`PrefillEcho`).

Concurrency passes through: there is no queue in front of the engine (it has its own);
at most ``max_outstanding`` requests are in flight, past which clients get 529
``overloaded_error``. The engine's error statuses map to the API's envelopes
(`rejection_for`). A job's `aclose` closes its engine response, which cancels the engine's
work on it.

Modules, one noun each: `config` (`UpstreamConfig`), `openai` and `anthropic` (the two
protocols' translation, pure functions tested without an engine), `answer` (what the
engine's events say, the prefill echo, the `Final` record), `errors` (the engine's errors
as the API's) and `backend` (`UpstreamBackend` and its jobs). httpx and httpx-sse (the
``local`` extra) are imported only when a backend is created.
"""

from __future__ import annotations

from .answer import PrefillEcho, final_for, matched_final
from .anthropic import anthropic_body, anthropic_event
from .backend import UpstreamBackend, UpstreamJob
from .config import UPSTREAM_APIS, UpstreamConfig
from .errors import rejection_for
from .openai import chat_messages, openai_body, openai_chunk

__all__ = [
    "UPSTREAM_APIS",
    "PrefillEcho",
    "UpstreamBackend",
    "UpstreamConfig",
    "UpstreamJob",
    "anthropic_body",
    "anthropic_event",
    "chat_messages",
    "final_for",
    "matched_final",
    "openai_body",
    "openai_chunk",
    "rejection_for",
]
