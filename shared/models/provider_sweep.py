"""The per-provider polling sweep's schedule."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from ftq.shared.models.base import Base


class ProviderSweep(Base):
    """When a provider's job list is next read (one list-based sweep per provider)."""

    __tablename__ = "provider_sweeps"

    provider: Mapped[str] = mapped_column(String(40), primary_key=True)
    next_sweep_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_sweep_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_calls: Mapped[int] = mapped_column(default=0)
