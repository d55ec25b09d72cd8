"""The retry policy: which failed requests are sent again, and how long to wait first.

The official SDK's rules (``_should_retry`` and ``_calculate_retry_timeout`` in
https://github.com/anthropics/anthropic-sdk-python, ``src/anthropic/_base_client.py``;
https://docs.anthropic.com/en/api/errors): a server's
``x-should-retry`` header decides when present; else 408, 409, 429 and every status >= 500
are retried. The wait is the server's ``retry-after-ms`` / ``retry-after`` when it lies in
(0, `_constants.MAX_RETRY_AFTER`] seconds, else exponential backoff from
`_constants.INITIAL_RETRY_DELAY` up to `_constants.MAX_RETRY_DELAY`, less up to 25 % jitter.
Connection errors and timeouts are retried too (by the client's loop, `Client._send`).
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping

import requests

from . import _constants as C

#: Statuses below 500 that are worth sending again.
RETRY_STATUSES = frozenset({408, 409, 429})


def should_retry(response: requests.Response) -> bool:
    """Whether an error response may be retried (its ``x-should-retry``, else its status)."""
    hint = response.headers.get("x-should-retry", "").lower()
    if hint == "true":
        return True
    if hint == "false":
        return False
    return response.status_code in RETRY_STATUSES or response.status_code >= 500


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks to wait, or None when it says nothing readable.

    Read from ``retry-after-ms``, or ``retry-after`` in seconds or as an HTTP date.
    """
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()


def retry_delay(headers: Mapping[str, str] | None, attempt: int) -> float:
    """Seconds to wait before retry ``attempt + 1`` (``attempt`` counts from 0).

    The server's word if sane, else backoff. ``headers`` None: no response (a connection
    error).
    """
    after = retry_after(headers) if headers is not None else None
    if after is not None and 0 < after <= C.MAX_RETRY_AFTER:
        return after
    backoff: float = min(C.INITIAL_RETRY_DELAY * 2**attempt, C.MAX_RETRY_DELAY)
    return backoff * (1 - 0.25 * random.random())


__all__ = ["RETRY_STATUSES", "retry_after", "retry_delay", "should_retry"]
