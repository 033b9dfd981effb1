"""Training metrics of one step of a job, as the provider reported them."""

from __future__ import annotations

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from ftq.shared.models.base import Base


class JobMetric(Base):
    """One row per (job, step): re-reported steps update nothing, so retries add no duplicates."""

    __tablename__ = "job_metrics"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    total_steps: Mapped[int | None] = mapped_column(nullable=True)
    train_loss: Mapped[float | None] = mapped_column(nullable=True)
    train_mean_token_accuracy: Mapped[float | None] = mapped_column(nullable=True)
    valid_loss: Mapped[float | None] = mapped_column(nullable=True)
    valid_mean_token_accuracy: Mapped[float | None] = mapped_column(nullable=True)
    full_valid_loss: Mapped[float | None] = mapped_column(nullable=True)
    full_valid_mean_token_accuracy: Mapped[float | None] = mapped_column(nullable=True)
