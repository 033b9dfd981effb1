"""Idempotency keys of create POSTs: the stored response a retry with the same key replays."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ftq.shared.models.base import Base, CreatedAtMixin


class IdempotencyKey(CreatedAtMixin, Base):
    """One team's `Idempotency-Key`, the request it named and the response it got."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("team_id", "key", name="uq_idempotency_keys_team_id_key"),
        Index("ix_idempotency_keys_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int] = mapped_column()
    response_body: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column()
