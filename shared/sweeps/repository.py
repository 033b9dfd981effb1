"""Sweep queries."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from ftq.shared.models import Job, JobMetric, Sweep
from ftq.shared.pagination import paginate


def add(session: Session, sweep: Sweep) -> None:
    """Stage a new sweep."""
    session.add(sweep)
    session.flush()


def get_for_team(session: Session, team_id: str, sweep_id: str) -> Sweep | None:
    """The team's sweep, or None (another team's is None too)."""
    return session.scalar(select(Sweep).where(Sweep.id == sweep_id, Sweep.team_id == team_id))


def lock(session: Session, sweep_id: str) -> Sweep | None:
    """The sweep under its row lock, so one advance at a time decides its outcome."""
    return session.scalar(select(Sweep).where(Sweep.id == sweep_id).with_for_update())


def list_page(
    session: Session, team_id: str, limit: int, after: str | None
) -> tuple[list[Sweep], bool]:
    """The team's sweeps, newest first."""
    query = select(Sweep).where(Sweep.team_id == team_id)
    return paginate(session, query, Sweep.id, limit=limit, after=after)


def running_ids(session: Session) -> list[str]:
    """Sweeps still waiting on trials."""
    return list(session.scalars(select(Sweep.id).where(Sweep.status == "running")))


def trials(session: Session, sweep_id: str) -> list[Job]:
    """A sweep's trial jobs in creation order."""
    query = select(Job).where(Job.sweep_id == sweep_id).order_by(Job.created_at, Job.id)
    return list(session.scalars(query))


def valid_losses(session: Session, job_ids: Sequence[str]) -> dict[str, dict[int, float]]:
    """Each job's validation loss by step (steps without one are left out)."""
    query = select(JobMetric.job_id, JobMetric.step, JobMetric.valid_loss).where(
        JobMetric.job_id.in_(job_ids), JobMetric.valid_loss.is_not(None)
    )
    losses: dict[str, dict[int, float]] = {job_id: {} for job_id in job_ids}
    for job_id, step, loss in session.execute(query):
        if loss is not None:
            losses[job_id][step] = loss
    return losses
