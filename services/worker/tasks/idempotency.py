"""idempotency.purge (beat): expired Idempotency-Key responses and week-old task counters."""

from __future__ import annotations

from ftq.services.worker.celery_app import celery_app
from ftq.shared.attempts import service as attempts
from ftq.shared.db import session_scope
from ftq.shared.idempotency import service


@celery_app.task(name="idempotency.purge")
def purge() -> int:
    """Delete expired keys and stale delivery counters; how many keys."""
    with session_scope() as session:
        purged = service.purge_expired(session)
        attempts.purge_stale(session)
        return purged
