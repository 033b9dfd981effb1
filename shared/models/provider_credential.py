"""A team's own key for a provider, encrypted at rest (at most one active per provider)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from ftq.shared.models.base import Base, CreatedAtMixin

ACTIVE = text("revoked_at IS NULL")


class ProviderCredential(CreatedAtMixin, Base):
    """A key a team registered for one provider, with where to use it."""

    __tablename__ = "provider_credentials"
    __table_args__ = (
        Index(
            "uq_provider_credentials_team_id_provider_active",
            "team_id",
            "provider",
            unique=True,
            postgresql_where=ACTIVE,
            sqlite_where=ACTIVE,
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(40))
    key_encrypted: Mapped[str] = mapped_column(String(2000))
    # The key's last four characters, so a person can tell keys apart.
    key_hint: Mapped[str] = mapped_column(String(8))
    base_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    organization: Mapped[str | None] = mapped_column(String(200), nullable=True)
    azure_endpoint: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    rotated_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
