"""`Generation`: one completion being produced, a token at a time, as text deltas.

Each step samples a token from the model's logits with `jupyter_complete.sampling` (the
same functions the explorer shows), decodes its bytes (a character split across tokens
waits for its last byte), and passes the text through the stop-sequence matcher. The
consumer pulls one step at a time, so stopping early (a client that hung up) is just not
asking for the next token.
"""

from __future__ import annotations

import codecs
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING

import numpy as np

from .._constants import HUMAN_PROMPT
from ..sampling import sample, stages
from .stops import StopMatcher

if TYPE_CHECKING:
    from .model import LocalModel

STOP_SEQUENCE = "stop_sequence"
MAX_TOKENS = "max_tokens"


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
        model: LocalModel,
        prompt_tokens: list[int],
        *,
        max_tokens: int,
        temperature: float | None,
        top_k: int | None,
        top_p: float | None,
        stop_sequences: tuple[str, ...],
        rng: np.random.Generator,
        reuse_limit: int | None = None,
        owner: object | None = None,
    ) -> None:
        self.model = model
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p
        self.stop_sequences = stop_sequences
        self.rng = rng
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
        self._steps: Generator[str, None, None] | None = None

    def __iter__(self) -> Iterator[str]:
        if self._steps is None:
            self._steps = self._run()
        return self._steps

    def text(self) -> str:
        """Run to the end and return the whole completion."""
        return "".join(self)

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
            end_of_turn=stop == HUMAN_PROMPT and stop not in self.stop_sequences,
        )

    def _run(self) -> Generator[str, None, None]:
        model = self.model
        matcher = StopMatcher((HUMAN_PROMPT, *self.stop_sequences))
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        with model.lock:
            logits = model.prime(self.prompt_tokens, self.reuse_limit, self.owner)
            delta = ""
            for step in range(self.max_tokens):
                if self.temperature == 0:
                    # Greedy: exactly what stages() + sample() give (a one-hot on the argmax,
                    # drawn without randomness), without a softmax over the vocabulary.
                    token = int(np.argmax(logits))
                else:
                    staged = stages(logits, self.temperature, self.top_k, self.top_p)
                    token = sample(staged.final, self.rng)
                if model.is_end(token):
                    # ChatML's end of turn: the wire format's next "\n\nHuman:" goes here.
                    self._finish(STOP_SEQUENCE, HUMAN_PROMPT, end_of_turn=True)
                    break
                self.tokens.append(token)
                delta = matcher.feed(decoder.decode(model.token_bytes(token)))
                if matcher.matched is not None:
                    self._matched(matcher.matched)
                    yield delta
                    return
                if step + 1 == self.max_tokens or model.context_used >= model.n_ctx:
                    # The last token: its text goes out with the flush below, and it is not
                    # evaluated (nothing would read its logits).
                    self._finish(MAX_TOKENS, None)
                    break
                yield delta
                delta = ""
                logits = model.advance(token)
            # No more text can complete a stop sequence: release what was held back.
            tail = delta + matcher.feed(decoder.decode(b"", final=True))
            if matcher.matched is not None:
                self._matched(matcher.matched)
            yield tail + matcher.flush()


__all__ = ["MAX_TOKENS", "STOP_SEQUENCE", "Generation"]
