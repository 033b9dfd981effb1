"""Cursor pagination as OpenAI does it (emulator): `after` is the last id of the previous page."""

from __future__ import annotations

from typing import Any

from .errors import bad_request


def page(items: list[dict[str, Any]], after: str | None, limit: int) -> dict[str, Any]:
    """`{object, data, has_more}` for the `limit` items that follow `after` in `items`."""
    start = 0
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise bad_request(
                f"Invalid 'after': no object with id '{after}'.", "after", "invalid_value"
            )
        start = ids.index(after) + 1
    data = items[start : start + limit]
    return {"object": "list", "data": data, "has_more": start + limit < len(items)}


def with_ids(body: dict[str, Any]) -> dict[str, Any]:
    """Add `first_id` / `last_id` (null on an empty page) to a list body."""
    data = body["data"]
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    return {**body, "first_id": first, "last_id": last}
