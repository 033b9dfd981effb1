"""Job, job-event, metric, checkpoint and capacity queries."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import Row, Select, bindparam, func, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ftq.shared.db import get_engine
from ftq.shared.jobs.schemas import ACTIVE_STATUSES, SLOT_STATUSES
from ftq.shared.models import (
    Dataset,
    Job,
    JobCheckpoint,
    JobEvent,
    JobMetric,
    ProviderCapacity,
    ProviderSweep,
    Team,
)
from ftq.shared.models.job import SLOTS_PREDICATE, UNFINISHED_PREDICATE
from ftq.shared.pagination import paginate
from ftq.shared.timeutil import as_utc, utcnow

POLLED_STATUSES = ("submitted", "running")


def get_for_team(session: Session, team_id: str, job_id: str) -> Job | None:
    """A team's job by id."""
    return session.scalar(select(Job).where(Job.id == job_id, Job.team_id == team_id))


def view_for_team(session: Session, team_id: str, job_id: str) -> Row[Any] | None:
    """A team's job as a read-only row with the model's attribute names (no ORM object)."""
    return session.execute(
        view_for_team_statement(), {"job_id": job_id, "team_id": team_id}
    ).first()


@cache
def view_for_team_statement() -> Select[Any]:
    """`view_for_team`'s statement (parameters `job_id`, `team_id`), built once."""
    columns = [
        column.label(attr.key) for attr in inspect(Job).column_attrs for column in attr.columns
    ]
    return select(*columns).where(
        _JOBS.c.id == bindparam("job_id"), _JOBS.c.team_id == bindparam("team_id")
    )


def lock(session: Session, job_id: str) -> Job | None:
    """A job row locked for update."""
    return session.scalar(select(Job).where(Job.id == job_id).with_for_update())


_TRY_LOCK = text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))")
_UNLOCK = text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))")
_held_here: set[str] = set()
_held_guard = threading.Lock()


@contextmanager
def submission_lock(job_id: str) -> Iterator[bool]:
    """Whether this worker alone submits `job_id` now (held across the provider calls).

    A Postgres advisory lock on its own connection: it outlives the short transactions of the
    submission and is freed when a killed worker's connection drops. SQLite (the embedded mode,
    one process) uses an in-process lock instead.
    """
    engine = get_engine()
    if engine.dialect.name != "postgresql":
        with _held_guard:
            acquired = job_id not in _held_here
            _held_here.add(job_id)
        try:
            yield acquired
        finally:
            if acquired:
                with _held_guard:
                    _held_here.discard(job_id)
        return
    key = {"key": f"ftq.jobs.submit:{job_id}"}
    with engine.connect() as connection:
        acquired = bool(connection.scalar(_TRY_LOCK, key))
        connection.commit()
        try:
            yield acquired
        finally:
            if acquired:
                connection.scalar(_UNLOCK, key)
                connection.commit()


def owns_tuned_model(session: Session, team_id: str, name: str) -> bool:
    """Whether `name` is a fine-tuned model or checkpoint of one of the team's jobs."""
    as_model = select(Job.id).where(Job.team_id == team_id, Job.fine_tuned_model == name)
    as_checkpoint = (
        select(JobCheckpoint.id)
        .join(Job, Job.id == JobCheckpoint.job_id)
        .where(Job.team_id == team_id, JobCheckpoint.fine_tuned_model_checkpoint == name)
    )
    return bool(session.scalar(as_model.limit(1)) or session.scalar(as_checkpoint.limit(1)))


def lock_team_admission(session: Session, team_id: str) -> Team | None:
    """Serialise a team's job creations so its quota and budget checks see each other's jobs;
    the team row as read under the lock (its limits as they are now).

    FOR NO KEY UPDATE: rows that merely reference the team (its deliveries, keys) still insert.
    Counts must be separate, later statements: one statement's snapshot predates its lock wait.
    """
    return session.get(Team, team_id, with_for_update={"key_share": True}, populate_existing=True)


