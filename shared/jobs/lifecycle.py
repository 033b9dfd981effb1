"""A job's state changes: status, events, its webhooks and the follow-up work they start.

The service, the scheduler and the provider sync all move jobs through these functions, so a
status change always stamps its times, records its event, emits one webhook and frees its slot.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ftq.shared import catalog
from ftq.shared.jobs import hooks, repository
from ftq.shared.jobs.schemas import TERMINAL_STATUSES, EventLevel
from ftq.shared.models import Job, JobEvent
from ftq.shared.outbox import enqueue
from ftq.shared.timeutil import utcnow
from ftq.shared.webhooks import service as webhooks

WEBHOOK_STATUSES = {"submitted", "running", "succeeded", "failed", "cancelled"}


def add_event(session: Session, job: Job, message: str, *, level: EventLevel = "info") -> None:
    """Append one of ftq's own events to a job's timeline."""
    # Staged for the next flush (a query's or the commit's), batched with the request's rows.
    repository.stage(
        session, JobEvent(job_id=job.id, source="ftq", level=level, type="message", message=message)
    )


def fail(session: Session, job: Job, code: str, message: str) -> None:
    """Finish a job as failed with a code and a message a person can act on."""
    job.error_code, job.error_message = code, message
    set_status(session, job, "failed", f"Job failed ({code}): {message}", level="error")


def set_status(
    session: Session, job: Job, status: str, message: str, *, level: EventLevel = "info"
) -> None:
    """Move a (locked) job to `status`: timestamps, an event, one webhook, a freed slot."""
    if job.status == status:
        return
    job.status = status
    now = utcnow()
    if status == "running" and job.started_at is None:
        job.started_at = now
    if status in TERMINAL_STATUSES:
        job.finished_at, job.next_poll_at = now, None
    add_event(session, job, message, level=level)
    if status == "succeeded":  # first, so job.succeeded names the evals it queued
        hooks.succeeded(session, job)
    if status in WEBHOOK_STATUSES:
        webhooks.emit(session, job.team_id, f"job.{status}", job_payload(job), job=job)
    if status in TERMINAL_STATUSES and job.admitted_at is not None:
        enqueue(session, "jobs.schedule", job.provider, job.model)  # hand the slot on


def job_payload(job: Job) -> dict[str, Any]:
    """The thin webhook payload of a job event."""
    error = {"code": job.error_code, "message": job.error_message} if job.error_code else None
    payload = {
        "id": job.id,
        "object": "job",
        "status": job.status,
        "model": job.model,
        "fine_tuned_model": job.fine_tuned_model,
        "provider_job_id": job.provider_job_id,
        "error": error,
        "metadata": job.job_metadata,
        "warnings": lifecycle_warnings(job),
    }
    if job.status == "succeeded":  # the final training diagnosis (ftq.shared.jobs.diagnosis)
        payload["diagnosis"] = job.diagnosis
        payload["retention"] = job.retention  # queued: its scores come with eval.completed
    return payload


def lifecycle_warnings(job: Job) -> list[str]:
    """What the team must know about the model's future, on the job's webhooks."""
    warning = catalog.retirement_warning(job.model, job.provider, utcnow().date())
    return [warning] if warning else []


def admit(session: Session, job: Job) -> None:
    """Give a queued job its provider slot: it moves to `uploading` and is submitted."""
    job.admitted_at = utcnow()
    set_status(session, job, "uploading", f"Provider slot taken on {job.provider}/{job.model}")
    enqueue(session, "jobs.submit", job.id)


def fail_by_id(session: Session, job_id: str, code: str, message: str) -> None:
    """Fail a job unless it already finished."""
    job = repository.lock(session, job_id)
    if job is not None and job.status not in TERMINAL_STATUSES:
        fail(session, job, code, message)
