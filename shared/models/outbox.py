"""Transactional outbox: work caused by a state change commits with it and is relayed after."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ftq.shared.models.base import Base, CreatedAtMixin


class OutboxMessage(CreatedAtMixin, Base):
    """A Celery task to send once the transaction that wrote it has committed."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_dispatched_at_id", "dispatched_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    task: Mapped[str] = mapped_column(String(100))
    args: Mapped[list[Any]] = mapped_column(default=list)
    dispatched_at: Mapped[datetime | None] = mapped_column(nullable=True)
    relay_attempts: Mapped[int] = mapped_column(default=0)
    # Until then only the process that committed the row sends it (it marks the row after).
    leased_until: Mapped[datetime | None] = mapped_column(nullable=True)
