"""A lost submission is resubmitted once per stuck period, never by every sweep in between."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from ftq.shared.jobs import repository
from ftq.shared.timeutil import utcnow
from tests.factories import job_row, team_row


def test_a_stuck_upload_is_claimed_by_one_sweep_only(session: Session) -> None:
    team, _ = team_row(session)
    job = job_row(session, team, status="uploading", provider_job_id=None)
    job.updated_at = utcnow() - timedelta(hours=1)
    session.flush()
    cutoff = utcnow() - timedelta(minutes=45)
    assert repository.stuck_uploads(session, cutoff) == [job.id]
    assert repository.stuck_uploads(session, cutoff) == []  # the next sweep, 2 s later
    later = utcnow() + timedelta(minutes=1)  # a whole stuck period after the resubmit
    assert repository.stuck_uploads(session, later) == [job.id]
