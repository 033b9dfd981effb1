"""Jobs: accept a request, hand it to the provider, mirror the provider's state, notify."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from shared.datasets import repository as datasets_repo
from shared.errors import Conflict, NotFound, QuotaExceeded, Unprocessable
from shared.ids import new_id
from shared.jobs import repository
from shared.jobs.schemas import TERMINAL_STATUSES, JobCreate, Method, MetricPoint
from shared.jobs.schemas import Job as JobOut
from shared.models import Dataset, Job, JobEvent, Team
from shared.outbox import enqueue
from shared.providers.base import JobSpec, ProviderEvent, ProviderJob
from shared.providers.registry import PROVIDERS
from shared.settings import get_settings
from shared.timeutil import utcnow
from shared.webhooks import service as webhooks

log = logging.getLogger(__name__)

PROVIDER_TO_STATUS = {
    "validating_files": "submitted",
    "queued": "submitted",
    "running": "running",
    "paused": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}
WEBHOOK_STATUSES = {"submitted", "running", "succeeded", "failed", "cancelled"}


def create(session: Session, team: Team, data: JobCreate) -> Job:
    """Accept a job; it waits in `queued` until its datasets are valid."""
    provider = data.provider or get_settings().provider
    if provider not in PROVIDERS:
        raise Unprocessable(f"unknown provider {provider!r}", param="provider")
    training = _usable_dataset(session, team, data.training_dataset, "training_dataset")
    validation = (
        _usable_dataset(session, team, data.validation_dataset, "validation_dataset")
        if data.validation_dataset
        else None
    )
    if repository.count_active(session, team.id) >= team.max_active_jobs:
        raise QuotaExceeded(
            f"team has {team.max_active_jobs} unfinished jobs, its max_active_jobs; "
            "wait for one to finish or cancel one",
            code="max_active_jobs",
        )
    if data.webhook_url:
        webhooks.check_destination(data.webhook_url)
    job = Job(
        id=new_id("ftj"),
        team_id=team.id,
        status="queued",
        provider=provider,
        model=data.model,
        training_dataset_id=training.id,
        validation_dataset_id=validation.id if validation else None,
        method=data.method.model_dump(mode="json"),
        suffix=data.suffix,
        seed=data.seed,
        job_metadata=dict(data.metadata),
        webhook_url=data.webhook_url,
        poll_interval_seconds=get_settings().poll_interval_seconds,
    )
    job.estimated_cost_usd = _estimated_cost(training, job.method)
    repository.add(session, job)
    add_event(session, job, f"Job created for model {job.model} on {provider}")
    _release_if_ready(session, job)
    return job


def _usable_dataset(session: Session, team: Team, dataset_id: str, param: str) -> Dataset:
    dataset = datasets_repo.get_for_team(session, team.id, dataset_id)
    if dataset is None:
        raise NotFound(f"no dataset {dataset_id}", param=param)
    if dataset.purpose != "fine-tune":
        raise Unprocessable(
            f"dataset {dataset_id} has purpose {dataset.purpose!r}, not 'fine-tune'", param=param
        )
    if dataset.status == "invalid":
        raise Unprocessable(
            f"dataset {dataset_id} failed validation; see its report at "
            f"GET /v1/datasets/{dataset_id}",
            param=param,
            code="invalid_dataset",
        )
    return dataset


def _estimated_cost(dataset: Dataset, method: dict[str, Any]) -> Decimal | None:
    """The validator's cost estimate, scaled when the job fixes its epoch count."""
    report = dataset.report or {}
    cost = report.get("estimated_cost_usd")
    if cost is None:
        return None
    epochs = (method.get("hyperparameters") or {}).get("n_epochs", "auto")
    auto_epochs = report.get("auto_n_epochs") or 0
    if epochs != "auto" and auto_epochs:
        cost = float(cost) * int(epochs) / int(auto_epochs)
    return Decimal(str(round(float(cost), 4)))


def _release_if_ready(session: Session, job: Job) -> None:
    ids = [job.training_dataset_id, job.validation_dataset_id]
    datasets = [session.get(Dataset, i) for i in ids if i]
    if any(d is not None and d.status == "invalid" for d in datasets):
        bad = next(d for d in datasets if d is not None and d.status == "invalid")
        fail(
            session,
            job,
            "invalid_dataset",
            f"dataset {bad.id} failed validation; see GET /v1/datasets/{bad.id}",
        )
    elif all(d is not None and d.status == "ready" for d in datasets):
        enqueue(session, "jobs.submit", job.id)


def on_dataset_validated(session: Session, dataset: Dataset) -> None:
    """Release (or fail) the queued jobs that were waiting for this dataset."""
    for job in repository.queued_using(session, dataset.id):
        if job.estimated_cost_usd is None and dataset.id == job.training_dataset_id:
            job.estimated_cost_usd = _estimated_cost(dataset, job.method)
        _release_if_ready(session, job)