def list_for_team(
    session: Session,
    team_id: str,
    *,
    status: str | None,
    limit: int,
    after: str | None,
    metadata: dict[str, str] | None = None,
) -> tuple[list[Job], bool]:
    """A page of a team's jobs, newest first, optionally by status and metadata pairs."""
    query = select(Job).where(Job.team_id == team_id)
    if status:
        query = query.where(Job.status == status)
    for key, value in (metadata or {}).items():
        query = query.where(Job.job_metadata[key].as_string() == value)
    return paginate(session, query, Job.id, limit=limit, after=after)


def count_active(session: Session, team_id: str) -> int:
    """How many of a team's jobs are not finished."""
    return int(session.scalar(_COUNT_ACTIVE, {"team_id": team_id}) or 0)


# The create path's statements are built once, on the table (Core): no ORM compile per request.
# Statuses as literals, the partial index's own predicate: a prepared statement's generic plan
# can use a partial index only when its predicate does not hang on parameters.
_JOBS = Job.__table__
_COUNT_ACTIVE = (
    select(func.count())
    .select_from(_JOBS)
    .where(_JOBS.c.team_id == bindparam("team_id"), text(UNFINISHED_PREDICATE))
)


def count_queued(session: Session, team_id: str) -> int:
    """How many of a team's jobs wait in `queued`."""
    query = select(func.count()).where(Job.team_id == team_id, Job.status == "queued")
    return int(session.scalar(query) or 0)


def queued_using(session: Session, dataset_id: str) -> list[Job]:
    """Queued jobs that train or validate on a dataset."""
    query = select(Job).where(
        Job.status == "queued",
        (Job.training_dataset_id == dataset_id) | (Job.validation_dataset_id == dataset_id),
    )
    return list(session.scalars(query))


def unreleased_queued(session: Session, limit: int = 500) -> list[Job]:
    """Queued jobs never released although none of their datasets is still validating."""
    validating = select(Dataset.id).where(Dataset.status == "validating")
    query = (
        select(Job)
        .where(
            Job.status == "queued",
            Job.ready_at.is_(None),
            Job.training_dataset_id.not_in(validating),
            Job.validation_dataset_id.is_(None) | Job.validation_dataset_id.not_in(validating),
        )
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(query))


# -- scheduling ---------------------------------------------------------------------------


def lock_capacity(session: Session, provider: str, model: str, capacity: int) -> ProviderCapacity:
    """The (provider, model) capacity row, created if missing, locked for update."""
    query = select(ProviderCapacity).where(
        ProviderCapacity.provider == provider, ProviderCapacity.model == model
    )
    row = session.scalar(query.with_for_update())
    if row is None:
        try:
            with session.begin_nested():
                session.add(ProviderCapacity(provider=provider, model=model, capacity=capacity))
        except IntegrityError:
            pass  # another worker created it first
        row = session.scalar(query.with_for_update().execution_options(populate_existing=True))
        assert row is not None
    if row.capacity != capacity:
        row.capacity = capacity
    return row


def active_by_team(session: Session, provider: str, model: str) -> dict[str, int]:
    """Jobs holding a slot of (provider, model), per team."""
    query = (
        select(Job.team_id, func.count())
        .where(Job.provider == provider, Job.model == model, text(SLOTS_PREDICATE))
        .group_by(Job.team_id)
    )
    return {team_id: int(count) for team_id, count in session.execute(query)}


def ready_queued(session: Session, provider: str, model: str) -> list[Job]:
    """Queued jobs whose datasets are ready, oldest first, skipping rows another worker holds."""
    query = (
        select(Job)
        .where(
            Job.provider == provider,
            Job.model == model,
            Job.status == "queued",
            Job.ready_at.is_not(None),
        )
        .order_by(Job.created_at, Job.id)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(query))


def queue_of(
    session: Session, provider: str, model: str
) -> tuple[list[tuple[str, str, datetime]], dict[str, int]]:
    """(job id, team id, created_at) of every queued job of (provider, model), oldest first,
    and the slots of (provider, model) each team holds: one read."""
    query = (
        select(Job.id, Job.team_id, Job.created_at, Job.status)
        .where(
            Job.provider == provider,
            Job.model == model,
            Job.status.in_(("queued", *SLOT_STATUSES)),
        )
        .order_by(Job.created_at, Job.id)
    )
    queued: list[tuple[str, str, datetime]] = []
    active: dict[str, int] = {}
    for job_id, team_id, created_at, status in session.execute(query):
        if status == "queued":
            queued.append((job_id, team_id, created_at))
        else:
            active[team_id] = active.get(team_id, 0) + 1
    return queued, active


