"""Provider slots per (provider, model): the capacity the fair scheduler hands out."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from ftq.shared.models.base import Base
from ftq.shared.timeutil import utcnow


class ProviderCapacity(Base):
    """How many jobs may be active at once on one provider model.

    The row is also the scheduler's lock: admitting jobs for (provider, model) happens while
    holding it `FOR UPDATE`, so concurrent workers never hand out the same free slot twice.
    """

    __tablename__ = "provider_capacity"

    provider: Mapped[str] = mapped_column(String(40), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    capacity: Mapped[int] = mapped_column(default=3)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
