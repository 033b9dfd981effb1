"""Team API shapes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TeamCreate(BaseModel):
    """Admin request to create a team."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    max_active_jobs: int = Field(default=10, ge=1, le=1000)
    # The column is NUMERIC(12, 2): anything larger would fail in the database, not here.
    monthly_budget_usd: Decimal | None = Field(default=None, ge=0, le=1_000_000_000)


class TeamUsage(BaseModel):
    """What a team has used this calendar month (UTC)."""

    month: str
    estimated_cost_usd: Decimal
    budget_remaining_usd: Decimal | None
    jobs_created: int
    active_jobs: int
    queued_jobs: int


class Team(BaseModel):
    """A team as its members and admins see it."""

    model_config = ConfigDict(from_attributes=True)

    object: Literal["team"] = "team"
    id: str
    name: str
    max_active_jobs: int
    monthly_budget_usd: Decimal | None
    created_at: datetime
    usage: TeamUsage | None = None


class ApiKeyCreated(BaseModel):
    """A new key; the only time its plaintext is returned."""

    object: Literal["api_key"] = "api_key"
    id: str
    key: str
    prefix: str


class TeamCreated(Team):
    """A new team with its first key and its job-webhook signing secret, shown once."""

    api_key: ApiKeyCreated
    signing_secret: str


class SigningSecretRotated(BaseModel):
    """The team's new job-webhook signing secret, shown once; the old one signs until then."""

    signing_secret: str
    previous_valid_until: datetime
