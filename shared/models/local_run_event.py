"""An event of a local run (messages and per-step metrics in OpenAI's shape)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ftq.shared.models.base import Base, CreatedAtMixin


class LocalRunEvent(CreatedAtMixin, Base):
    """One event; its id is the cursor `events_after` pages on."""

    __tablename__ = "local_run_events"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("local_runs.id", ondelete="CASCADE"), index=True)
    level: Mapped[str] = mapped_column(String(10), default="info")
    type: Mapped[str] = mapped_column(String(40), default="message")
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
