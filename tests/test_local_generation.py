"""`Generation`'s rules (stops, token limit, split UTF-8, end of turn) against a scripted model.

No llama.cpp: `ScriptedModel` satisfies `DecodingModel` and always puts its one-hot logit on
the next token of its script, so greedy decoding (and any sampler that keeps the top token)
walks the script, and every delta, stop reason and token list is known exactly.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest
from fixtures_local import lock_is_free

from jupyter_complete.local.api.backend import Final
from jupyter_complete.local.builtin import final_of
from jupyter_complete.local.generation import Generation, Sampling

HUMAN = "\n\nHuman:"


class ScriptedModel:
    """Token ``i`` stands for ``pieces[i]``; after them comes the end-of-turn token.

    The logits after ``k`` generated tokens are one-hot on token ``k`` (on the end-of-turn
    token once the script is spent). Like `LocalModel`, it refuses to grow the context past
    ``n_ctx`` and to evaluate an empty prompt.
    """

    def __init__(self, pieces: Sequence[bytes], *, n_ctx: int = 1024) -> None:
        self.pieces = list(pieces)
        self.end = len(self.pieces)
        self.lock = threading.RLock()
        self._n_ctx = n_ctx
        self.prompt: list[int] = []
        self.primed: tuple[list[int], int | None, object | None] | None = None
        #: Tokens appended with `advance` (evaluated), in order.
        self.advanced: list[int] = []

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def context_used(self) -> int:
        return len(self.prompt) + len(self.advanced)

    def _logits(self) -> npt.NDArray[np.float32]:
        logits = np.zeros(self.end + 1, dtype=np.float32)
        logits[min(len(self.advanced), self.end)] = 10.0
        return logits

    def prime(
        self, tokens: Sequence[int], reuse_limit: int | None = None, owner: object | None = None
    ) -> npt.NDArray[np.float32]:
        assert tokens, "cannot evaluate an empty prompt"
        self.prompt, self.advanced = list(tokens), []
        self.primed = (list(tokens), reuse_limit, owner)
        return self._logits()

    def advance(self, token: int) -> npt.NDArray[np.float32]:
        assert self.context_used < self.n_ctx, "the context window is full"
        self.advanced.append(token)
        return self._logits()

    def is_end(self, token: int) -> bool:
        return token == self.end

    def token_bytes(self, token: int) -> bytes:
        return self.pieces[token]


def run(
    pieces: Sequence[bytes], *, n_ctx: int = 1024, **sampling: object
) -> tuple[Generation, list[str], ScriptedModel]:
    """Generate from a `ScriptedModel` greedily (unless told otherwise) until the end."""
    model = ScriptedModel(pieces, n_ctx=n_ctx)
    params = Sampling(**{"max_tokens": 100, "temperature": 0.0, **sampling})
    generation = Generation(model, [101, 102], params)
    return generation, list(generation), model


def test_a_stop_sequence_split_across_tokens_ends_the_text_just_before_it():
    g, deltas, model = run(
        [b"Hello", b" wor", b"ld E", b"N", b"D and more"], stop_sequences=("END",)
    )
    # "E" and "EN" are held back (they may start "END"), and never sent.
    assert deltas == ["Hello", " wor", "ld ", "", ""]
    assert g.text == "Hello world "
    assert (g.stop_reason, g.stop, g.end_of_turn) == ("stop_sequence", "END", False)
    assert g.tokens == [0, 1, 2, 3, 4]
    assert model.advanced == [0, 1, 2, 3]  # the token that completed the stop is not evaluated


def test_of_two_stops_the_one_that_starts_first_wins():
    g, _, _ = run([b"a STOP b END"], stop_sequences=("END", "STOP"))
    assert (g.text, g.stop) == ("a ", "STOP")


def test_max_tokens_ends_the_text_and_its_last_token_is_not_evaluated():
    g, deltas, model = run([b"one", b" two", b" three", b" four"], max_tokens=2)
    assert deltas == ["one", " two"]
    assert g.text == "one two"
    assert (g.stop_reason, g.stop, g.end_of_turn) == ("max_tokens", None, False)
    assert g.tokens == [0, 1]
    assert model.advanced == [0]


def test_a_full_context_window_ends_the_text_as_max_tokens():
    g, _, model = run([b"a", b"b", b"c", b"d", b"e"], n_ctx=4)  # a 2-token prompt
    assert (g.stop_reason, g.stop) == ("max_tokens", None)
    assert g.text == "abc"
    assert model.context_used == model.n_ctx


def test_a_character_split_across_two_tokens_is_sent_whole_with_the_second():
    # "é" is C3 A9 in UTF-8: the first token's byte alone decodes to nothing yet.
    g, deltas, _ = run([b"caf", b"\xc3", b"\xa9", b"!"])
    assert deltas == ["caf", "", "é", "!", ""]
    assert g.text == "café!"
    assert g.tokens == [0, 1, 2, 3]


def test_a_character_cut_by_the_token_limit_ends_as_a_replacement_character():
    g, _, _ = run([b"caf", b"\xc3", b"\xa9"], max_tokens=2)
    assert g.text == "caf\ufffd"
    assert g.stop_reason == "max_tokens"


def test_the_end_of_turn_token_is_the_built_in_stop_and_is_not_a_token_of_the_text():
    g, deltas, model = run([b"Hi", b"!"])
    assert deltas == ["Hi", "!", ""]
    assert (g.text, g.stop_reason, g.stop, g.end_of_turn) == ("Hi!", "stop_sequence", HUMAN, True)
    assert g.tokens == [0, 1]
    assert model.advanced == [0, 1]


@pytest.mark.parametrize(
    ("stop_sequences", "end_of_turn"),
    [((), True), ((HUMAN,), False), (("END", HUMAN), False)],
    ids=["built-in", "asked-for", "asked-for-among-others"],
)
def test_generated_human_prompt_text_is_the_end_of_turn_unless_the_caller_asked_for_it(
    stop_sequences: tuple[str, ...], end_of_turn: bool
):
    g, deltas, _ = run([b"Sure.", b"\n\n", b"Human", b": next?"], stop_sequences=stop_sequences)
    assert deltas == ["Sure.", "", "", ""]
    assert (g.text, g.stop_reason, g.stop) == ("Sure.", "stop_sequence", HUMAN)
    assert g.end_of_turn is end_of_turn


def test_text_held_back_as_a_possible_stop_is_released_when_the_generation_ends():
    g, deltas, _ = run([b"a", b"\n"], max_tokens=2)
    assert deltas == ["a", "\n"]
    assert (g.text, g.stop_reason) == ("a\n", "max_tokens")


def test_a_sampler_that_keeps_only_the_top_token_walks_the_same_path_as_greedy():
    pieces = [b"x", b"y", b"z"]
    greedy, _, _ = run(pieces)
    for sampler in ({"top_k": 1}, {"top_p": 0.01}):
        sampled, _, _ = run(pieces, temperature=1.0, **sampler)
        assert (sampled.text, sampled.tokens) == (greedy.text, greedy.tokens) == ("xyz", [0, 1, 2])


def test_the_prompt_and_the_cache_owner_reach_the_model_unchanged():
    model = ScriptedModel([b"x"])
    owner = object()
    generation = Generation(model, (7, 8, 9), Sampling(max_tokens=1), reuse_limit=2, owner=owner)
    assert generation.text == ""  # nothing runs before the first step
    assert model.primed is None
    list(generation)
    assert model.primed == ([7, 8, 9], 2, owner)


def test_a_closed_generation_releases_the_model_and_keeps_what_it_sent():
    model = ScriptedModel([b"a", b"b", b"c"])
    g = Generation(model, [1], Sampling(max_tokens=10, temperature=0.0))
    assert next(iter(g)) == "a"

    assert not lock_is_free(model.lock)
    g.close()
    g.close()  # idempotent
    assert lock_is_free(model.lock)
    assert (g.text, g.stop_reason) == ("a", None)


@pytest.mark.parametrize(
    ("pieces", "sampling", "final"),
    [
        ([b"done"], {}, Final("end_turn", None, 2, 1)),
        ([b"a", b"\n\nHuman:"], {}, Final("end_turn", None, 2, 2)),
        ([b"a", b"\n\nHuman:"], {"stop_sequences": (HUMAN,)}, Final("stop_sequence", HUMAN, 2, 2)),
        ([b"a", b"END"], {"stop_sequences": ("END",)}, Final("stop_sequence", "END", 2, 2)),
        ([b"a", b"b", b"c"], {"max_tokens": 2}, Final("max_tokens", None, 2, 2)),
    ],
)
def test_a_finished_generation_maps_to_the_messages_api_stop_reasons(
    pieces: list[bytes], sampling: dict[str, object], final: Final
):
    g, _, _ = run(pieces, **sampling)
    assert final_of(g, input_tokens=2) == final


def test_generation_imports_without_llama_cpp():
    import subprocess
    import sys

    code = (
        "import sys; from jupyter_complete.local.generation import Generation, Sampling; "
        "print(Generation.__module__, 'llama_cpp' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split() == ["jupyter_complete.local.generation", "False"]