def queue_place(session: Session, job_id: str, provider: str, model: str) -> int | None:
    """A queued job's 1-based place in the fair order of (provider, model), counted by the
    database in one statement from per-team counts (None when it is not queued)."""
    values = {"job_id": job_id, "provider": provider, "model": model}
    before = session.scalar(_QUEUE_PLACE, values)
    return None if before is None else int(before) + 1


# The fair order (`scheduling.fair_order`) sorts queued jobs by (held, created_at, team, rank):
# held is the slots the team holds plus the job's rank among the team's queued jobs. For job J
# (team T, rank r, held h) each team's jobs sort before J as a prefix: T's first r, and of team
# U's q jobs, the k = h - held_U with a smaller held, plus the k-th too when it ties on held but
# sorts first on (created_at, team), i.e. when k < m, U's jobs before J by (created_at, team).
# That is one pass of counts per team, not a window and a self-join over the whole queue: its
# cost was the create's largest query once a sweep had queued a few thousand jobs.
_QUEUE_PLACE = text(
    f"""
    WITH me AS (
        SELECT id, team_id, created_at FROM jobs
        WHERE id = :job_id AND provider = :provider AND model = :model AND status = 'queued'
    ),
    active AS (
        SELECT team_id, count(*) AS n FROM jobs
        WHERE provider = :provider AND model = :model AND {SLOTS_PREDICATE}
        GROUP BY team_id
    ),
    queued AS (
        SELECT j.team_id AS team_id,
               count(*) AS q,
               sum(CASE WHEN j.created_at < me.created_at
                          OR (j.created_at = me.created_at AND j.team_id < me.team_id)
                        THEN 1 ELSE 0 END) AS m,
               sum(CASE WHEN j.team_id = me.team_id
                         AND (j.created_at < me.created_at
                              OR (j.created_at = me.created_at AND j.id < me.id))
                        THEN 1 ELSE 0 END) AS r
        FROM jobs AS j CROSS JOIN me
        WHERE j.provider = :provider AND j.model = :model AND j.status = 'queued'
        GROUP BY j.team_id
    ),
    held AS (
        SELECT q.team_id, q.q, q.m, q.r, coalesce(a.n, 0) AS n
        FROM queued AS q LEFT JOIN active AS a ON a.team_id = q.team_id
    ),
    mine AS (
        SELECT h.r, h.n + h.r AS h FROM held AS h JOIN me ON h.team_id = me.team_id
    )
    SELECT mine.r + coalesce(sum(
        CASE WHEN mine.h - o.n < 0 THEN 0
             WHEN mine.h - o.n >= o.q THEN o.q
             WHEN mine.h - o.n < o.m THEN mine.h - o.n + 1
             ELSE mine.h - o.n END
    ), 0)
    FROM mine CROSS JOIN me LEFT JOIN held AS o ON o.team_id <> me.team_id
    GROUP BY mine.r
    """
)


def pairs_with_ready_jobs(session: Session) -> list[tuple[str, str]]:
    """(provider, model) pairs that have queued jobs ready for a slot."""
    query = (
        select(Job.provider, Job.model)
        .where(Job.status == "queued", Job.ready_at.is_not(None))
        .distinct()
    )
    return [(row[0], row[1]) for row in session.execute(query)]


def month_cost(session: Session, team_id: str, since: datetime, exclude: str | None) -> Decimal:
    """Estimated cost of a team's jobs created since `since` that reached or may reach a provider.

    Jobs that ended before any provider job existed (cancelled while queued, invalid datasets,
    refused) cost nothing and do not count.
    """
    query = select(func.coalesce(func.sum(Job.estimated_cost_usd), 0)).where(
        Job.team_id == team_id,
        Job.created_at >= since,
        Job.estimated_cost_usd.is_not(None),
        (Job.status.in_(ACTIVE_STATUSES)) | (Job.provider_job_id.is_not(None)),
    )
    if exclude:
        query = query.where(Job.id != exclude)
    return Decimal(str(session.scalar(query) or 0))


