"""A job's timeline: ftq's own lifecycle events and the provider's events, deduplicated."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ftq.shared.models.base import Base, CreatedAtMixin

if TYPE_CHECKING:
    from ftq.shared.models.job import Job


class JobEvent(CreatedAtMixin, Base):
    """One event; `provider_event_id` makes re-fetching the provider's events harmless."""

    __tablename__ = "job_events"
    __table_args__ = (UniqueConstraint("job_id", "provider_event_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(20))
    provider_event_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    level: Mapped[str] = mapped_column(String(10), default="info")
    type: Mapped[str] = mapped_column(String(40), default="message")
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    # Never loaded: it tells a flush to insert a new job before the events staged with it.
    job: Mapped[Job] = relationship(lazy="raise")
