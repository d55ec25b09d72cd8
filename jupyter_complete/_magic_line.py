"""The ``%complete`` magic line as text.

Its words, the options before the prompt, ``{name}`` in option values, and a ``?`` at its
end. Pure: no IPython import, so it is tested by tables.

``%complete [options] text`` keeps the prompt after the options byte for byte (quotes,
apostrophes, braces: "don't" must survive), which is why the line is not handed whole to
``magic_arguments.parse_argstring`` (IPython's ``%debug`` accepts that loss with
``partial=True``; a prompt cannot). The rules, as a shell user would expect them:

* A word is a run of quoted (``"..."`` with backslash escapes, ``'...'`` without) and bare
  pieces glued together; a lone quote is a piece too, so an apostrophe never breaks a split.
* The options end at the first word that is neither an option nor an option's value, at a
  lone ``-`` or a negative number (``-1 is negative?``, as argparse reads it), or at ``--``
  (which is dropped). The text is the rest of the line, as typed.
* An option takes the next word as its value unless written ``--name=value`` or ``-tVALUE``;
  an unambiguous prefix of a long option (``--temp``) counts as that option, as in argparse.
  An option with an optional value (``--chat [NAME]``) does not take a following option.
* Option words are unquoted as a shell would (``"a b"`` -> ``a b``); one that does not parse
  stays as typed. Then ``{name}`` is replaced by the user's variable `name` (see `UserNamespace`
  and `jupyter_complete.prompt.interpolate`; ``$name`` and ``{expr}`` stay literal), unless
  ``--no-interpolate`` (or a prefix of it) is among them.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Iterable, Iterator, Mapping
from tokenize import DEDENT, INDENT, TokenInfo
from typing import Any

from .prompt import interpolate

#: One option as argparse declares it: (names, keyword arguments of ``add_argument``).
OptionSpec = tuple[tuple[str, ...], dict[str, Any]]

# A shell-like word: quoted runs and bare runs glued together; a lone quote is a word piece
# too, so an apostrophe in the prompt text ("don't") never breaks the split.
_WORD_RE = re.compile(r"""(?:"(?:[^"\\]|\\.)*"|'[^']*'|[^\s"']+|["'])+""")
_NUMBER_RE = re.compile(r"-\.?\d")
_NO_INTERPOLATE = "--no-interpolate"


@dataclasses.dataclass(frozen=True)
class LineSyntax:
    """Which option names take a value: what splitting a magic line needs from its options."""

    #: Option names (short and long) that take a value.
    values: frozenset[str]
    #: Option names whose value may be left out (argparse's ``nargs="?"``).
    optional: frozenset[str]
    #: Every long option name, for argparse's unambiguous prefixes.
    longs: tuple[str, ...]

    @classmethod
    def of(cls, options: Iterable[OptionSpec]) -> LineSyntax:
        """The syntax of the options ``options`` declares (positional names are skipped)."""
        specs = [(names, keywords) for names, keywords in options if names[0].startswith("-")]
        return cls(
            values=frozenset(
                name
                for names, keywords in specs
                if keywords.get("action") != "store_true"
                for name in names
            ),
            optional=frozenset(
                name for names, keywords in specs if keywords.get("nargs") == "?" for name in names
            ),
            longs=tuple(name for names, _ in specs for name in names if name.startswith("--")),
        )

    def split(self, line: str) -> tuple[list[str], str]:
        """(the leading option words, still quoted; the prompt text after them, as typed)."""
        words = list(_WORD_RE.finditer(line))
        i = 0
        while i < len(words):
            word = words[i].group()
            if word == "--":
                return [w.group() for w in words[:i]], line[words[i].end() :].lstrip()
            if not word.startswith("-") or word == "-" or _NUMBER_RE.match(word):
                break
            if word in self.optional:
                # --chat [NAME]: a following option is not its value (argparse agrees).
                following = words[i + 1].group() if i + 1 < len(words) else "-"
                i += 1 if following.startswith("-") and not _NUMBER_RE.match(following) else 2
                continue
            i += 2 if self._takes_next_word(word) else 1
        text = line[words[i].start() :] if i < len(words) else ""
        return [w.group() for w in words[:i]], text

    def tokenize(
        self, line: str, namespace: Mapping[str, Any] | None = None
    ) -> tuple[list[str], str]:
        """(argv for argparse, the prompt text as typed) of a magic line.

        ``namespace``: the names ``{name}`` in option values may read (None: no
        interpolation). Interpolation runs after unquoting, so a value with quotes in it
        cannot change the split.
        """
        words, text = self.split(line)
        argv = [unquote(w) for w in words]
        if namespace is not None and not any(is_no_interpolate(w) for w in argv):
            argv = [interpolate(w, namespace) for w in argv]
        return argv, text

    def _takes_next_word(self, word: str) -> bool:
        if word.startswith("--"):
            if "=" in word:
                return False
            # argparse accepts unambiguous prefixes (--temp); an unknown one is its error.
            matches = [name for name in self.longs if name.startswith(word)]
            return word in self.values or (len(matches) == 1 and matches[0] in self.values)
        return word in self.values  # "-t0.5" carries its value


def unquote(word: str) -> str:
    """A word as a shell would pass it (``"a b"`` -> ``a b``); one that does not parse stays."""
    try:
        parts = shlex.split(word)
    except ValueError:
        return word
    return " ".join(parts) if parts else ""


def is_no_interpolate(word: str) -> bool:
    """True for ``--no-interpolate`` or a prefix argparse would take for it (``--no-i``)."""
    return len(word) > 5 and _NO_INTERPOLATE.startswith(word) and word.startswith("--no-i")


class UserNamespace(Mapping[str, Any]):
    """The names a user defined in the shell: what ``{name}`` interpolation may read.

    IPython's own names are left out: those in ``shell.user_ns_hidden`` still bound to the
    value IPython put there (In, Out, _ih, _oh, _dh, exit, quit, get_ipython, and the
    history and output caches _, __, ___, _i, _ii, _iii, _iN, _N, which IPython pushes as
    hidden), and dunder names (__name__, __builtins__ ...). A hidden name the user rebinds
    (``_ = 5``) is theirs again. Builtins are never seen: lookups go to the namespace dict.
    """

    def __init__(self, shell: Any) -> None:
        self._ns: dict[str, Any] = shell.user_ns
        self._hidden: dict[str, Any] = getattr(shell, "user_ns_hidden", {}) or {}

    def _visible(self, name: str) -> bool:
        if name.startswith("__") and name.endswith("__"):
            return False
        if name in self._hidden and name in self._ns:
            return self._ns[name] is not self._hidden[name]
        return name in self._ns

    def __getitem__(self, name: str) -> Any:
        if not self._visible(name):
            raise KeyError(name)
        return self._ns[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._visible(name)

    def __iter__(self) -> Iterator[str]:
        return (name for name in list(self._ns) if self._visible(name))

    def __len__(self) -> int:
        return sum(1 for _ in self)


# -- a question mark at the end ----------------------------------------------------------------
# IPython's help transformer (HelpEnd) turns any line ending in ? or ?? into %pinfo of its
# last word; `jupyter_complete._help_end.CompleteLineTransformer` runs before it, using these.


def question_start(tokens_by_line: list[list[TokenInfo]]) -> tuple[int, int] | None:
    """Where a ``%complete ...?`` line starts, as (row, column) of its ``%``; None if none.

    ``tokens_by_line`` is IPython's ``make_tokens_by_line`` of a cell (each line's tokens end
    with NEWLINE). ``%complete?`` and ``%complete??`` (only question marks after the name)
    are not matched: they are IPython's help for the magic. The ``?`` may be on a later
    physical line after a backslash; after an open bracket the line is not a magic line.
    """
    for line in tokens_by_line:
        ix = 0
        while ix < len(line) and line[ix].type in (INDENT, DEDENT):
            ix += 1
        if len(line) < ix + 4:
            continue
        pct, name = line[ix], line[ix + 1]
        if (
            pct.string != "%"
            or name.string != "complete"
            or name.start != (pct.start[0], pct.start[1] + 1)
        ):
            continue
        if line[-2].string not in ("?", "??"):
            continue
        if not pct.line[name.end[1] :].strip().strip("?").strip():
            continue
        return pct.start
    return None


def run_call(line: str) -> str:
    """The Python that runs ``%complete ...`` (``line``, continuations joined) as the magic.

    The same ``run_line_magic`` call IPython's escaped-command transformer makes for any
    other ``%complete`` line: everything after the name, less the one separating blank.
    """
    args = line[len("%complete") :]
    args = args[1:] if args[:1] in (" ", "\t") else args
    return f"get_ipython().run_line_magic('complete', {args!r})"


_HELP_LINE_RE = re.compile(
    r"^[ \t]*%complete[ \t]+(?=.*\S.*\?)(?!\?*[ \t]*$).*\?[ \t]*$", re.MULTILINE
)


def has_question_line(cell: str) -> bool:
    """True when ``cell`` has a ``%complete text?`` line (IPython's help, before loading)."""
    return _HELP_LINE_RE.search(cell) is not None


__all__ = [
    "LineSyntax",
    "OptionSpec",
    "UserNamespace",
    "has_question_line",
    "is_no_interpolate",
    "question_start",
    "run_call",
    "unquote",
]
