"""jobs.submit, jobs.sweep, jobs.poll, jobs.cancel_at_provider: the provider side of a job."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from services.worker.celery_app import celery_app
from services.worker.tasks.outbox import relay_now
from shared.db import session_scope
from shared.jobs import service
from shared.models import Dataset
from shared.providers.base import (
    Provider,
    ProviderError,
    ProviderRejected,
    ProviderRetryable,
    ProviderUnavailable,
)
from shared.providers.registry import get_provider
from shared.storage import get_blob_store

log = logging.getLogger(__name__)
MAX_SUBMIT_RETRIES = 8


def _backoff(task: Task, exc: ProviderRetryable) -> float:
    base = min(2.0**task.request.retries, 60.0)
    return max(base, exc.retry_after or 0.0)


@celery_app.task(name="jobs.submit", bind=True, max_retries=MAX_SUBMIT_RETRIES)
def submit(self: Task, job_id: str) -> str | None:
    """Upload the files and create the provider job exactly once."""
    try:
        provider_job_id = _submit(job_id)
    except ProviderRetryable as exc:
        if self.request.retries >= MAX_SUBMIT_RETRIES:
            _fail(job_id, "provider_failed", f"provider kept failing: {exc.message}")
            return None
        raise self.retry(exc=exc, countdown=_backoff(self, exc)) from exc
    except ProviderUnavailable as exc:
        _fail(
            job_id,
            "provider_unavailable",
            f"the provider refuses new fine-tuning jobs for this account: {exc.message}",
        )
        return None
    except ProviderRejected as exc:
        _fail(job_id, "provider_rejected", exc.message)
        return None
    return provider_job_id


def _submit(job_id: str) -> str | None:
    with session_scope() as session:
        plan = service.begin_submission(session, job_id)
    relay_now()
    if plan is None:
        return None
    provider = get_provider(plan.provider)
    training_file = _ensure_uploaded(provider, plan.training)
    validation_file = _ensure_uploaded(provider, plan.validation) if plan.validation else None
    # Look before creating: a crash after the provider accepted must not create a twin.
    existing = provider.find_job(job_id)
    created = existing or provider.create_job(
        service.build_spec(plan, training_file, validation_file)
    )
    with session_scope() as session:
        live = service.record_submission(session, job_id, created)
    if not live:
        provider.cancel_job(created.id)
    relay_now()
    return created.id


def _ensure_uploaded(provider: Provider, dataset: Dataset) -> str:
    known = (dataset.provider_files or {}).get(provider.name)
    if known and provider.file_exists(known):
        return str(known)
    path = get_blob_store().path(dataset.blob_key)
    name = dataset.name if dataset.name.endswith(".jsonl") else f"{dataset.name}.jsonl"
    file_id = provider.upload_file(path, name)
    with session_scope() as session:
        service.remember_file(session, dataset.id, provider.name, file_id)
    return file_id


def _fail(job_id: str, code: str, message: str) -> None:
    with session_scope() as session:
        service.fail_by_id(session, job_id, code, message)
    relay_now()


@celery_app.task(name="jobs.sweep")
def sweep() -> int:
    """Claim jobs whose poll is due and poll each on the provider queue."""
    with session_scope() as session:
        due = service.claim_due_polls(session)
    for job_id in due:
        poll.delay(job_id)
    return len(due)


@celery_app.task(name="jobs.poll")
def poll(job_id: str) -> str | None:
    """Fetch a job's state and new events from the provider and mirror them."""
    with session_scope() as session:
        provider_name, provider_job_id, cursor = service.provider_job_id_of(session, job_id)
    if provider_job_id is None:
        return None
    provider = get_provider(provider_name)
    try:
        state = provider.get_job(provider_job_id)
        events = provider.events_after(provider_job_id, cursor)
    except ProviderError as exc:
        log.warning("poll of %s failed: %s", job_id, type(exc).__name__)
        return None  # the lease expires and the next sweep polls again
    with session_scope() as session:
        service.apply_provider_state(session, job_id, state, events)
    relay_now()
    return state.status


@celery_app.task(name="jobs.cancel_at_provider", bind=True, max_retries=MAX_SUBMIT_RETRIES)
def cancel_at_provider(self: Task, job_id: str) -> Any:
    """Cancel the provider job of a job the team cancelled."""
    with session_scope() as session:
        provider_name, provider_job_id, _ = service.provider_job_id_of(session, job_id)
    if provider_job_id is None:
        return None
    try:
        return get_provider(provider_name).cancel_job(provider_job_id).status
    except ProviderRetryable as exc:
        raise self.retry(exc=exc, countdown=_backoff(self, exc)) from exc
    except ProviderRejected:
        return None  # already finished at the provider
