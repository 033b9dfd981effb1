"""Deliveries of one Celery task message, counted so a poison message cannot loop forever."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from ftq.shared.models.base import Base, CreatedAtMixin
from ftq.shared.timeutil import utcnow


class TaskAttempt(CreatedAtMixin, Base):
    """How often a task message (task id and retry number) started without finishing."""

    __tablename__ = "task_attempts"

    delivery: Mapped[str] = mapped_column(String(200), primary_key=True)
    task: Mapped[str] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(default=0)
    last_started_at: Mapped[datetime] = mapped_column(default=utcnow)
