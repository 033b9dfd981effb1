"""Hyperparameter sweeps: one base job request tried with several hyperparameter sets."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Index, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from ftq.shared.models.base import Base, CreatedAtMixin
from ftq.shared.timeutil import utcnow


class Sweep(CreatedAtMixin, Base):
    """A sweep; its trials are ordinary jobs whose `sweep_id` points here."""

    __tablename__ = "sweeps"
    __table_args__ = (
        Index("ix_sweeps_team_id_id", "team_id", "id"),
        Index("ix_sweeps_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20), default="running")
    objective: Mapped[str] = mapped_column(String(40), default="score")
    # The search as accepted (type, seed, n_trials, space) and the base job request.
    search: Mapped[dict[str, Any]] = mapped_column(default=dict)
    base: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Early stopping settings: margin over the best validation loss and evaluations to wait.
    early_stopping: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    best_job_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    estimated_cost_usd: Mapped[Decimal | None] = mapped_column(Numeric(12, 4), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
