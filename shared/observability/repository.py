"""Counts read at scrape time."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ftq.shared.models import Job


def jobs_by_status(session: Session) -> dict[str, int]:
    """How many jobs are in each status."""
    rows = session.execute(select(Job.status, func.count()).group_by(Job.status))
    return {status: int(count) for status, count in rows}
