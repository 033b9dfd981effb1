"""One model's answer to one eval item and its score (or the provider's error)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ftq.shared.models.base import Base
from ftq.shared.timeutil import utcnow


class EvalOutput(Base):
    """Written once per (eval, model, item): a rerun after a crash skips what is here."""

    __tablename__ = "eval_outputs"
    __table_args__ = (UniqueConstraint("eval_id", "model", "item_index"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    eval_id: Mapped[str] = mapped_column(ForeignKey("evals.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(300))
    item_index: Mapped[int] = mapped_column()
    output: Mapped[str | None] = mapped_column(Text, nullable=True)
    score: Mapped[float | None] = mapped_column(nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)  # the judge's, if judged
    attempts: Mapped[int] = mapped_column(default=1)
    completed_at: Mapped[datetime] = mapped_column(default=utcnow)
