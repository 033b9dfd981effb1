"""webhooks.deliver and webhooks.sweep: leased batches sent concurrently, retry times in the db."""

from __future__ import annotations

import time

from ftq.services.worker.celery_app import celery_app
from ftq.shared.db import session_scope
from ftq.shared.webhooks import service
from ftq.shared.webhooks.dispatcher import Dispatcher

# A task hands back to the queue after this long, so sweeps never pile up behind one.
MAX_TASK_SECONDS = 60.0


@celery_app.task(name="webhooks.deliver")
def deliver(delivery_id: str | None = None) -> int:
    """Send this delivery, if still due, together with whatever else is due."""
    return deliver_due(first_id=delivery_id)


@celery_app.task(name="webhooks.sweep")
def sweep() -> int:
    """Send every delivery whose (re)try time has come."""
    return deliver_due()


def deliver_due(
    first_id: str | None = None,
    *,
    batch_size: int = service.BATCH_SIZE,
    dispatcher: Dispatcher | None = None,
) -> int:
    """Claim, send and record batches until nothing is due; how many were attempted."""
    total, started = 0, time.monotonic()
    while time.monotonic() - started < MAX_TASK_SECONDS:
        with session_scope() as session:
            claimed = service.claim_batch(session, limit=batch_size, first_id=first_id)
        if not claimed:
            break
        results = service.send_batch(claimed, dispatcher)
        with session_scope() as session:
            service.record_batch(session, claimed, results)
        total, first_id = total + len(claimed), None
        if len(claimed) < batch_size:
            break
    return total
