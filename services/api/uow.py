"""The request boundary: commit, then relay the outbox so follow-up work starts at once."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from ftq.services.worker.tasks.outbox import send_own
from ftq.shared.models import OutboxMessage
from ftq.shared.outbox import take_staged


def commit(session: Session) -> None:
    """Commit the request's work and hand the tasks it queued to the broker."""
    staged = take_staged(session)
    session.commit()
    relay_staged(staged)


def relay_staged(staged: Sequence[OutboxMessage]) -> int:
    """Send the committed request's leased messages (tests swap this for a list)."""
    return send_own(staged)