def month_counts(session: Session, team_id: str, since: datetime) -> dict[str, int]:
    """Jobs created since `since`, by status."""
    query = (
        select(Job.status, func.count())
        .where(Job.team_id == team_id, Job.created_at >= since)
        .group_by(Job.status)
    )
    return {status: int(count) for status, count in session.execute(query)}


def stuck_uploads(session: Session, before: datetime) -> list[str]:
    """Jobs left in `uploading` since before `before` (their submit task was lost), claimed."""
    query = select(Job).where(Job.status == "uploading", Job.updated_at < before)
    jobs = list(session.scalars(query.with_for_update(skip_locked=True)))
    for job in jobs:
        # Touched, so the next sweeps (every few seconds) do not pile up concurrent resubmits
        # of one job, whose find-before-create lookups would race into provider twins.
        job.updated_at = utcnow()
    session.flush()
    return [job.id for job in jobs]


# -- polling ------------------------------------------------------------------------------


def tracked(session: Session, provider: str, job_id: str | None = None) -> list[Job]:
    """Jobs at a provider that ftq still follows (or just `job_id`, if it is one)."""
    query = select(Job).where(
        Job.provider == provider,
        Job.status.in_(POLLED_STATUSES),
        Job.provider_job_id.is_not(None),
    )
    if job_id is not None:
        query = query.where(Job.id == job_id)
    return list(session.scalars(query.order_by(Job.id)))


def providers_followed(session: Session) -> list[str]:
    """Providers with jobs ftq follows."""
    query = (
        select(Job.provider)
        .where(Job.status.in_(POLLED_STATUSES), Job.provider_job_id.is_not(None))
        .distinct()
    )
    return list(session.scalars(query))


def claim_sweep(session: Session, provider: str, now: datetime) -> ProviderSweep | None:
    """The provider's sweep row if its sweep is due, locked (a second sweeper skips it)."""
    query = select(ProviderSweep).where(ProviderSweep.provider == provider)
    row = session.scalar(query.with_for_update(skip_locked=True))
    if row is None:
        try:
            with session.begin_nested():
                session.add(ProviderSweep(provider=provider, last_calls=0))
        except IntegrityError:
            return None
        row = session.scalar(query.with_for_update(skip_locked=True))
        if row is None:
            return None
    due = row.next_sweep_at
    if due is not None and (as_utc(due) or due) > now:
        return None
    return row


def record_sweep(session: Session, provider: str, at: datetime, calls: int) -> None:
    """Note when a provider sweep finished and how many provider calls it made."""
    row = session.get(ProviderSweep, provider)
    if row is not None:
        row.last_sweep_at, row.last_calls = at, calls


def known_provider_event_ids(session: Session, job_id: str, ids: Iterable[str]) -> set[str]:
    """Which of these provider events are already stored."""
    wanted = list(ids)
    if not wanted:
        return set()
    query = select(JobEvent.provider_event_id).where(
        JobEvent.job_id == job_id, JobEvent.provider_event_id.in_(wanted)
    )
    return {row for row in session.scalars(query) if row}


def known_steps(session: Session, job_id: str, steps: Iterable[int]) -> set[int]:
    """Which of these steps already have a metrics row."""
    wanted = list(steps)
    if not wanted:
        return set()
    query = select(JobMetric.step).where(JobMetric.job_id == job_id, JobMetric.step.in_(wanted))
    return set(session.scalars(query))


def known_checkpoint_ids(session: Session, job_id: str, ids: Iterable[str]) -> set[str]:
    """Which of these provider checkpoints are already stored."""
    wanted = list(ids)
    if not wanted:
        return set()
    query = select(JobCheckpoint.provider_checkpoint_id).where(
        JobCheckpoint.job_id == job_id, JobCheckpoint.provider_checkpoint_id.in_(wanted)
    )
    return set(session.scalars(query))


def events_page(
    session: Session, job_id: str, *, limit: int, after: int | None
) -> tuple[list[JobEvent], bool]:
    """A page of a job's events, oldest first."""
    query = select(JobEvent).where(JobEvent.job_id == job_id)
    return paginate(session, query, JobEvent.id, limit=limit, after=after, newest_first=False)


