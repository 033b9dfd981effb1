"""Task attempt counter queries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ftq.shared.models import TaskAttempt


def bump(session: Session, delivery: str, task: str, now: datetime) -> int:
    """Count one more start of a task message; the new count."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(TaskAttempt)
        .values(delivery=delivery, task=task, attempts=1, last_started_at=now, created_at=now)
        .on_conflict_do_update(
            index_elements=["delivery"],
            set_={"attempts": TaskAttempt.attempts + 1, "last_started_at": now},
        )
        .returning(TaskAttempt.attempts)
    )
    return int(session.execute(statement).scalar_one())


def forget(session: Session, delivery: str) -> None:
    """Drop a finished message's counter."""
    session.execute(delete(TaskAttempt).where(TaskAttempt.delivery == delivery))


def delete_started_before(session: Session, cutoff: datetime) -> int:
    """Drop counters last started before `cutoff`; how many."""
    result = session.execute(delete(TaskAttempt).where(TaskAttempt.last_started_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
