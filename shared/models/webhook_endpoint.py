"""A team's webhook endpoints and their (encrypted) signing secrets."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from ftq.shared.models.base import Base, CreatedAtMixin


class WebhookEndpoint(CreatedAtMixin, Base):
    """A URL that receives the team's events it subscribes to."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)
    events: Mapped[list[Any]] = mapped_column(default=list)
    disabled: Mapped[bool] = mapped_column(default=False)
    disabled_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    secret_encrypted: Mapped[str] = mapped_column(String(400))
    # Replaced secrets still in their overlap: [{"secret": encrypted, "expires_at": iso}].
    previous_secrets: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
