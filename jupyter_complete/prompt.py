"""Prompts: Human/Assistant turns and how a stop sequence is typed.

Wrapping, normalising, prefill, ``{name}`` interpolation, and a stop sequence's escapes.

Pure functions shared by the magic, the panel, the local server (which renders parsed turns
through the model's chat template) and the Messages transport (which turns them into messages).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from .wire import AI_PROMPT, HUMAN_PROMPT

# A turn label at the start of a line (or of the text), with any blank lines before it.
_TURN_RE = re.compile(r"(?:^|\n)[ \t]*(Human|Assistant):[ \t]?", re.MULTILINE)


@dataclasses.dataclass
class Conversation:
    """A prompt split into its parts."""

    #: Text before the first Human turn (the system prompt), stripped.
    system: str
    #: ("user" | "assistant", text) pairs, in order; the trailing Assistant turn is not here.
    turns: list[tuple[str, str]]
    #: Text after the final ``Assistant:`` label that the model should continue ("" if none).
    prefill: str


class PromptFormatError(ValueError):
    """The prompt does not follow the Human/Assistant turn format the API requires."""


def has_turns(text: str) -> bool:
    """True when ``text`` contains a ``Human:`` turn label at the start of a line."""
    return any(m.group(1) == "Human" for m in _TURN_RE.finditer(text))


def parse(prompt: str) -> Conversation:
    """Split a wire prompt into system text, turns and prefill, as the API validates it.

    Raises `PromptFormatError` with the API's own wording when the prompt does not start with
    a Human turn (after an optional system prompt) or does not end with an Assistant turn.
    """
    first = prompt.find(HUMAN_PROMPT)
    # A system prompt may precede the first Human turn, but an Assistant turn may not (the
    # docs list "\n\nAssistant: Hello\n\nHuman: ..." as an error).
    if first < 0 or AI_PROMPT in prompt[:first]:
        raise PromptFormatError(
            'prompt must start with "\\n\\nHuman:" turn after an optional system prompt'
        )
    system = prompt[:first].strip()
    labels = list(re.finditer(r"\n\n(Human|Assistant):", prompt[first:]))
    pieces: list[tuple[str, str]] = []
    for i, m in enumerate(labels):
        end = labels[i + 1].start() if i + 1 < len(labels) else len(prompt) - first
        body = prompt[first + m.end() : first + end]
        pieces.append(("user" if m.group(1) == "Human" else "assistant", body))
    if not pieces or pieces[-1][0] != "assistant":
        raise PromptFormatError('prompt must end with "\\n\\nAssistant:" turn')
    prefill = pieces[-1][1].lstrip(" ").rstrip()
    turns = [(role, body.strip()) for role, body in pieces[:-1]]
    return Conversation(system=system, turns=turns, prefill=prefill)


def build(cell: str, *, system: str = "", raw: bool = False) -> str:
    """The wire prompt for a cell (the Text Completions format, ``docs/architecture.md``).

    * ``raw``: the cell exactly as written.
    * no ``Human:`` turn: ``"\\n\\nHuman: {cell}\\n\\nAssistant:"``.
    * turns typed by the user (``Human:``/``Assistant:`` at line starts): normalised to the
      ``\\n\\n`` form; text before the first turn is the system prompt; if the last turn is
      Human an ``Assistant:`` turn is added; text after a final ``Assistant:`` is a prefill.

    ``system`` (the ``--system`` option) goes before the first Human turn.
    """
    if raw:
        return cell
    matches = list(_TURN_RE.finditer(cell))
    if not any(m.group(1) == "Human" for m in matches):
        return f"{system.strip()}{HUMAN_PROMPT} {cell.strip()}{AI_PROMPT}"
    first_human = next(i for i, m in enumerate(matches) if m.group(1) == "Human")
    matches = matches[first_human:]
    before = cell[: matches[0].start()].strip()
    sys_text = "\n\n".join(t for t in (system.strip(), before) if t)
    out = [sys_text] if sys_text else []
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(cell)
        body = cell[m.end() : end].strip()
        label = HUMAN_PROMPT if m.group(1) == "Human" else AI_PROMPT
        out.append(f"{label} {body}" if body else label)
    text = "".join(out)
    if matches[-1].group(1) == "Human":
        text += AI_PROMPT
    return text


def render(conv: Conversation) -> str:
    """The wire prompt for a `Conversation` (inverse of `parse`)."""
    out = [conv.system] if conv.system else []
    for role, body in conv.turns:
        out.append(f"{HUMAN_PROMPT if role == 'user' else AI_PROMPT} {body}")
    out.append(f"{AI_PROMPT} {conv.prefill}" if conv.prefill else AI_PROMPT)
    return "".join(out)


_INTERP_RE = re.compile(r"\{\{([A-Za-z_][A-Za-z0-9_]*)\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def interpolate(text: str, namespace: Mapping[str, Any]) -> str:
    """Replace ``{name}`` by ``str(namespace[name])`` where ``name`` exists.

    Unknown names, JSON and code braces are left alone. ``{{name}}`` is the escape for a
    literal ``{name}``; other doubled braces stay as typed so nested JSON such as
    ``{"a": {"b": 1}}`` survives.
    """

    def sub(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return "{" + m.group(1) + "}"
        name = m.group(2)
        return str(namespace[name]) if name in namespace else m.group(0)

    return _INTERP_RE.sub(sub, text)


# Stop sequences as typed: a character and its escape, both ways.
_STOP_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_STOP_UNESCAPES = {escaped[1]: char for char, escaped in _STOP_ESCAPES.items()}
_BACKSLASH_RE = re.compile(r"\\(.)")


def escape_stop_sequence(text: str) -> str:
    """A stop sequence as a user types it: one line, its control characters visible.

    The rules (the same on the magic line's ``--stop`` and in the panel's stop box): a
    newline is written ``\\n``, a carriage return ``\\r``, a tab ``\\t``, and a backslash
    ``\\\\``; every other character stands for itself. `unescape_stop_sequence` is the inverse:
    ``unescape_stop_sequence(escape_stop_sequence(s)) == s`` for every string ``s``.
    """
    return "".join(_STOP_ESCAPES.get(c, c) for c in text)


def unescape_stop_sequence(text: str) -> str:
    """A stop sequence as typed -> the characters it stands for (see `escape_stop_sequence`).

    ``\\n``, ``\\r``, ``\\t`` and ``\\\\`` become a newline, a carriage return, a tab and one
    backslash; a backslash before anything else (``\\d``, or a trailing one) stays as typed,
    so a regular-expression-like stop such as ``\\d+`` is sent as written.
    """
    return _BACKSLASH_RE.sub(lambda m: _STOP_UNESCAPES.get(m.group(1), m.group(0)), text)
