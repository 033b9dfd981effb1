"""One prompt of an eval with its reference answer, copied from the dataset."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ftq.shared.models.base import Base


class EvalItem(Base):
    """The messages sent to every model and what a right answer looks like."""

    __tablename__ = "eval_items"
    __table_args__ = (UniqueConstraint("eval_id", "item_index"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    eval_id: Mapped[str] = mapped_column(ForeignKey("evals.id", ondelete="CASCADE"))
    item_index: Mapped[int] = mapped_column()
    messages: Mapped[list[Any]] = mapped_column(default=list)
    reference: Mapped[list[Any]] = mapped_column(default=list)  # accepted answers
    prompt: Mapped[str] = mapped_column(Text, default="")  # the last user text, for people
