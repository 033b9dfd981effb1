"""Scheduled re-evaluation: one model scored on one dataset by one grader on a cron schedule."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ftq.shared.models.base import Base, CreatedAtMixin
from ftq.shared.timeutil import utcnow


class EvalSchedule(CreatedAtMixin, Base):
    """A schedule; each due slot becomes an ordinary eval recorded in eval_schedule_runs."""

    __tablename__ = "eval_schedules"
    __table_args__ = (
        Index("ix_eval_schedules_team_id_id", "team_id", "id"),
        Index("ix_eval_schedules_status_next_run_at", "status", "next_run_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    model: Mapped[str] = mapped_column(String(300))
    dataset_id: Mapped[str] = mapped_column(String(40))
    grader: Mapped[str] = mapped_column(String(20))
    # The grader's settings as POST /v1/evals takes them ({"pattern"}, {"json_schema"}, {"judge"}).
    grader_config: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    provider: Mapped[str | None] = mapped_column(String(40), nullable=True)
    max_items: Mapped[int | None] = mapped_column(nullable=True)
    cron: Mapped[str] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # Null until the first completed run's score becomes the baseline (unless one was given).
    baseline_score: Mapped[float | None] = mapped_column(nullable=True)
    baseline_eval_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    tolerance: Mapped[float] = mapped_column(default=0.05)
    status: Mapped[str] = mapped_column(String(20), default="active")
    next_run_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
