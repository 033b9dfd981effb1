"""Local runs, their events and checkpoints: every query of the local provider."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ftq.shared.models import LocalCheckpoint, LocalRun, LocalRunEvent
from ftq.shared.pagination import paginate

ACTIVE = ("queued", "running")


def get(session: Session, run_id: str) -> LocalRun | None:
    """A run by id."""
    return session.get(LocalRun, run_id)


def lock(session: Session, run_id: str) -> LocalRun | None:
    """A run locked for update."""
    return session.scalar(select(LocalRun).where(LocalRun.id == run_id).with_for_update())


def by_ftq_job(session: Session, ftq_job_id: str) -> LocalRun | None:
    """The run created for one of ftq's jobs."""
    return session.scalar(select(LocalRun).where(LocalRun.ftq_job_id == ftq_job_id))


def by_fine_tuned_model(session: Session, name: str) -> LocalRun | None:
    """The run that produced a fine-tuned model."""
    return session.scalar(select(LocalRun).where(LocalRun.fine_tuned_model == name))


def page(session: Session, after: str | None, limit: int) -> tuple[list[LocalRun], bool]:
    """Runs newest first (ids sort by creation time), after the run id `after`."""
    return paginate(session, select(LocalRun), LocalRun.id, limit=limit, after=after or None)


def active(session: Session) -> list[LocalRun]:
    """Runs that are queued or running, locked; those another sweep holds are skipped."""
    query = select(LocalRun).where(LocalRun.status.in_(ACTIVE)).with_for_update(skip_locked=True)
    return list(session.scalars(query))


def add(session: Session, row: LocalRun | LocalRunEvent | LocalCheckpoint) -> None:
    """Insert a row."""
    session.add(row)
    session.flush()


def events_after(session: Session, run_id: str, after: int) -> list[LocalRunEvent]:
    """A run's events with ids above `after`, oldest first."""
    query = (
        select(LocalRunEvent)
        .where(LocalRunEvent.run_id == run_id, LocalRunEvent.id > after)
        .order_by(LocalRunEvent.id)
    )
    return list(session.scalars(query))


def checkpoints(session: Session, run_id: str) -> list[LocalCheckpoint]:
    """A run's kept checkpoints in step order."""
    query = (
        select(LocalCheckpoint)
        .where(LocalCheckpoint.run_id == run_id)
        .order_by(LocalCheckpoint.step)
    )
    return list(session.scalars(query))


def drop_checkpoints(session: Session, ids: Iterable[int]) -> None:
    """Forget checkpoints whose files were rotated away."""
    wanted = list(ids)
    if wanted:
        session.execute(delete(LocalCheckpoint).where(LocalCheckpoint.id.in_(wanted)))
        session.flush()
