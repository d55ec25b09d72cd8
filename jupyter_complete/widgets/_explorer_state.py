"""The explorer's state: a prompt, the tokens appended to it, and the next-token distribution.

`ExplorerState` holds what `jupyter_complete.widgets.explorer.Explorer` shows, without any
widget: the prompt's tokens (through the model's chat template, as the local server renders
them), the generated tokens and their `Step` records, the logits (cached per context) and
their `jupyter_complete.sampling.stages` at the current settings, and the top `Candidate`
tokens. Sampling uses the same functions as the server, so what is shown is what it does.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .. import prompt as prompts
from .._constants import ENV_API_KEY, ENV_BASE_URL
from ..sampling import Stages, entropy_bits, sample, stages
from ..settings import CompletionSettings

if TYPE_CHECKING:
    from ..local.model import LocalModel

#: How many candidates the chart shows by default.
DEFAULT_TOP = 15

_MODEL_LOCK = threading.Lock()
_PRIVATE_MODEL: LocalModel | None = None


def default_model() -> LocalModel:
    """The built-in model, shared with the embedded server when that is what answers.

    If the embedded server is running, its model. Else, if no API key and no base URL are set
    (so ``%%complete`` would start the embedded server anyway), the server is started and its
    model used: one model in memory, and the explorer shows exactly the model that answers.
    Otherwise a `LocalModel` loaded once per process.
    """
    global _PRIVATE_MODEL
    from ..local import embedded

    server = embedded.running_server()
    if server is None and not (os.environ.get(ENV_API_KEY) or os.environ.get(ENV_BASE_URL)):
        embedded.ensure_started()
        server = embedded.running_server()
    if server is not None:
        return server.model
    with _MODEL_LOCK:
        if _PRIVATE_MODEL is None:
            from ..local.model import LocalModel

            _PRIVATE_MODEL = LocalModel()
        return _PRIVATE_MODEL


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One likely next token and what each sampling step did to it."""

    #: 1 for the model's likeliest token (ranked by logit, before any sampling step).
    rank: int
    #: Token id.
    token: int
    #: The token as text (special tokens by name, e.g. ``<|im_end|>``).
    text: str
    #: The model's own probability, ``softmax(logits)``.
    raw: float
    #: After temperature (``Stages.tempered``).
    tempered: float
    #: The probability `sample` draws it with (``Stages.final``); 0 if it was cut.
    final: float
    #: None if it can be drawn; else the step that removed it: ``"temperature"`` (0 means
    #: greedy, only the likeliest token is left), ``"top_k"`` or ``"top_p"``.
    cut_by: str | None


@dataclasses.dataclass(frozen=True)
class Step:
    """One token appended by `ExplorerState.sample` or `ExplorerState.greedy`."""

    #: 1 for the first generated token.
    index: int
    #: Token id.
    token: int
    #: The token as text.
    text: str
    #: Its probability in the distribution it was drawn from (``Stages.final``).
    probability: float
    #: Its rank in the model's own distribution (1 = likeliest).
    rank: int
    #: How many tokens could have been drawn.
    survivors: int
    #: Entropy of that distribution, in bits.
    entropy: float
    #: ``"sampled"`` or ``"greedy"``.
    how: str
    #: The settings it was drawn with.
    temperature: float
    top_k: int | None
    top_p: float | None


