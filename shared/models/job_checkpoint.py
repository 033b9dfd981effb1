"""A provider checkpoint of a job: a model snapshot at a step, with that step's metrics."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ftq.shared.models.base import Base, CreatedAtMixin


class JobCheckpoint(CreatedAtMixin, Base):
    """One checkpoint; (job, provider checkpoint id) is unique, so re-fetching adds nothing."""

    __tablename__ = "job_checkpoints"
    __table_args__ = (UniqueConstraint("job_id", "provider_checkpoint_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    provider_checkpoint_id: Mapped[str] = mapped_column(String(100))
    step_number: Mapped[int] = mapped_column()
    fine_tuned_model_checkpoint: Mapped[str] = mapped_column(String(300))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    provider_created_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
