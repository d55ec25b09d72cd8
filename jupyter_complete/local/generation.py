"""`Generation`: one completion being produced, a token at a time, as text deltas.

Each step samples a token from the model's logits with `jupyter_complete.sampling` (the
same functions the explorer shows), decodes its bytes (a character split across tokens
waits for its last byte), and passes the text through the stop-sequence matcher. The
consumer pulls one step at a time, so stopping early (a client that hung up) is just not
asking for the next token.

`Generation` knows a model only through `DecodingModel` (what `LocalModel` offers) and a
request only through `SamplingParams` (what a validated request carries), so its stop,
token-limit, split-UTF-8 and end-of-turn rules are tested without llama.cpp.
"""

from __future__ import annotations

import codecs
import dataclasses
from collections.abc import Generator, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ..sampling import sample, stages
from ..wire import HUMAN_PROMPT
from .stops import StopMatcher

STOP_SEQUENCE = "stop_sequence"
MAX_TOKENS = "max_tokens"


class DecodingModel(Protocol):
    """What `Generation` uses of a model (`jupyter_complete.local.LocalModel` has it all).

    ``prime`` is the prefill (evaluate the prompt) and ``advance`` the decode step (append
    one token); both return the next-token logits, shape ``(n_vocab,)``, which may be a
    view the next evaluation overwrites. ``lock`` is held around the whole sequence.
    """

    @property
    def lock(self) -> AbstractContextManager[Any]:
        """Held while the model evaluates tokens (re-entrant)."""

    @property
    def n_ctx(self) -> int:
        """Context window in tokens."""

    @property
    def context_used(self) -> int:
        """Tokens in the context now (prompt plus what was generated)."""

    def prime(
        self, tokens: Sequence[int], reuse_limit: int | None = None, owner: object | None = None
    ) -> npt.NDArray[np.float32]:
        """Evaluate ``tokens`` as the whole context; the next-token logits."""

    def advance(self, token: int) -> npt.NDArray[np.float32]:
        """Append ``token`` to the context; the next-token logits."""

    def is_end(self, token: int) -> bool:
        """True for the model's end-of-generation tokens (``<|im_end|>``, EOS ...)."""

    def token_bytes(self, token: int) -> bytes:
        """The bytes ``token`` stands for (empty for control tokens)."""


