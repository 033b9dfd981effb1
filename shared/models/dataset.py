"""Uploaded JSONL datasets and their validation report."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ftq.shared.models.base import Base, CreatedAtMixin


class Dataset(CreatedAtMixin, Base):
    """A team's file: stored blob, SHA-256, status and report."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("team_id", "sha256", "purpose"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(20))
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    blob_key: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20), default="validating")
    n_examples: Mapped[int | None] = mapped_column(nullable=True)
    report: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    provider_files: Mapped[dict[str, Any]] = mapped_column(default=dict)
    validated_at: Mapped[datetime | None] = mapped_column(nullable=True)
