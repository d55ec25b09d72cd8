"""`HostCheck`: which ``Host`` headers the server answers (a defence against DNS rebinding).

A web page can make a browser send requests to ``http://attacker.example:PORT`` after
pointing that name at 127.0.0.1; the browser then lets the page read the answers, since
to it they come from the page's own origin. The request still says ``Host:
attacker.example``, so a server that answers only the names it is known by cannot be
driven that way. Accepted: the address the server listens on, ``localhost``/``127.0.0.1``/
``::1`` when it listens on loopback, and the names in ``allowed`` (``"*"``: any). A server
listening on every interface (which requires a key) accepts any name, since it cannot know
the names it is reached by. A request without ``Host`` (HTTP/1.0) is accepted: browsers
always send one. The port is not compared. A server with a key does not check ``Host``: a
page cannot know the key, and tunnels and proxies may name the server otherwise.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from ..request import RequestRejected

_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def host_name(value: str) -> str:
    """The host part of a ``Host`` header value, lower-cased (``[::1]:80`` -> ``::1``)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HostCheck:
    """Accept or refuse a request's ``Host`` (see the module docstring).

    Args:
        listen_host: the address given to bind (``""``/``0.0.0.0``/``::``: every interface).
        allowed: further names to accept; ``"*"`` accepts any.
    """

    def __init__(self, listen_host: str, allowed: Iterable[str] = ()) -> None:
        bound = host_name(listen_host) if listen_host else ""
        names = {host_name(a) for a in allowed}
        self.any = "*" in names or bound in ("", "0.0.0.0", "::")
        if bound and _is_loopback(bound):
            names.update(_LOOPBACK_NAMES)
        names.add(bound)
        self.names = frozenset(names - {"", "*"})

    def allows(self, value: str) -> bool:
        """True when a ``Host`` header of ``value`` may be answered."""
        return self.any or host_name(value) in self.names

    def check(self, values: list[str]) -> None:
        """403 ``permission_error`` unless the request's ``Host`` header may be answered."""
        if len(values) > 1:
            raise RequestRejected(400, "invalid_request_error", "Host: more than one given")
        if values and not self.allows(values[0]):
            shown = values[0][:100]
            raise RequestRejected(
                403,
                "permission_error",
                f"Host {shown!r} is not a name of this server; use "
                f"{sorted(self.names)[0] if self.names else 'its address'}, or start it "
                "with --allow-host NAME",
            )


__all__ = ["HostCheck", "host_name"]
