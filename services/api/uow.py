"""The request boundary: commit, then relay the outbox so follow-up work starts at once."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ftq.services.worker.tasks.outbox import send_own
from ftq.shared.outbox import take_staged


def commit(session: Session) -> None:
    """Commit the request's work and hand the tasks it queued to the broker."""
    staged = take_staged(session)
    session.commit()
    send_own(staged)
