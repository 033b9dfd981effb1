"""A kept checkpoint of a local run (adapter and optimizer state on the workers' volume)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ftq.shared.models.base import Base, CreatedAtMixin


class LocalCheckpoint(CreatedAtMixin, Base):
    """One checkpoint per (run, step); only the last three are kept."""

    __tablename__ = "local_checkpoints"
    __table_args__ = (UniqueConstraint("run_id", "step"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("local_runs.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column()
    path: Mapped[str] = mapped_column(String(500))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
