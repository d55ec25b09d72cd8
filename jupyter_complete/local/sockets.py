"""The listening socket and what it may use: `bind`, `is_loopback`, `descriptor_budget`."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket

#: Descriptors kept for everything but connections (the model file, logs, a kernel's own).
_RESERVED_FDS = 64


def is_loopback(host: str) -> bool:
    """True when ``host`` names only this machine (127.0.0.0/8, ::1, localhost)."""
    if not host:
        return False  # "" binds every interface
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(
        ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos
    )


def descriptor_budget() -> int:
    """Connections the process's descriptors allow, after raising the soft limit.

    ``RLIMIT_NOFILE``'s soft limit (often 1024) is raised to the hard one (capped at
    65536), as servers do; of what is free, `_RESERVED_FDS` are kept for everything else.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return 1 << 16
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard if hard != resource.RLIM_INFINITY else 1 << 16, 1 << 16)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    try:
        used = len(os.listdir("/proc/self/fd"))
    except OSError:
        used = 64
    return max(1, int(soft) - used - _RESERVED_FDS)


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host``:``port`` (IPv6 when ``host`` has a colon).

    Raises:
        OSError: the address cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(1024)
    except BaseException:
        sock.close()
        raise
    return sock


__all__ = ["bind", "descriptor_budget", "is_loopback"]
