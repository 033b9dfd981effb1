"""A run of the `local` provider: one LoRA training job on ftq's own workers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ftq.shared.models.base import Base, CreatedAtMixin


class LocalRun(CreatedAtMixin, Base):
    """The provider-side job; `ftq_job_id` is unique, so a retried submission finds it again."""

    __tablename__ = "local_runs"
    __table_args__ = (CheckConstraint("attempt >= 0", name="attempt_nonnegative"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    ftq_job_id: Mapped[str] = mapped_column(String(40), unique=True)
    model: Mapped[str] = mapped_column(String(300))
    training_file: Mapped[str] = mapped_column(String(300))
    validation_file: Mapped[str | None] = mapped_column(String(300), nullable=True)
    method: Mapped[dict[str, Any]] = mapped_column(default=dict)
    suffix: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seed: Mapped[int | None] = mapped_column(nullable=True)
    run_metadata: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    fine_tuned_model: Mapped[str | None] = mapped_column(String(400), nullable=True)
    trained_tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(nullable=True)
    attempts: Mapped[int] = mapped_column(default=0)
    # The Ray Job now training the run (`{id}-a{attempt}`); 0 before the first submission.
    attempt: Mapped[int] = mapped_column(default=0, server_default="0")
    step: Mapped[int] = mapped_column(default=0)
    total_steps: Mapped[int | None] = mapped_column(nullable=True)
    artifact_prefix: Mapped[str | None] = mapped_column(String(300), nullable=True)
    result_key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
