"""Team and key queries."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ftq.shared.models import ApiKey, Team


def get_team(session: Session, team_id: str) -> Team | None:
    """A team by id."""
    return session.get(Team, team_id)


def get_team_by_name(session: Session, name: str) -> Team | None:
    """A team by its unique name."""
    return session.scalar(select(Team).where(Team.name == name))


def team_for_active_key(session: Session, key_hash: str) -> Team | None:
    """The team owning a non-revoked key, in one round trip (every request authenticates)."""
    query = (
        select(Team)
        .join(ApiKey, ApiKey.team_id == Team.id)
        .where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
    )
    return session.scalar(query)


def get_key(session: Session, team_id: str, key_id: str) -> ApiKey | None:
    """A team's key by id."""
    return session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.team_id == team_id))


def add(session: Session, *objects: Team | ApiKey) -> None:
    """Stage new rows and flush so constraint errors surface here."""
    session.add_all(objects)
    session.flush()
