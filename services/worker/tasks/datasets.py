"""datasets.validate: the full validation report of an uploaded file."""

from __future__ import annotations

from ftq.services.worker.celery_app import celery_app
from ftq.services.worker.tasks.outbox import relay_now
from ftq.shared.datasets import service
from ftq.shared.db import session_scope


@celery_app.task(name="datasets.validate")
def validate(dataset_id: str) -> str | None:
    """Validate a dataset and release the jobs waiting on it."""
    with session_scope() as session:
        dataset = service.run_validation(session, dataset_id)
        status = dataset.status if dataset else None
    relay_now()
    return status
