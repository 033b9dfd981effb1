"""Cursor pagination as OpenAI does it (emulator): `after` is the last id of the previous page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ftq.services.emulator.errors import bad_request

T = TypeVar("T")


def page(items: list[dict[str, Any]], after: str | None, limit: int) -> dict[str, Any]:
    """`{object, data, has_more}` for the `limit` items that follow `after` in `items`."""
    return page_of(items, after, limit, key=lambda item: str(item["id"]))


def page_of(
    items: Sequence[T], after: str | None, limit: int, key: Callable[[T], str]
) -> dict[str, Any]:
    """Like `page` for any objects: only the page is returned, so callers render just that."""
    start = 0
    if after is not None:
        start = next((i + 1 for i, item in enumerate(items) if key(item) == after), -1)
        if start < 0:
            raise bad_request(
                f"Invalid 'after': no object with id '{after}'.", "after", "invalid_value"
            )
    data = list(items[start : start + limit])
    return {"object": "list", "data": data, "has_more": start + limit < len(items)}


def with_ids(body: dict[str, Any]) -> dict[str, Any]:
    """Add `first_id` / `last_id` (null on an empty page) to a list body."""
    data = body["data"]
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    return {**body, "first_id": first, "last_id": last}
