"""Fine-tuning jobs: our record of a provider job and everything needed to follow it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, TypeAlias

from sqlalchemy import BigInteger, ForeignKey, Index, Numeric, Row, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from ftq.shared.models.base import Base, CreatedAtMixin
from ftq.shared.timeutil import utcnow

# The job statuses of jobs.schemas (ACTIVE_STATUSES, SLOT_STATUSES) as index predicates; a test
# holds them equal. Queries that should use these indexes name the statuses as literals.
UNFINISHED_PREDICATE = "status IN ('queued', 'running', 'submitted', 'uploading')"
SLOTS_PREDICATE = "status IN ('running', 'submitted', 'uploading')"
QUEUED_PREDICATE = "status = 'queued'"


def _partial(name: str, predicate: str, *columns: str) -> Index:
    return Index(name, *columns, postgresql_where=text(predicate), sqlite_where=text(predicate))


class Job(CreatedAtMixin, Base):
    """A team's fine-tuning request and its mirrored provider state."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_next_poll_at", "status", "next_poll_at"),
        Index("ix_jobs_team_id_created_at", "team_id", "created_at"),
        Index("ix_jobs_provider_model_status", "provider", "model", "status"),
        # Partial: the create's quota count and queue place read unfinished jobs only, and a
        # team's or a model's finished history grows without end.
        _partial("ix_jobs_team_id_unfinished", UNFINISHED_PREDICATE, "team_id"),
        _partial("ix_jobs_slots", SLOTS_PREDICATE, "provider", "model", "team_id"),
        _partial(
            "ix_jobs_queued", QUEUED_PREDICATE, "provider", "model", "team_id", "created_at", "id"
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    provider: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(200))
    training_dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"))
    validation_dataset_id: Mapped[str | None] = mapped_column(
        ForeignKey("datasets.id"), nullable=True
    )
    method: Mapped[dict[str, Any]] = mapped_column(default=dict)
    suffix: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seed: Mapped[int | None] = mapped_column(nullable=True)
    job_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    webhook_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    provider_job_id: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    provider_status: Mapped[str | None] = mapped_column(String(40), nullable=True)
    fine_tuned_model: Mapped[str | None] = mapped_column(String(300), nullable=True)
    trained_tokens: Mapped[int | None] = mapped_column(nullable=True)
    estimated_cost_usd: Mapped[Decimal | None] = mapped_column(Numeric(12, 4), nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(60), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    event_cursor: Mapped[str | None] = mapped_column(String(100), nullable=True)
    next_poll_at: Mapped[datetime | None] = mapped_column(nullable=True)
    poll_interval_seconds: Mapped[float] = mapped_column(default=15.0)
    submit_attempts: Mapped[int] = mapped_column(default=0)
    # Scheduling: when its datasets were ready (eligible for a slot) and when it took a slot.
    ready_at: Mapped[datetime | None] = mapped_column(nullable=True)
    admitted_at: Mapped[datetime | None] = mapped_column(nullable=True)
    validation_split: Mapped[float | None] = mapped_column(nullable=True)
    # Failover (issue 14): providers still to try, in order, and a model name per provider.
    fallback_providers: Mapped[list[Any]] = mapped_column(default=list)
    model_map: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The team's provider credential the job was created with (None: the gateway's own keys).
    credential_id: Mapped[str | None] = mapped_column(
        ForeignKey("provider_credentials.id", ondelete="SET NULL"), nullable=True
    )
    # What the provider's job list last showed (status, tokens, finish, …): a change means sync.
    provider_fingerprint: Mapped[str | None] = mapped_column(String(300), nullable=True)
    provider_created_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # The result file (metrics CSV) fetched when the job succeeded, kept in blob storage.
    result_file_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    result_blob_key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    result_bytes: Mapped[int | None] = mapped_column(nullable=True)
    # The eval asked for when the job succeeds (ftq.shared.evals.schemas.JobEvalRequest) and its id.
    eval_request: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    eval_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # Training diagnosis of its metrics (ftq.shared.jobs.diagnosis), recomputed as steps arrive.
    diagnosis: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    # The best of its checkpoints and final model by its eval (eval.checkpoints).
    best_checkpoint: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    # General-skills retention of base vs tuned (eval.retention): scores, delta, interval, warning.
    retention: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    # The sweep this job is a trial of (issue 18), and whether the sweep stopped it early.
    sweep_id: Mapped[str | None] = mapped_column(
        ForeignKey("sweeps.id", ondelete="SET NULL"), nullable=True, index=True
    )
    stopped_early: Mapped[bool | None] = mapped_column(nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# A job to show: the ORM object, or a read-only row with its attribute names (SQLAlchemy's, or the
# event loop's read as a namespace): the polled reads skip the ORM's loading.
JobRecord: TypeAlias = "Job | Row[Any] | SimpleNamespace"
