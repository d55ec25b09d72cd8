"""What keeps the API key and a URL's credentials out of everything shown.

`Secret` holds a key so that no repr, log line or traceback local shows it; `KeyAuth` puts
it (and Basic auth from a base URL's user info, `split_userinfo`) on a request only at the
last moment; `safe_url` is a URL as it may be shown; `without_frames` drops the traceback
frames of a transport error, whose locals hold the request headers, and `redact` takes query
strings and user info out of the messages of requests and urllib3.

Only the standard library is imported here, so the notebook layer (`render`) can show a
`safe_url` without loading requests.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import requests


class Secret:
    """Holds the API key so that no repr, log line or traceback local can show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself: only for the header that carries it."""
        return self._value

    def __repr__(self) -> str:
        return "<hidden>"

    __str__ = __repr__


class KeyAuth:
    """Adds ``x-api-key`` (and Basic auth from the base URL's user info) at the last moment.

    Request-building code thus never holds the secrets. requests takes any callable from a
    `PreparedRequest` to a `PreparedRequest` as ``auth``
    (<https://requests.readthedocs.io/en/latest/user/authentication/#new-forms-of-authentication>).
    """

    def __init__(self, secret: Secret | None, basic: tuple[Secret, Secret] | None) -> None:
        self._secret = secret
        self._basic = basic

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if self._secret is not None:
            r.headers["x-api-key"] = self._secret.reveal()
        if self._basic is not None:
            from requests.auth import HTTPBasicAuth  # loaded: this runs inside a request

            user, password = (part.reveal() for part in self._basic)
            r = HTTPBasicAuth(user, password)(r)
        return r

    def __repr__(self) -> str:
        return "<api key>"


def split_userinfo(url: str) -> tuple[str, tuple[Secret, Secret] | None]:
    """``url`` without its user info, and that user info (for Basic auth), if any."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    bare = urllib.parse.urlunsplit(
        (parts.scheme, hostport, parts.path, parts.query, parts.fragment)
    )
    return bare, (Secret(urllib.parse.unquote(user)), Secret(urllib.parse.unquote(password)))


def safe_url(url: str) -> str:
    """``url`` without user info, query or fragment (those may hold credentials)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal needs its brackets back
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def without_frames(err: BaseException) -> BaseException:
    """``err`` with its traceback, and those of the exceptions it chains, dropped.

    Frames inside requests and urllib3 hold the request headers, API key included, as
    locals, and verbose tracebacks (IPython's ``%xmode Verbose``) print locals. The chained
    exceptions' types and messages, which say what failed, are kept.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [err]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        e.__traceback__ = None
        try:
            # requests and urllib3 put the URL (query string included) in their messages.
            e.args = tuple(
                redact(a)
                if isinstance(a, str)
                else redact(str(a))
                if isinstance(a, BaseException)
                else a
                for a in e.args
            )
        except (TypeError, AttributeError):
            pass
        todo += [e.__cause__, e.__context__]
    return err


_QUERY_RE = re.compile(r"\?[^\s'\")]*")
_USERINFO_RE = re.compile(r"//[^/\s@'\"]*@")


def redact(text: str) -> str:
    """``text`` with URL query strings and user info replaced by ``...``."""
    return _USERINFO_RE.sub("//...@", _QUERY_RE.sub("?...", text))


__all__ = ["KeyAuth", "Secret", "redact", "safe_url", "split_userinfo", "without_frames"]