class SamplingParams(Protocol):
    """What `Generation` reads of a request (a validated ``GenerationRequest`` has it all).

    ``temperature``, ``top_k`` and ``top_p`` are the API's samplers, applied in that order
    (`jupyter_complete.sampling.stages`).
    """

    @property
    def max_tokens(self) -> int:
        """The most tokens to generate (>= 1)."""

    @property
    def temperature(self) -> float | None:
        """The sampling temperature (None means 1; 0 is greedy)."""

    @property
    def top_k(self) -> int | None:
        """Keep only the ``top_k`` likeliest tokens (None or 0: no cut)."""

    @property
    def top_p(self) -> float | None:
        """Keep the fewest likeliest tokens whose total reaches ``top_p`` (None: no cut)."""

    @property
    def stop_sequences(self) -> tuple[str, ...]:
        """Where to end the text, besides the built-in ``"\\n\\nHuman:"``."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Sampling:
    """`SamplingParams` for a caller that has no request object (tests, notebooks)."""

    max_tokens: int
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    stop_sequences: tuple[str, ...] = ()


class Generation:
    """Iterate for text deltas (one per sampled token, possibly ""); then read the outcome.

    After the iteration ends, `stop_reason` is ``"stop_sequence"`` (a stop sequence was
    generated, or the model ended its turn, which in the wire format is where the next
    "\\n\\nHuman:" would begin) or ``"max_tokens"`` (``max_tokens`` reached, or the context
    window is full); `stop` names the stop sequence. `end_of_turn` tells the two kinds of
    ``"stop_sequence"`` apart for the Messages API, which reports the model ending its own
    turn as ``end_turn``. Returned text never contains a stop sequence. The model's lock is
    held from the first step until the iteration ends or the generation is closed.
    """

    def __init__(
        self,
        model: DecodingModel,
        prompt_tokens: Sequence[int],
        sampling: SamplingParams,
        *,
        rng: np.random.Generator | None = None,
        reuse_limit: int | None = None,
        owner: object | None = None,
    ) -> None:
        """Set up (nothing is evaluated until the first step).

        Args:
            model: the model to sample from (`DecodingModel`).
            prompt_tokens: the prompt, as the model's tokens.
            sampling: max_tokens, temperature, top_k, top_p and stop_sequences (a request,
                or a `Sampling`).
            rng: where random draws come from (default: a fresh, unseeded generator).
            reuse_limit: the most prompt tokens of the model's KV cache that may be reused,
                unless ``owner`` filled it (`jupyter_complete.local.LocalModel.prime`).
            owner: an opaque token for whose prompt this is (the server passes one per
                client connection; `jupyter_complete.local.LocalModel.prime`).
        """
        self.model = model
        self.prompt_tokens = list(prompt_tokens)
        self.sampling = sampling
        self.rng = rng if rng is not None else np.random.default_rng()
        self.reuse_limit = reuse_limit
        self.owner = owner
        #: Token ids sampled so far (the end-of-turn token is not included).
        self.tokens: list[int] = []
        #: "stop_sequence" or "max_tokens" once finished, else None.
        self.stop_reason: str | None = None
        #: The stop sequence that ended the text (None for max_tokens).
        self.stop: str | None = None
        #: True when the model ended its turn (its end-of-turn token, or the built-in
        #: "\n\nHuman:" stop when the caller did not ask for that one), rather than a stop
        #: sequence of the caller's or the token limit.
        self.end_of_turn = False
        self._deltas: list[str] = []
        self._steps: Generator[str, None, None] | None = None

    def __iter__(self) -> Iterator[str]:
        if self._steps is None:
            self._steps = self._run()
        return self._steps

    @property
    def text(self) -> str:
        """The text yielded so far: the whole completion once the iteration has ended.

        A property that never generates, like `jupyter_complete.CompletionStream.text`; to
        run to the end, iterate (``"".join(generation)``).
        """
        return "".join(self._deltas)

    def close(self) -> None:
        """Stop generating and free the model (idempotent)."""
        if self._steps is not None:
            self._steps.close()  # runs the generator's `finally`, releasing the lock

    def _finish(self, reason: str, stop: str | None, *, end_of_turn: bool = False) -> None:
        self.stop_reason, self.stop, self.end_of_turn = reason, stop, end_of_turn

    def _matched(self, stop: str) -> None:
        # "\n\nHuman:" is where a transcript's next turn begins: unless the caller listed it
        # among their own stop sequences, matching it means the model ended its turn.
        self._finish(
            STOP_SEQUENCE,
            stop,
            end_of_turn=stop == HUMAN_PROMPT and stop not in self.sampling.stop_sequences,
        )

    def _sent(self, delta: str) -> str:
        """``delta``, kept for `text` on its way out."""
        if delta:
            self._deltas.append(delta)
        return delta

    def _run(self) -> Generator[str, None, None]:
        model, sampling = self.model, self.sampling
        matcher = StopMatcher((HUMAN_PROMPT, *sampling.stop_sequences))
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        with model.lock:
            logits = model.prime(self.prompt_tokens, self.reuse_limit, self.owner)
            delta = ""
            for step in range(sampling.max_tokens):
                if sampling.temperature == 0:
                    # Greedy: exactly what stages() + sample() give (a one-hot on the argmax,
                    # drawn without randomness), without a softmax over the vocabulary.
                    token = int(np.argmax(logits))
                else:
                    staged = stages(logits, sampling.temperature, sampling.top_k, sampling.top_p)
                    token = sample(staged.final, self.rng)
                if model.is_end(token):
                    # ChatML's end of turn: the wire format's next "\n\nHuman:" goes here.
                    self._finish(STOP_SEQUENCE, HUMAN_PROMPT, end_of_turn=True)
                    break
                self.tokens.append(token)
                delta = matcher.feed(decoder.decode(model.token_bytes(token)))
                if matcher.matched is not None:
                    self._matched(matcher.matched)
                    yield self._sent(delta)
                    return
                if step + 1 == sampling.max_tokens or model.context_used >= model.n_ctx:
                    # The last token: its text goes out with the flush below, and it is not
                    # evaluated (nothing would read its logits).
                    self._finish(MAX_TOKENS, None)
                    break
                yield self._sent(delta)
                delta = ""
                logits = model.advance(token)
            # No more text can complete a stop sequence: release what was held back.
            tail = delta + matcher.feed(decoder.decode(b"", final=True))
            if matcher.matched is not None:
                self._matched(matcher.matched)
            yield self._sent(tail + matcher.flush())


__all__ = [
    "MAX_TOKENS",
    "STOP_SEQUENCE",
    "DecodingModel",
    "Generation",
    "Sampling",
    "SamplingParams",
]
