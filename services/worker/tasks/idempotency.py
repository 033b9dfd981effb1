"""idempotency.purge (beat): drop Idempotency-Key responses older than 24 hours."""

from __future__ import annotations

from services.worker.celery_app import celery_app
from shared.db import session_scope
from shared.idempotency import service


@celery_app.task(name="idempotency.purge")
def purge() -> int:
    """Delete expired keys; how many."""
    with session_scope() as session:
        return service.purge_expired(session)
