"""Cursor pagination shared by every list endpoint: newest first, `after` = last id seen."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

T = TypeVar("T")
MAX_LIMIT = 100


class Page(BaseModel, Generic[T]):
    """`{"object": "list", "data": [...], "has_more": bool}`."""

    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool


def paginate(
    session: Session,
    query: Select[Any],
    id_column: InstrumentedAttribute[Any],
    *,
    limit: int,
    after: str | int | None,
    newest_first: bool = True,
) -> tuple[list[Any], bool]:
    """Rows after the cursor in id order, plus whether more follow."""
    if after is not None:
        query = query.where(id_column < after if newest_first else id_column > after)
    order = id_column.desc() if newest_first else id_column.asc()
    rows = list(session.scalars(query.order_by(order).limit(limit + 1)))
    return rows[:limit], len(rows) > limit
