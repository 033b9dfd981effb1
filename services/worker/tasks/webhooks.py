"""webhooks.deliver and webhooks.sweep: signed delivery with retry times in the database."""

from __future__ import annotations

from services.worker.celery_app import celery_app
from shared.db import session_scope
from shared.webhooks import service


@celery_app.task(name="webhooks.deliver")
def deliver(delivery_id: str) -> str | None:
    """Attempt one delivery."""
    with session_scope() as session:
        return service.deliver(session, delivery_id)


@celery_app.task(name="webhooks.sweep")
def sweep() -> int:
    """Claim deliveries whose retry time has come and attempt each."""
    with session_scope() as session:
        due = service.claim_due(session)
    for delivery_id in due:
        deliver.delay(delivery_id)
    return len(due)
