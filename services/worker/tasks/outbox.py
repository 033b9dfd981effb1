"""outbox.relay: send tasks whose transactions committed but whose enqueue did not happen."""

from __future__ import annotations

from ftq.services.worker.celery_app import celery_app, send
from ftq.shared.db import session_scope
from ftq.shared.outbox import relay


@celery_app.task(name="outbox.relay")
def relay_task() -> int:
    """Relay what the request-time relay missed (broker down, process killed)."""
    total = 0
    while True:
        with session_scope() as session:
            sent = relay(session, send)
        total += sent
        if sent < 200:
            return total


def relay_now() -> int:
    """Relay right after a commit, in the committing process; failures wait for the sweep."""
    try:
        with session_scope() as session:
            return relay(session, send)
    except Exception:  # the sweep retries; the caller's commit already succeeded
        return 0