def events_newest_first(
    session: Session, job_id: str, *, limit: int, before: int | None
) -> tuple[list[JobEvent], bool]:
    """A page of a job's events, newest first (OpenAI's order), older than `before`."""
    query = select(JobEvent).where(JobEvent.job_id == job_id)
    return paginate(session, query, JobEvent.id, limit=limit, after=before, newest_first=True)


def metrics(session: Session, job_id: str) -> list[JobMetric]:
    """A job's per-step metrics in step order."""
    query = select(JobMetric).where(JobMetric.job_id == job_id).order_by(JobMetric.step)
    return list(session.scalars(query))


def checkpoints(session: Session, job_id: str) -> list[JobCheckpoint]:
    """A job's checkpoints in step order."""
    query = (
        select(JobCheckpoint)
        .where(JobCheckpoint.job_id == job_id)
        .order_by(JobCheckpoint.step_number, JobCheckpoint.id)
    )
    return list(session.scalars(query))


def add(session: Session, *objects: object) -> None:
    """Stage new rows and flush."""
    session.add_all(objects)
    session.flush()


def stage(session: Session, *objects: object) -> None:
    """Stage new rows for the next flush (a later query's autoflush or the commit)."""
    session.add_all(objects)


def tuned_model_provider(session: Session, team_id: str, name: str) -> str | None:
    """The provider of the team's job that made `name` (a succeeded job's model or a checkpoint)."""
    as_model = select(Job.provider).where(
        Job.team_id == team_id, Job.fine_tuned_model == name, Job.status == "succeeded"
    )
    as_checkpoint = (
        select(Job.provider)
        .join(JobCheckpoint, JobCheckpoint.job_id == Job.id)
        .where(Job.team_id == team_id, JobCheckpoint.fine_tuned_model_checkpoint == name)
    )
    return session.scalar(as_model.limit(1)) or session.scalar(as_checkpoint.limit(1))


MODEL_DELETED = "model_deleted"  # the event type that marks a tuned model deleted at its provider


def tuned_jobs(session: Session, team_id: str) -> list[Job]:
    """The team's succeeded jobs that made a model, newest first."""
    query = select(Job).where(
        Job.team_id == team_id, Job.status == "succeeded", Job.fine_tuned_model.is_not(None)
    )
    return list(session.scalars(query.order_by(Job.id.desc())))


def team_checkpoints(session: Session, team_id: str) -> list[tuple[JobCheckpoint, Job]]:
    """Every checkpoint of the team's jobs with its job, newest job first, then by step."""
    query = (
        select(JobCheckpoint, Job)
        .join(Job, Job.id == JobCheckpoint.job_id)
        .where(Job.team_id == team_id)
        .order_by(Job.id.desc(), JobCheckpoint.step_number.desc(), JobCheckpoint.id.desc())
    )
    return [(checkpoint, job) for checkpoint, job in session.execute(query)]


def tuned_model_source(
    session: Session, team_id: str, name: str
) -> tuple[Job, JobCheckpoint | None] | None:
    """The team's job that made `name` (a succeeded job's model, or a checkpoint of a job)."""
    job = session.scalar(
        select(Job)
        .where(Job.team_id == team_id, Job.status == "succeeded", Job.fine_tuned_model == name)
        .limit(1)
    )
    if job is not None:
        return job, None
    row = session.execute(
        select(JobCheckpoint, Job)
        .join(Job, Job.id == JobCheckpoint.job_id)
        .where(Job.team_id == team_id, JobCheckpoint.fine_tuned_model_checkpoint == name)
        .limit(1)
    ).first()
    return (row[1], row[0]) if row else None


def deleted_models(session: Session, team_id: str) -> set[str]:
    """The names of the team's tuned models deleted at their provider (model_deleted events)."""
    query = (
        select(JobEvent.data)
        .join(Job, Job.id == JobEvent.job_id)
        .where(Job.team_id == team_id, JobEvent.type == MODEL_DELETED)
    )
    return {str(data["model"]) for data in session.scalars(query) if data and "model" in data}
