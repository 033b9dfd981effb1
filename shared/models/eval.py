"""Evaluations: models scored on a dataset by one grader, side by side."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ftq.shared.models.base import Base, CreatedAtMixin
from ftq.shared.timeutil import utcnow


class Eval(CreatedAtMixin, Base):
    """One eval request; its items and per-model outputs live in eval_items / eval_outputs."""

    __tablename__ = "evals"
    __table_args__ = (
        Index("ix_evals_team_id_id", "team_id", "id"),
        Index("ix_evals_status_lease_until", "status", "lease_until"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    job_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), nullable=True, index=True
    )
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    # A record of the source, not a foreign key: items are copied in, so the dataset may go.
    dataset_id: Mapped[str] = mapped_column(String(40))
    grader: Mapped[str] = mapped_column(String(20))
    # The grader's settings, as accepted at creation: {"pattern": ...} for regex,
    # {"schema": {...}} for json_schema (null for the graders that need none).
    grader_config: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    models: Mapped[list[Any]] = mapped_column(default=list)
    provider: Mapped[str] = mapped_column(String(40))
    max_items: Mapped[int | None] = mapped_column(nullable=True)
    concurrency: Mapped[int] = mapped_column(default=4)
    n_items: Mapped[int | None] = mapped_column(nullable=True)  # set once items are copied in
    error_code: Mapped[str | None] = mapped_column(String(60), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    runs: Mapped[int] = mapped_column(default=0)
    # The running task's lease: another run waits until it lapses (a crashed worker's does).
    lease_token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
