"""`Chat`: a named conversation that ``%%complete --chat`` continues from cell to cell.

The Text Completions prompt is a Human/Assistant transcript, so a conversation is its list of
finished turns: each ``%%complete --chat`` cell sends ::

    {system}\\n\\nHuman: {turn 1}\\n\\nAssistant: {answer 1} ... \\n\\nHuman: {cell}\\n\\nAssistant:

and, when the answer ends (any stop reason the server gives, ``max_tokens`` included), adds
``(cell, answer)`` as a new turn. An answer that did not end (kernel interrupt, Stop, an error
mid-stream) is *not* added: it waits in `Chat.pending` until ``chat.keep()`` (or
``%complete --keep``) adds it, or the next cell replaces it.

Bounded by the model's context: the prompt must leave room for ``max_tokens`` new tokens in
the model's context window (`Chat.context_tokens`; by default 4,096 for the built-in model,
the size it is loaded with, and 100,000 otherwise, Claude 2's window). Tokens are *estimated*
from the UTF-8 length (`estimate_tokens`: 3 bytes a token, more than English needs, so the
estimate errs on the side of dropping). When the turns do not fit, the oldest are left out of
that prompt, first to last, and the caller says so (`ChatPrompt.dropped`); they stay in
`Chat.turns`, so nothing is lost and a larger context brings them back.

A `Chat` is a plain Python object: read ``chat.turns``, edit or delete them, build one from
a list, or pass it to ``Panel(chat=...)`` so the panel's runs continue it.
"""

from __future__ import annotations

import dataclasses
import html
import threading
from collections.abc import Iterator
from typing import Any

from .wire import AI_PROMPT, HUMAN_PROMPT

#: The built-in model's context window, in tokens (what `LocalModel` is loaded with).
LOCAL_CONTEXT_TOKENS = 4096
#: The context window assumed for other endpoints (Claude 2's; claude-2.1 has 200,000).
REMOTE_CONTEXT_TOKENS = 100_000
#: Bytes of UTF-8 per token in `estimate_tokens` (English averages about 4 per token).
BYTES_PER_TOKEN = 3


