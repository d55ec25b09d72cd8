"""``client.models.list()``: the models an endpoint offers (``GET /v1/models``).

The response shape is the Anthropic API's: ``{"data": [{"type": "model", "id": ...,
"display_name": ..., "created_at": ...}, ...], "has_more": bool, "first_id", "last_id"}``,
paged with ``limit`` (1 to 1000) and ``after_id``. Every page read is bounded
(`MAX_PAGE_BYTES`), and so are the bytes of all pages together (`MAX_LIST_BYTES`) and the
number of pages (`MAX_PAGES`); a page whose ``last_id`` does not move the cursor on ends the
list (a server that repeats its page would otherwise be asked again and again).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import requests

from . import wire
from ._http_errors import connection_error, redirect_error, status_error
from .errors import APIResponseValidationError

#: Largest page body read, in bytes (a page of 1000 models is about 150 KB).
MAX_PAGE_BYTES = 4 * 1024 * 1024
#: Largest total of all pages read, in bytes (about a hundred full pages of 1000 models).
MAX_LIST_BYTES = 16 * 1024 * 1024
#: Most pages followed before stopping (with ``limit=1000``, a million models).
MAX_PAGES = 1000
#: Models asked for per page (the API's largest ``limit``).
PAGE_LIMIT = 1000


@dataclasses.dataclass(frozen=True)
class Model:
    """One model an endpoint offers (the API's ``ModelInfo``)."""

    id: str
    display_name: str | None = None
    #: RFC 3339 time the model was released, as the server sent it.
    created_at: str | None = None
    type: str = "model"


class Models:
    """``client.models``: ``list()`` the endpoint's models.

    Args:
        get: sends ``GET path?params`` the way its client sends everything (headers, key,
            timeouts, no redirects, streamed) and returns the open response.
        url: the endpoint's URL for messages, without credentials.
    """

    def __init__(self, get: Callable[[str, dict[str, Any]], requests.Response], url: str) -> None:
        self._get = get
        self._url = url

    def list(self) -> list[Model]:
        """Every model the endpoint lists, in its order (all pages).

        Raises the typed `APIStatusError` subclass for an error status (`NotFoundError`
        when the server has no ``/v1/models``), `APIConnectionError` / `APITimeoutError`
        when it cannot be reached, `APIResponseValidationError` for a body that is not
        the API's shape or is larger than `MAX_PAGE_BYTES`.
        """
        shown = self._url
        models: list[Model] = []
        after: str | None = None
        total = 0
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {"limit": PAGE_LIMIT}
            if after:
                params["after_id"] = after
            try:
                response = self._get(wire.MODELS_PATH, params)
                with response:
                    if response.is_redirect:  # never followed: the key stays with the host named
                        raise redirect_error(response, wire.MODELS_PATH)
                    if response.status_code >= 400:
                        raise status_error(response, path=wire.MODELS_PATH)
                    body = _read_bounded(response, shown)
            except requests.RequestException as err:
                raise connection_error(err, shown) from err
            total += len(body)
            if total > MAX_LIST_BYTES:
                raise APIResponseValidationError(
                    f"GET {shown}: the model list is larger than {MAX_LIST_BYTES:,} bytes; "
                    "not read further"
                )
            page = _parse_page(body, shown)
            data = json.loads(body)
            cursor = data.get("last_id") or (page[-1].id if page else None)
            if after is not None and cursor == after:
                break  # the same page again: asking on would repeat it forever
            models.extend(page)
            if not data.get("has_more") or not page:
                break
            after = str(cursor)
        return models


def _read_bounded(response: requests.Response, url: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(64 * 1024):
        size += len(chunk)
        if size > MAX_PAGE_BYTES:
            raise APIResponseValidationError(
                f"GET {url}: the answer is larger than {MAX_PAGE_BYTES:,} bytes; not read"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_page(body: bytes, url: str) -> list[Model]:
    try:
        data = json.loads(body)
    except ValueError:
        raise APIResponseValidationError(f"GET {url}: the answer is not JSON") from None
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise APIResponseValidationError(f'GET {url}: the answer has no "data" list of models')
    return [
        Model(
            id=item["id"],
            display_name=_text(item, "display_name"),
            created_at=_text(item, "created_at"),
            type=str(item.get("type") or "model"),
        )
        for item in items
        if isinstance(item, dict) and isinstance(item.get("id"), str)
    ]


def _text(item: dict[str, Any], key: str) -> str | None:
    """``item[key]`` when it is a string, else None (a field of another type is ignored)."""
    value = item.get(key)
    return value if isinstance(value, str) else None


__all__ = ["MAX_LIST_BYTES", "MAX_PAGE_BYTES", "Model", "Models"]
