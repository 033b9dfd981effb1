"""The request boundary: commit, then relay the outbox so follow-up work starts at once."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ftq.services.worker.tasks.outbox import relay_now


def commit(session: Session) -> None:
    """Commit the request's work and hand its queued tasks to the broker."""
    session.commit()
    relay_now()