def estimate_tokens(text: str) -> int:
    """A deliberately high estimate of the tokens ``text`` takes (UTF-8 bytes / 3, rounded up)."""
    return -(-len(text.encode("utf-8")) // BYTES_PER_TOKEN)


@dataclasses.dataclass
class Turn:
    """One exchange: what the user sent and the answer it got."""

    human: str
    assistant: str

    def wire(self) -> str:
        """``\\n\\nHuman: ...\\n\\nAssistant: ...``, as the prompt carries it."""
        return f"{HUMAN_PROMPT} {self.human.strip()}{AI_PROMPT} {self.assistant.strip()}"


@dataclasses.dataclass
class ChatPrompt:
    """A prompt built from a chat: the wire text and what was left out of it."""

    #: The wire prompt to send.
    prompt: str
    #: How many of the oldest turns were left out to fit the context (0: none).
    dropped: int
    #: How many turns the prompt carries.
    sent: int
    #: The estimated prompt tokens, and the budget they had to fit.
    tokens: int
    budget: int

    def notice(self, name: str) -> str | None:
        """One line saying what was dropped (None when nothing was)."""
        if not self.dropped:
            return None
        s = "s" if self.dropped != 1 else ""
        return (
            f"conversation {name!r}: the {self.dropped} oldest turn{s} left out of this prompt "
            f"to fit the model's context ({self.budget:,} tokens for the prompt, estimated); "
            "they stay in the conversation object"
        )


class Chat:
    """A named conversation: finished turns, oldest first, plus an answer waiting to be kept.

    Args:
        name: the name ``%%complete --chat NAME`` uses ("default" when none is given).
        turns: initial turns, as `Turn` objects or ``(human, assistant)`` pairs or dicts.
        context_tokens: the model's context window in tokens; None means the default for the
            endpoint (see the module docstring).

    Thread-safe: the panel adds turns from its worker thread.
    """

    def __init__(
        self,
        name: str = "default",
        turns: list[Any] | None = None,
        *,
        context_tokens: int | None = None,
    ) -> None:
        self.name = name
        #: Finished turns, oldest first. A plain list: edit it freely.
        self.turns: list[Turn] = [_turn(t) for t in (turns or [])]
        #: An answer that did not end (interrupted, stopped, failed); `keep` adds it.
        self.pending: Turn | None = None
        self.context_tokens = context_tokens
        self._lock = threading.Lock()

    # -- building prompts ------------------------------------------------------------
    def build(
        self,
        human: str,
        *,
        system: str = "",
        max_tokens: int = 256,
        context_tokens: int | None = None,
    ) -> ChatPrompt:
        """The wire prompt continuing this chat with ``human``, cut to fit the context.

        The budget is ``context - max_tokens``; the oldest turns are left out until the
        estimated prompt fits. The new turn and the system prompt are always sent (if they
        alone do not fit, the server's error says so).
        """
        context = self.context_tokens or context_tokens or REMOTE_CONTEXT_TOKENS
        budget = max(0, context - max_tokens)
        with self._lock:
            turns = list(self.turns)
        head = system.strip()
        tail = f"{HUMAN_PROMPT} {human.strip()}{AI_PROMPT}"
        pieces = [t.wire() for t in turns]
        used = estimate_tokens(head) + estimate_tokens(tail)
        kept = 0
        for piece in reversed(pieces):  # newest first: keep as many recent turns as fit
            cost = estimate_tokens(piece)
            if used + cost > budget:
                break
            used += cost
            kept += 1
        body = "".join(pieces[len(pieces) - kept :])
        return ChatPrompt(
            prompt=f"{head}{body}{tail}",
            dropped=len(pieces) - kept,
            sent=kept,
            tokens=used,
            budget=budget,
        )

    # -- changing it ------------------------------------------------------------------
    def add(self, human: str, assistant: str) -> Turn:
        """Append a finished turn (and forget any pending answer)."""
        turn = Turn(human.strip(), assistant)
        with self._lock:
            self.turns.append(turn)
            self.pending = None
        return turn

    def hold(self, human: str, partial: str) -> None:
        """Keep an unfinished answer aside; it is added only by `keep`."""
        with self._lock:
            self.pending = Turn(human.strip(), partial)

    def keep(self) -> Turn:
        """Add the pending (unfinished) answer as a turn. Raises LookupError if there is none."""
        with self._lock:
            turn = self.pending
            if turn is None:
                raise LookupError(
                    f"conversation {self.name!r} has no unfinished answer to keep (only an "
                    "interrupted or failed answer waits to be kept)"
                )
            self.turns.append(turn)
            self.pending = None
        return turn

    def settle(self, human: str, answer: str, *, finished: bool) -> str | None:
        """Add a finished answer as a turn, or hold an unfinished one for `keep`.

        ``finished``: the answer ended with a stop reason (any, ``max_tokens`` included), not
        by an interrupt or an error. Returns the line to show the user (None: nothing to
        say): an unfinished, non-empty answer is not silently left out.
        """
        if finished:
            self.add(human, answer)
            return None
        self.hold(human, answer)
        if not answer:
            return None
        return (
            f"conversation {self.name!r}: this unfinished answer was not added;"
            f" %complete --keep {self.name} adds it"
        )

    def reset(self) -> None:
        """Forget every turn and the pending answer."""
        with self._lock:
            self.turns.clear()
            self.pending = None

    # -- reading it -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.turns)

    def __iter__(self) -> Iterator[Turn]:
        return iter(list(self.turns))

    def __getitem__(self, index: int) -> Turn:
        return self.turns[index]

    def to_list(self) -> list[dict[str, str]]:
        """The turns as ``[{"human": ..., "assistant": ...}, ...]`` (JSON-safe)."""
        return [dataclasses.asdict(t) for t in self.turns]

    def __repr__(self) -> str:
        pending = ", 1 pending" if self.pending is not None else ""
        lines = [f"<Chat {self.name!r}: {len(self.turns)} turns{pending}>"]
        for i, t in enumerate(self.turns, 1):
            lines.append(f"  {i}. Human: {_short(t.human)}")
            lines.append(f"     Assistant: {_short(t.assistant)}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{i}</td><td>{html.escape(t.human)}</td><td>{html.escape(t.assistant)}"
            "</td></tr>"
            for i, t in enumerate(self.turns, 1)
        )
        pending = (
            f"<div><i>unfinished answer waiting (chat.keep() adds it):</i> "
            f"{html.escape(_short(self.pending.assistant))}</div>"
            if self.pending is not None
            else ""
        )
        return (
            f"<div><b>conversation {html.escape(self.name)!s}</b>: {len(self.turns)} turns"
            f"</div><table><tr><th>#</th><th>Human</th><th>Assistant</th></tr>{rows}</table>"
            f"{pending}"
        )


class Chats(dict[str, Chat]):
    """The named conversations of one shell (``%%complete --chat NAME``), by name.

    The three commands of the magic that act on a conversation by name live here; each
    returns the line to show the user.
    """

    def use(self, name: str, namespace: dict[str, Any]) -> Chat:
        """The conversation ``name`` (created if new), also put in ``namespace["_chat"]``."""
        chat = self.setdefault(name, Chat(name))
        namespace["_chat"] = chat
        return chat

    def reset(self, name: str) -> str:
        """Empty the conversation ``name``, if there is one, in place.

        A panel or variable holding it sees the same, empty chat.
        """
        chat = self.get(name)
        if chat is not None:
            chat.reset()
        return f"conversation {name!r} cleared"

    def keep(self, name: str) -> str:
        """Add the unfinished answer of ``name`` as its last turn (see `Chat.keep`).

        Raises LookupError when there is no such conversation or no unfinished answer.
        """
        chat = self.get(name)
        if chat is None:
            raise LookupError(f"there is no conversation {name!r}")
        chat.keep()
        return f"conversation {name!r}: the unfinished answer is now turn {len(chat)}"


def _turn(value: Any) -> Turn:
    if isinstance(value, Turn):
        return Turn(value.human, value.assistant)
    if isinstance(value, dict):
        return Turn(str(value["human"]), str(value["assistant"]))
    human, assistant = value
    return Turn(str(human), str(assistant))


def _short(text: str, limit: int = 70) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def context_for(client: Any) -> int:
    """The context window (tokens) to assume for ``client``'s endpoint."""
    if getattr(client, "is_local", False):
        try:
            from .local import embedded

            server = embedded.running_server()
            if server is not None:
                return int(server.model.n_ctx)
        except ImportError:
            pass
        return LOCAL_CONTEXT_TOKENS
    return REMOTE_CONTEXT_TOKENS


__all__ = [
    "BYTES_PER_TOKEN",
    "LOCAL_CONTEXT_TOKENS",
    "REMOTE_CONTEXT_TOKENS",
    "Chat",
    "ChatPrompt",
    "Chats",
    "Turn",
    "context_for",
    "estimate_tokens",
]
