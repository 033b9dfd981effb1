"""One slot of an eval schedule: the eval it started and, once that finished, the verdict."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ftq.shared.models.base import Base, CreatedAtMixin


class EvalScheduleRun(CreatedAtMixin, Base):
    """Unique per (schedule, slot): two beats or a retried tick cannot run a slot twice."""

    __tablename__ = "eval_schedule_runs"
    __table_args__ = (
        UniqueConstraint("schedule_id", "slot", name="uq_eval_schedule_runs_schedule_id_slot"),
        Index("ix_eval_schedule_runs_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    schedule_id: Mapped[str] = mapped_column(ForeignKey("eval_schedules.id", ondelete="CASCADE"))
    slot: Mapped[datetime] = mapped_column()
    # A record of the eval, not a foreign key: the team may delete evals, the history stays.
    eval_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="running")
    score: Mapped[float | None] = mapped_column(nullable=True)
    interval: Mapped[list[Any] | None] = mapped_column(nullable=True)
    baseline: Mapped[float | None] = mapped_column(nullable=True)
    regressed: Mapped[bool] = mapped_column(default=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    settled_at: Mapped[datetime | None] = mapped_column(nullable=True)
