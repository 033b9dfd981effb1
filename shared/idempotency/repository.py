"""Idempotency key queries."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ftq.shared.models import IdempotencyKey


def _lock_id(team_id: str | None, key: str) -> int:
    digest = hashlib.sha256(f"ftq-idempotency:{team_id}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def try_lock(session: Session, team_id: str | None, key: str) -> bool:
    """Hold the key until this transaction ends; False when another request holds it."""
    if session.get_bind().dialect.name != "postgresql":
        return True  # SQLite runs one writing transaction at a time (BEGIN IMMEDIATE)
    return bool(session.scalar(select(func.pg_try_advisory_xact_lock(_lock_id(team_id, key)))))


def get(session: Session, team_id: str | None, key: str) -> IdempotencyKey | None:
    """A team's stored key; with no team, the admin's (stored under the team it made)."""
    query = select(IdempotencyKey).where(IdempotencyKey.key == key)
    if team_id is not None:
        query = query.where(IdempotencyKey.team_id == team_id)
    return session.scalars(query.limit(1)).first()


def add(session: Session, row: IdempotencyKey) -> None:
    """Stage a stored response."""
    session.add(row)
    session.flush()


def remove(session: Session, row: IdempotencyKey) -> None:
    """Forget an expired key."""
    session.delete(row)
    session.flush()


def delete_expired(session: Session, now: datetime) -> int:
    """Drop every key past its expiry."""
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now))
    return int(getattr(result, "rowcount", 0) or 0)