class ExplorerState:
    """The prompt, the tokens appended so far, and the next-token distribution at ``settings``.

    Args:
        prompt: the prompt (see `jupyter_complete.widgets.explorer.Explorer`).
        model: a `jupyter_complete.local.LocalModel`; None means `default_model`.
        settings: the `CompletionSettings` sampled with; None means fresh ones.
        chat: False to feed the prompt as is, without the chat template.
        top: how many candidates `candidates` lists.
        seed: seed for the random generator that `sample` uses (None: unpredictable).

    Raises:
        ValueError: ``top`` below 1, or an empty prompt.
    """

    def __init__(
        self,
        prompt: str,
        model: LocalModel | None = None,
        settings: CompletionSettings | None = None,
        *,
        chat: bool = True,
        top: int = DEFAULT_TOP,
        seed: int | None = None,
    ) -> None:
        if top < 1:
            raise ValueError("top must be at least 1")
        #: The settings the sliders are linked to.
        self.settings = settings if settings is not None else CompletionSettings()
        #: The model whose logits are shown.
        self.model: LocalModel = model if model is not None else default_model()
        #: The random generator `sample` draws with (assign a new one to re-seed).
        self.rng = np.random.default_rng(seed)
        self.chat = chat
        self.top = int(top)
        self._prompt = ""
        self._prompt_tokens: list[int] = []
        self._generated: list[int] = []
        self._history: list[Step] = []
        self._logits: dict[tuple[int, ...], npt.NDArray[np.float32]] = {}
        self._stages_key: tuple[Any, ...] | None = None
        self._stages: Stages | None = None
        self._set_prompt(prompt)
        self._opened()

    def _opened(self) -> None:
        """Called once, at the end of ``__init__`` (the widget builds itself here)."""

    def _changed(self) -> None:
        """Called after every step, undo and reset (the widget redraws here)."""

    # -- the context -------------------------------------------------------------------
    def _set_prompt(self, prompt: str) -> None:
        if not prompt.strip():
            raise ValueError("the prompt must not be empty")
        if self.chat:
            conversation = prompts.parse(prompts.build(prompt, system=self.settings.system))
            tokens = self.model.apply_chat_template(conversation)
        else:
            # add_bos follows the model's own flag (SmolLM2 adds none).
            tokens = self.model.tokenize(prompt, add_bos=True)
        self._prompt = prompt
        self._prompt_tokens = tokens
        self._generated = []
        self._history = []
        self._logits = {}
        self._stages = None
        self._stages_key = None

    @property
    def prompt(self) -> str:
        """The prompt as given (see `reset` to change it)."""
        return self._prompt

    @property
    def wire_prompt(self) -> str:
        """The prompt as ``%%complete`` (or the panel) would send it, for comparisons."""
        if not self.chat:
            raise ValueError("with chat=False there is no Human/Assistant wire prompt")
        return prompts.build(self._prompt, system=self.settings.system)

    @property
    def prompt_tokens(self) -> list[int]:
        """The prompt's tokens, as the model reads them (through its chat template)."""
        return list(self._prompt_tokens)

    @property
    def tokens(self) -> list[int]:
        """Every token the model is conditioned on: the rendered prompt, then the generated."""
        return [*self._prompt_tokens, *self._generated]

    @property
    def generated(self) -> list[int]:
        """The tokens appended so far."""
        return list(self._generated)

    @property
    def text(self) -> str:
        """The generated text (decoded as a whole, so characters split across tokens join)."""
        data = b"".join(
            self.model.token_bytes(t) for t in self._generated if not self.model.is_end(t)
        )
        return data.decode("utf-8", errors="replace")

    @property
    def history(self) -> list[Step]:
        """Every step, oldest first."""
        return list(self._history)

    @property
    def finished(self) -> bool:
        """True once the model ended its turn (the server would stop there too)."""
        return bool(self._generated) and self.model.is_end(self._generated[-1])

    # -- the distribution --------------------------------------------------------------
    @property
    def logits(self) -> npt.NDArray[np.float32]:
        """The model's next-token logits for `tokens` (read-only; cached per context)."""
        key = tuple(self._generated)
        cached = self._logits.get(key)
        if cached is None:
            if len(self._logits) >= 64:
                self._logits.clear()  # undo/redo needs only recent contexts
            cached = self.model.next_logits(self.tokens)
            cached.flags.writeable = False
            self._logits[key] = cached
        return cached

    @property
    def stages(self) -> Stages:
        """`sampling.stages` of `logits` at the current settings: what the server samples."""
        s = self.settings
        key = (tuple(self._generated), s.temperature, s.top_k, s.top_p)
        if self._stages is None or key != self._stages_key:
            self._stages = stages(self.logits, s.temperature, s.top_k, s.top_p)
            self._stages_key = key
        return self._stages

    @property
    def entropy(self) -> float:
        """Entropy of the final distribution, in bits (0 when only one token can come)."""
        return entropy_bits(self.stages.final)

    @property
    def survivors(self) -> int:
        """How many tokens can be drawn next."""
        return int(np.count_nonzero(self.stages.final))

    @property
    def candidates(self) -> list[Candidate]:
        """The `top` likeliest next tokens (by the model's logits), with every stage."""
        return self._candidates(self.top)

    def _candidates(self, count: int) -> list[Candidate]:
        logits = self.logits
        n = logits.shape[0]
        count = min(count, n)
        head = np.argpartition(logits, n - count)[n - count :]
        order = head[np.argsort(-logits[head], kind="stable")]
        st = self.stages
        out = []
        for rank, token in enumerate(order.tolist(), start=1):
            if st.tempered[token] == 0:
                cut: str | None = "temperature"
            elif st.after_top_k[token] == 0:
                cut = "top_k"
            elif st.after_top_p[token] == 0:
                cut = "top_p"
            else:
                cut = None
            out.append(
                Candidate(
                    rank=rank,
                    token=token,
                    text=self.model.token_text(token),
                    raw=float(st.raw[token]),
                    tempered=float(st.tempered[token]),
                    final=float(st.final[token]),
                    cut_by=cut,
                )
            )
        return out

    # -- stepping ----------------------------------------------------------------------
    def sample(self) -> Step:
        """Draw the next token from the final distribution (`sampling.sample`) and append it."""
        return self._append(greedy=False)

    def greedy(self) -> Step:
        """Append the likeliest next token (what temperature 0 does, whatever the sliders)."""
        return self._append(greedy=True)

    def step(self, count: int = 1, *, greedy: bool = False) -> list[Step]:
        """Append up to ``count`` tokens, one at a time; stops early if the model ends its turn."""
        steps: list[Step] = []
        for _ in range(count):
            if self.finished:
                break
            steps.append(self._append(greedy=greedy))
        return steps

    def _append(self, *, greedy: bool) -> Step:
        if self.finished:
            raise RuntimeError("The model ended its turn here; undo or reset to go on.")
        st = self.stages
        logits = self.logits
        token = int(np.argmax(logits)) if greedy else sample(st.final, self.rng)
        s = self.settings
        record = Step(
            index=len(self._generated) + 1,
            token=token,
            text=self.model.token_text(token),
            probability=float(st.final[token]),
            rank=int(np.count_nonzero(logits > logits[token])) + 1,
            survivors=int(np.count_nonzero(st.final)),
            entropy=entropy_bits(st.final),
            how="greedy" if greedy else "sampled",
            temperature=s.temperature,
            top_k=s.top_k,
            top_p=s.top_p,
        )
        self._generated.append(token)
        self._history.append(record)
        self._changed()
        return record

    def undo(self) -> Step | None:
        """Remove the last appended token; returns its step (None if there was none)."""
        if not self._generated:
            return None
        self._generated.pop()
        record = self._history.pop()
        self._changed()
        return record

    def reset(self, prompt: str | None = None) -> None:
        """Drop the generated tokens; with ``prompt``, start over from a new prompt."""
        self._set_prompt(self._prompt if prompt is None else prompt)
        self._changed()
