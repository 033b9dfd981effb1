"""outbox.relay: send tasks whose transactions committed but whose enqueue did not happen."""

from __future__ import annotations

from collections.abc import Sequence

from ftq.services.worker.celery_app import celery_app, send
from ftq.shared.db import session_scope
from ftq.shared.models import OutboxMessage
from ftq.shared.outbox import SWEEP_GRACE, relay, relay_committed
from ftq.shared.timeutil import utcnow


@celery_app.task(name="outbox.relay")
def relay_task() -> int:
    """Relay what the request-time relay missed (broker down, process killed)."""
    total = 0
    older_than = utcnow() - SWEEP_GRACE
    while True:
        with session_scope() as session:
            sent = relay(session, send, older_than=older_than)
        total += sent
        if sent < 200:
            return total


def relay_now(messages: Sequence[OutboxMessage] | None = None) -> int:
    """Relay right after a commit, in the committing process; failures wait for the sweep.

    With `messages` (what the committed transaction enqueued) only those are claimed and sent;
    without, every pending message is.
    """
    if messages is not None and not messages:
        return 0
    try:
        with session_scope() as session:
            if messages is None:
                return relay(session, send)
            return relay_committed(session, messages, send)
    except Exception:  # the sweep retries; the caller's commit already succeeded
        return 0