def get(session: Session, team: Team, job_id: str) -> Job:
    """A team's job, or 404."""
    job = repository.get_for_team(session, team.id, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}", param="id")
    return job


def list_page(
    session: Session, team: Team, *, status: str | None, limit: int, after: str | None
) -> tuple[list[Job], bool]:
    """A page of the team's jobs."""
    return repository.list_for_team(session, team.id, status=status, limit=limit, after=after)


def to_schema(session: Session, job: Job) -> JobOut:
    """The API view of a job (with its queue position while queued)."""
    error = {"code": job.error_code, "message": job.error_message} if job.error_code else None
    return JobOut(
        id=job.id,
        status=job.status,  # type: ignore[arg-type]
        queue_position=repository.queue_position(session, job) if job.status == "queued" else None,
        model=job.model,
        provider=job.provider,
        training_dataset=job.training_dataset_id,
        validation_dataset=job.validation_dataset_id,
        method=job.method,
        suffix=job.suffix,
        seed=job.seed,
        metadata=job.job_metadata,
        webhook_url=job.webhook_url,
        provider_job_id=job.provider_job_id,
        provider_status=job.provider_status,
        fine_tuned_model=job.fine_tuned_model,
        trained_tokens=job.trained_tokens,
        estimated_cost_usd=job.estimated_cost_usd,
        error=error,  # type: ignore[arg-type]
        created_at=job.created_at,
        updated_at=job.updated_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def cancel(session: Session, team: Team, job_id: str) -> Job:
    """Cancel a job now; the provider job, if any, is cancelled by the worker."""
    job = get(session, team, job_id)
    if job.status in TERMINAL_STATUSES:
        raise Conflict(
            f"job {job.id} is already {job.status}", param="id", code="job_not_cancellable"
        )
    if job.provider_job_id:
        enqueue(session, "jobs.cancel_at_provider", job.id)
    _set_status(session, job, "cancelled", "Job cancelled at the team's request")
    return job


def events_page(
    session: Session, team: Team, job_id: str, *, limit: int, after: int | None
) -> tuple[list[JobEvent], bool]:
    """A page of a job's timeline, oldest first."""
    job = get(session, team, job_id)
    return repository.events_page(session, job.id, limit=limit, after=after)


def metrics(session: Session, team: Team, job_id: str) -> list[MetricPoint]:
    """Per-step metrics, one point per step (the latest report of a step wins)."""
    job = get(session, team, job_id)
    points: dict[int, MetricPoint] = {}
    for event in repository.metric_events(session, job.id):
        data = event.data or {}
        if isinstance(data.get("step"), int):
            points[data["step"]] = MetricPoint.model_validate(data)
    return [points[step] for step in sorted(points)]


def add_event(session: Session, job: Job, message: str, *, level: str = "info") -> None:
    """Append one of ftq's own events to a job's timeline."""
    repository.add(
        session, JobEvent(job_id=job.id, source="ftq", level=level, type="message", message=message)
    )


def fail(session: Session, job: Job, code: str, message: str) -> None:
    """Finish a job as failed with a code and a message a person can act on."""
    job.error_code, job.error_message = code, message
    _set_status(session, job, "failed", f"Job failed ({code}): {message}", level="error")


def _set_status(
    session: Session, job: Job, status: str, message: str, *, level: str = "info"
) -> None:
    if job.status == status:
        return
    job.status = status
    now = utcnow()
    if status == "running" and job.started_at is None:
        job.started_at = now
    if status in TERMINAL_STATUSES:
        job.finished_at, job.next_poll_at = now, None
    add_event(session, job, message, level=level)
    if status in WEBHOOK_STATUSES:
        webhooks.emit(session, job.team_id, f"job.{status}", job_payload(job), job=job)


def job_payload(job: Job) -> dict[str, Any]:
    """The thin webhook payload of a job event."""
    error = {"code": job.error_code, "message": job.error_message} if job.error_code else None
    return {
        "id": job.id,
        "object": "job",
        "status": job.status,
        "model": job.model,
        "fine_tuned_model": job.fine_tuned_model,
        "provider_job_id": job.provider_job_id,
        "error": error,
        "metadata": job.job_metadata,
    }


@dataclass(frozen=True)
class SubmitPlan:
    """What the submit task needs outside the database transaction."""

    job_id: str
    provider: str
    provider_job_id: str | None
    training: Dataset
    validation: Dataset | None
    spec_base: dict[str, Any]


def begin_submission(session: Session, job_id: str) -> SubmitPlan | None:
    """Move a queued job to `uploading` and describe the upload; None if nothing to do."""
    job = repository.lock(session, job_id)
    if job is None or job.status not in ("queued", "uploading"):
        return None
    job.submit_attempts += 1
    if job.status == "queued":
        _set_status(session, job, "uploading", "Uploading files to the provider")
    training = session.get(Dataset, job.training_dataset_id)
    validation = (
        session.get(Dataset, job.validation_dataset_id) if job.validation_dataset_id else None
    )
    assert training is not None
    spec_base = {
        "model": job.model,
        "method": Method.model_validate(job.method).to_provider(),
        "suffix": job.suffix,
        "seed": job.seed,
        "metadata": {k: str(v) for k, v in job.job_metadata.items()},
    }
    return SubmitPlan(job.id, job.provider, job.provider_job_id, training, validation, spec_base)


def remember_file(session: Session, dataset_id: str, provider: str, file_id: str) -> None:
    """Keep a dataset's provider file id so a retry or another job reuses the upload."""
    dataset = datasets_repo.lock(session, dataset_id)
    if dataset is not None:
        dataset.provider_files = {**(dataset.provider_files or {}), provider: file_id}
        session.flush()


def build_spec(plan: SubmitPlan, training_file: str, validation_file: str | None) -> JobSpec:
    """The provider request for a planned submission."""
    base = plan.spec_base
    return JobSpec(
        ftq_job_id=plan.job_id,
        model=base["model"],
        training_file=training_file,
        validation_file=validation_file,
        method=base["method"],
        suffix=base["suffix"],
        seed=base["seed"],
        metadata=base["metadata"],
    )


def record_submission(session: Session, job_id: str, provider_job: ProviderJob) -> bool:
    """Store the provider job id; False when the job was cancelled meanwhile."""
    job = repository.lock(session, job_id)
    if job is None:
        return False
    job.provider_job_id = provider_job.id
    job.provider_status = provider_job.status
    if job.status == "cancelled":
        return False
    job.next_poll_at = utcnow()
    job.poll_interval_seconds = get_settings().poll_interval_seconds
    _set_status(session, job, "submitted", f"Submitted to {job.provider} as {provider_job.id}")
    return True


def fail_by_id(session: Session, job_id: str, code: str, message: str) -> None:
    """Fail a job unless it already finished."""
    job = repository.lock(session, job_id)
    if job is not None and job.status not in TERMINAL_STATUSES:
        fail(session, job, code, message)


def claim_due_polls(session: Session, limit: int = 500) -> list[str]:
    """Jobs due for a poll, leased for a minute so a second sweep does not take them."""
    now = utcnow()
    jobs = repository.claim_due_polls(session, now, limit)
    for job in jobs:
        job.next_poll_at = now + timedelta(seconds=60)
    session.flush()
    return [job.id for job in jobs]


def apply_provider_state(
    session: Session, job_id: str, state: ProviderJob, events: list[ProviderEvent]
) -> None:
    """Mirror the provider's job and new events; back polling off while nothing changes."""
    job = repository.lock(session, job_id)
    if job is None or job.status in TERMINAL_STATUSES:
        return
    stored = _store_provider_events(session, job, events)
    changed = stored > 0 or state.status != job.provider_status
    job.provider_status = state.status
    _apply_status(session, job, state)
    if job.status not in TERMINAL_STATUSES:
        _schedule_next_poll(job, changed)
    session.flush()


def _store_provider_events(session: Session, job: Job, events: list[ProviderEvent]) -> int:
    known = repository.known_provider_event_ids(session, job.id, (e.id for e in events))
    fresh = [e for e in events if e.id not in known]
    for event in fresh:
        session.add(
            JobEvent(
                job_id=job.id,
                source="provider",
                provider_event_id=event.id,
                level=event.level,
                type=event.type,
                message=event.message,
                data=event.data,
            )
        )
    if events:
        job.event_cursor = events[-1].id
    session.flush()
    return len(fresh)


def _apply_status(session: Session, job: Job, state: ProviderJob) -> None:
    status = PROVIDER_TO_STATUS.get(state.status, job.status)
    if status == "succeeded":
        job.fine_tuned_model, job.trained_tokens = state.fine_tuned_model, state.trained_tokens
        _set_status(session, job, "succeeded", f"Fine-tuned model ready: {state.fine_tuned_model}")
    elif status == "failed":
        code = "provider_failed"
        message = state.error_message or "the provider reported the job failed"
        if state.error_code:
            message = f"{message} (provider code {state.error_code})"
        fail(session, job, code, message)
    elif status == "cancelled":
        _set_status(session, job, "cancelled", "Job was cancelled at the provider")
    elif status == "running":
        _set_status(session, job, "running", "Training started at the provider")


def _schedule_next_poll(job: Job, changed: bool) -> None:
    settings = get_settings()
    base = settings.poll_interval_seconds
    interval = (
        base if changed else min(job.poll_interval_seconds * 2, settings.poll_max_interval_seconds)
    )
    job.poll_interval_seconds = max(interval, base)
    job.next_poll_at = utcnow() + timedelta(seconds=job.poll_interval_seconds)


def provider_job_id_of(session: Session, job_id: str) -> tuple[str, str | None, str | None]:
    """A job's provider, provider job id and event cursor."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job.provider, job.provider_job_id, job.event_cursor
