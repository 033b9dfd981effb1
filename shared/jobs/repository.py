"""Job and job-event queries."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.jobs.schemas import ACTIVE_STATUSES
from shared.models import Job, JobEvent
from shared.pagination import paginate

POLLED_STATUSES = ("submitted", "running")


def get_for_team(session: Session, team_id: str, job_id: str) -> Job | None:
    """A team's job by id."""
    return session.scalar(select(Job).where(Job.id == job_id, Job.team_id == team_id))


def lock(session: Session, job_id: str) -> Job | None:
    """A job row locked for update."""
    return session.scalar(select(Job).where(Job.id == job_id).with_for_update())


def list_for_team(
    session: Session, team_id: str, *, status: str | None, limit: int, after: str | None
) -> tuple[list[Job], bool]:
    """A page of a team's jobs, newest first, optionally by status."""
    query = select(Job).where(Job.team_id == team_id)
    if status:
        query = query.where(Job.status == status)
    return paginate(session, query, Job.id, limit=limit, after=after)


def count_active(session: Session, team_id: str) -> int:
    """How many of a team's jobs are not finished."""
    query = select(func.count()).where(Job.team_id == team_id, Job.status.in_(ACTIVE_STATUSES))
    return int(session.scalar(query) or 0)


def queue_position(session: Session, job: Job) -> int:
    """1 + the queued jobs for the same provider and model created before this one."""
    query = select(func.count()).where(
        Job.status == "queued",
        Job.provider == job.provider,
        Job.model == job.model,
        Job.id < job.id,
    )
    return int(session.scalar(query) or 0) + 1


def queued_using(session: Session, dataset_id: str) -> list[Job]:
    """Queued jobs that train or validate on a dataset."""
    query = select(Job).where(
        Job.status == "queued",
        (Job.training_dataset_id == dataset_id) | (Job.validation_dataset_id == dataset_id),
    )
    return list(session.scalars(query))


def claim_due_polls(session: Session, now: datetime, limit: int) -> list[Job]:
    """Jobs at the provider whose next poll is due, skipping rows another sweep holds."""
    query = (
        select(Job)
        .where(Job.status.in_(POLLED_STATUSES), Job.next_poll_at <= now)
        .order_by(Job.next_poll_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(query))


def known_provider_event_ids(session: Session, job_id: str, ids: Iterable[str]) -> set[str]:
    """Which of these provider events are already stored."""
    wanted = list(ids)
    if not wanted:
        return set()
    query = select(JobEvent.provider_event_id).where(
        JobEvent.job_id == job_id, JobEvent.provider_event_id.in_(wanted)
    )
    return {row for row in session.scalars(query) if row}


def events_page(
    session: Session, job_id: str, *, limit: int, after: int | None
) -> tuple[list[JobEvent], bool]:
    """A page of a job's events, oldest first."""
    query = select(JobEvent).where(JobEvent.job_id == job_id)
    return paginate(session, query, JobEvent.id, limit=limit, after=after, newest_first=False)


def add(session: Session, *objects: Job | JobEvent) -> None:
    """Stage new rows and flush."""
    session.add_all(objects)
    session.flush()


def metric_events(session: Session, job_id: str) -> list[JobEvent]:
    """A job's provider metrics events in step order."""
    query = (
        select(JobEvent)
        .where(JobEvent.job_id == job_id, JobEvent.type == "metrics")
        .order_by(JobEvent.id)
    )
    return list(session.scalars(query))
