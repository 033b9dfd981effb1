"""Teams: the tenant boundary of every object."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from ftq.shared.models.base import Base, CreatedAtMixin


class Team(CreatedAtMixin, Base):
    """A team with its quotas and the secret that signs its jobs' own webhook URLs."""

    __tablename__ = "teams"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    max_active_jobs: Mapped[int] = mapped_column(default=10)
    monthly_budget_usd: Mapped[Decimal | None] = mapped_column(Numeric(12, 2), nullable=True)
    signing_secret_encrypted: Mapped[str] = mapped_column(String(400))
    # Replaced signing secrets still in their overlap: [{"secret": encrypted, "expires_at": iso}].
    previous_signing_secrets: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
