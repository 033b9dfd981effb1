"""Jobs: accept a request, wait for a provider slot, hand it to the provider, mirror it, notify.

Lifecycle: `queued` (waiting for dataset validation, then for a slot: see scheduling.py) →
`uploading` (holds a slot; the worker uploads files and creates the provider job exactly once) →
`submitted` → `running` → `succeeded` | `failed` | `cancelled`. Every status change goes through
`lifecycle.set_status`, under the job's row lock, so each change emits exactly one webhook
event however often a task is retried.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ftq.shared import catalog
from ftq.shared.credentials import service as credentials
from ftq.shared.datasets import repository as datasets_repo
from ftq.shared.datasets import service as datasets_service
from ftq.shared.errors import Conflict, NotFound, QuotaExceeded, Unauthorized, Unprocessable
from ftq.shared.ids import new_id
from ftq.shared.jobs import failover, hooks, lifecycle, repository, scheduling, sync
from ftq.shared.jobs.lifecycle import add_event, fail
from ftq.shared.jobs.schemas import (
    LOCAL_PROVIDER,
    TERMINAL_STATUSES,
    Checkpoint,
    JobCreate,
    JobEval,
    Method,
    MetricPoint,
)
from ftq.shared.jobs.schemas import Job as JobOut
from ftq.shared.models import Dataset, Job, JobEvent, JobRecord, Team
from ftq.shared.outbox import enqueue
from ftq.shared.providers.base import JobSpec, ProviderError, ProviderEvent, ProviderJob
from ftq.shared.providers.local import hyper as local_hyper
from ftq.shared.providers.local import models as local_models
from ftq.shared.providers.registry import check_configured, configured_providers
from ftq.shared.settings import get_settings
from ftq.shared.teams.schemas import TeamUsage
from ftq.shared.timeutil import as_utc, utcnow
from ftq.shared.webhooks import service as webhooks

log = logging.getLogger(__name__)

DEFAULT_SPLIT_SEED = 0
# The job tag the together provider puts in every output name it tunes (providers/together).
_TOGETHER_TAG = re.compile(r"ftj-[0-9a-z]{21}(?![0-9a-z])")


def is_tuned_name(name: str) -> bool:
    """`ft:base:org:suffix:id` (OpenAI, Azure), `local:base:suffix:id` (the local trainer), or a
    Together output name, which carries ftq's job tag (`org/base-suffix-ftj-<id>-hash`)."""
    if name.startswith("ft:") or (name.startswith("local:") and name.count(":") >= 3):
        return True
    return _TOGETHER_TAG.search(name) is not None


def check_model_access(session: Session, team: Team, name: str, param: str = "model") -> None:
    """A fine-tuned model is usable only by the team whose job made it: others get a 404."""
    if is_tuned_name(name) and not repository.owns_tuned_model(session, team.id, name):
        raise NotFound(f"no fine-tuned model {name!r} for this team", param=param)


def create(session: Session, team: Team, data: JobCreate) -> Job:
    """Accept a job; it waits in `queued` until its datasets are valid and a slot is free."""
    provider = data.provider or get_settings().provider
    credential_id = credentials.active_id(session, team.id, provider)
    check_configured(provider, team_credential=credential_id is not None)
    check_model_access(session, team, data.model)
    if provider == LOCAL_PROVIDER:
        local_models.check_allowed(data.model)
    provider, model, used, moved = _open_provider(data, provider)
    training = _usable(session, team, data.training_dataset, "training_dataset")
    validation = (
        _usable(session, team, data.validation_dataset, "validation_dataset")
        if data.validation_dataset
        else None
    )
    if provider == LOCAL_PROVIDER:
        has_validation = validation is not None or data.validation_split is not None
        _check_local_options(session, team, data, model, has_validation)
    # Counts are plain reads under READ COMMITTED: without this lock parallel creates all pass.
    # The caller's team may be a cached copy: its limits are read again under the lock.
    locked = repository.lock_team_admission(session, team.id)
    if locked is None:  # removed since its key was accepted
        raise Unauthorized("invalid or revoked API key")
    team = locked
    if repository.count_active(session, team.id) >= team.max_active_jobs:
        raise QuotaExceeded(
            f"team has {team.max_active_jobs} unfinished jobs, its max_active_jobs; "
            "wait for one to finish or cancel one",
            code="max_active_jobs",
        )
    if data.webhook_url:
        webhooks.check_destination(data.webhook_url)
    if data.eval is not None:
        has_validation = validation is not None or data.validation_split is not None
        hooks.eval_requested(session, team, data.eval, has_validation)
    method = data.method.model_dump(mode="json")
    cost = _estimated_cost(training, method)
    reason = scheduling.over_budget(session, team, cost)
    if reason:
        raise QuotaExceeded(reason, code="budget_exceeded")
    source = training
    if data.validation_split is not None:
        training, validation = _split(session, team, training, data)
        cost = _estimated_cost(training, method) if training.report else None
    job = Job(
        id=new_id("ftj"),
        team_id=team.id,
        status="queued",
        provider=provider,
        model=model,
        training_dataset_id=training.id,
        validation_dataset_id=validation.id if validation else None,
        validation_split=data.validation_split,
        method=method,
        suffix=data.suffix,
        seed=data.seed,
        job_metadata=dict(data.metadata),
        fallback_providers=data.fallback_providers[used:],
        model_map=dict(data.model_map),
        credential_id=(  # the asked provider's, unless the job moved to a fallback
            credential_id if moved is None else credentials.active_id(session, team.id, provider)
        ),
        webhook_url=data.webhook_url,
        eval_request=data.eval.model_dump(mode="json") if data.eval else None,
        poll_interval_seconds=get_settings().poll_interval_seconds,
        estimated_cost_usd=cost,
    )
    repository.stage(session, job)
    add_event(session, job, f"Job created for model {job.model} on {provider}")
    if moved:
        add_event(session, job, moved, level="warn")
    for warning in lifecycle.lifecycle_warnings(job):
        add_event(session, job, warning, level="warn")
    if validation is not None and data.validation_split is None:
        leak = datasets_service.validation_leak(training, validation)
        if leak:
            add_event(session, job, leak, level="warn")
    if validation is not None and data.validation_split is not None:
        add_event(
            session,
            job,
            f"Split {data.validation_split:g} of dataset {source.id} into validation dataset "
            f"{validation.id}; training on {training.id} (seed {_split_seed(data)})",
        )
    _release_if_ready(session, job)
    session.flush()  # the job, its events and its outbox row: one batch of inserts
    return job


def _check_local_options(
    session: Session, team: Team, data: JobCreate, model: str, has_validation: bool
) -> None:
    """Local evaluation options need validation data; `from_checkpoint` names the team's own."""
    local_hyper.check_options(data.method.model_dump(mode="json"), has_validation)
    value = data.method.hyperparameters.from_checkpoint
    if not value:
        return
    ref = local_hyper.parse_reference(value)
    param = local_hyper.PARAM + "from_checkpoint"
    if ref.is_job and repository.get_for_team(session, team.id, ref.name) is None:
        raise NotFound(f"no job {ref.name} for this team", param=param)
    if not ref.is_job:
        check_model_access(session, team, value if ref.step else ref.name, param)
    local_hyper.check_parent(session, value, model)


def _open_provider(data: JobCreate, provider: str) -> tuple[str, str, int, str | None]:
    """The first of the job's providers open to new jobs for its model: provider, model, how many
    fallbacks that used, and the event saying why it moved (None when it did not)."""
    today = utcnow().date()
    configured = configured_providers()
    candidates = [(provider, data.model)]
    for name in data.fallback_providers:
        tuned = failover.model_at(name, data.model, data.model_map)
        if name in configured and tuned is not None:
            candidates.append((name, tuned))
    notes: list[str] = []
    for used, (name, model) in enumerate(candidates):
        try:
            catalog.check_open(model, name, today, partial(_others, name))
        except catalog.ModelClosed as exc:
            if used == len(candidates) - 1:
                raise
            notes.append(f"{name} ({model}): {exc.message}")
            continue
        note = f"Created on {name} ({model}) instead: " + "; ".join(notes) if notes else None
        return name, model, _fallbacks_used(data, name) if used else 0, note
    raise AssertionError("unreachable: the last candidate returns or raises")


def _fallbacks_used(data: JobCreate, provider: str) -> int:
    return data.fallback_providers.index(provider) + 1


def _others(provider: str) -> list[str]:
    return [name for name in configured_providers() if name != provider]


def _split_seed(data: JobCreate) -> int:
    return data.seed if data.seed is not None else DEFAULT_SPLIT_SEED


def _split(
    session: Session, team: Team, source: Dataset, data: JobCreate
) -> tuple[Dataset, Dataset]:
    """The training remainder and the seeded validation share of a dataset."""
    from ftq.shared.datasets.schemas import DatasetSplit

    assert data.validation_split is not None
    request = DatasetSplit(fraction=data.validation_split, seed=_split_seed(data))
    try:
        return datasets_service.split(session, team, source.id, request)
    except Unprocessable as exc:
        raise Unprocessable(exc.message, param="validation_split") from exc


def _usable(session: Session, team: Team, dataset_id: str, param: str) -> Dataset:
    """A fine-tune dataset fit for its role: a validation file needs no minimum count."""
    small_ok = param == "validation_dataset"
    return datasets_service.usable(
        session, team, dataset_id, param, small_ok=small_ok, purpose="fine-tune"
    )


def estimate_cost(session: Session, team: Team, data: JobCreate) -> Decimal | None:
    """What a job of this request would cost by its training dataset's estimate (sweeps)."""
    training = _usable(session, team, data.training_dataset, "training_dataset")
    return _estimated_cost(training, data.method.model_dump(mode="json"))


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
    """Fail a job whose dataset is invalid; make it eligible for a slot once all are ready."""
    roles = [(job.training_dataset_id, False), (job.validation_dataset_id, True)]
    found = [(session.get(Dataset, i), validation) for i, validation in roles if i]
    datasets = [d for d, _ in found]
    bad = next(
        (d for d, v in found if d is not None and not datasets_service.fit_for(d, small_ok=v)), None
    )
    if bad is not None:
        fail(
            session,
            job,
            "invalid_dataset",
            f"dataset {bad.id} failed validation; see GET /v1/datasets/{bad.id}",
        )
        return
    if any(d is None or d.status == "validating" for d in datasets) or job.ready_at:
        return
    team = session.get(Team, job.team_id)
    reason = team and scheduling.over_budget(session, team, job.estimated_cost_usd, exclude=job.id)
    if reason:
        fail(session, job, "budget_exceeded", reason)
        return
    job.ready_at = utcnow()
    add_event(session, job, "Datasets ready; waiting for a provider slot")
    enqueue(session, "jobs.schedule", job.provider, job.model)


def on_dataset_validated(session: Session, dataset: Dataset) -> None:
    """Release (or fail) the queued jobs that were waiting for this dataset."""
    for job in repository.queued_using(session, dataset.id):
        if job.estimated_cost_usd is None and dataset.id == job.training_dataset_id:
            job.estimated_cost_usd = _estimated_cost(dataset, job.method)
        _release_if_ready(session, job)


def release_missed(session: Session) -> None:
    """Release queued jobs whose dataset finished validating while the job was being created.

    The API reads the dataset as `validating` and the validator looks for waiting jobs before the
    new job commits: neither releases it, so the sweep does.
    """
    for job in repository.unreleased_queued(session):
        _release_if_ready(session, job)


def get(session: Session, team: Team, job_id: str) -> Job:
    """A team's job, or 404."""
    job = repository.get_for_team(session, team.id, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}", param="id")
    return job


def view(session: Session, team: Team, job_id: str) -> JobOut:
    """A team's job's API view, read as a row without an ORM object (the polled route), or 404."""
    row = repository.view_for_team(session, team.id, job_id)
    if row is None:
        raise NotFound(f"no job {job_id}", param="id")
    return to_schema(session, row)


def view_of_row(row: JobRecord) -> JobOut | None:
    """The API view of a job row read without a session, or None when the view needs one (the
    queue place of a queued job, the eval of a job that asked for one)."""
    if row.status == "queued" or row.eval_request:
        return None
    return _view(row, position=None, eval_view=None)


def list_page(
    session: Session,
    team: Team,
    *,
    status: str | None,
    limit: int,
    after: str | None,
    metadata: dict[str, str] | None = None,
) -> tuple[list[Job], bool]:
    """A page of the team's jobs."""
    return repository.list_for_team(
        session, team.id, status=status, limit=limit, after=after, metadata=metadata
    )


def to_schemas(session: Session, jobs: list[Job]) -> list[JobOut]:
    """API views of several jobs (queue positions computed once per provider model)."""
    positions: dict[str, int] = {}
    for pair in {(j.provider, j.model) for j in jobs if j.status == "queued"}:
        positions.update(scheduling.queue_positions(session, *pair))
    return [to_schema(session, job, positions) for job in jobs]


def to_schema(session: Session, job: JobRecord, positions: dict[str, int] | None = None) -> JobOut:
    """The API view of a job (with its place in the fair queue while queued)."""
    position = None
    if job.status == "queued":
        position = (
            positions.get(job.id)
            if positions is not None
            else scheduling.queue_position(session, job)
        )
    eval_view = next((view for view in hooks.eval_view(session, job) if view), None)
    return _view(job, position, eval_view)


def _view(job: JobRecord, position: int | None, eval_view: JobEval | None) -> JobOut:
    """The API view of a job record whose queue place and eval view are known."""
    error = {"code": job.error_code, "message": job.error_message} if job.error_code else None
    result = None
    if job.result_file_id:
        result = {
            "provider_file_id": job.result_file_id,
            "bytes": job.result_bytes,
            "url": f"/v1/jobs/{job.id}/result-file",
        }
    return JobOut(
        id=job.id,
        status=job.status,  # type: ignore[arg-type]
        queue_position=position,
        model=job.model,
        provider=job.provider,
        fallback_providers=list(job.fallback_providers or []),
        model_map=dict(job.model_map or {}),
        credential_id=job.credential_id,
        training_dataset=job.training_dataset_id,
        validation_dataset=job.validation_dataset_id,
        validation_split=job.validation_split,
        method=job.method,
        suffix=job.suffix,
        seed=job.seed,
        metadata=job.job_metadata,
        webhook_url=job.webhook_url,
        provider_job_id=job.provider_job_id,
        provider_status=job.provider_status,
        fine_tuned_model=job.fine_tuned_model,
        trained_tokens=job.trained_tokens,
        result_file=result,  # type: ignore[arg-type]
        estimated_cost_usd=job.estimated_cost_usd,
        error=error,  # type: ignore[arg-type]
        eval=eval_view,
        diagnosis=job.diagnosis,
        best_checkpoint=job.best_checkpoint,
        retention=job.retention,
        created_at=job.created_at,
        updated_at=job.updated_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def cancel(session: Session, team: Team, job_id: str) -> Job:
    """Cancel a job now; the provider job, if any, is cancelled by the worker."""
    get(session, team, job_id)
    job = repository.lock(session, job_id)
    assert job is not None
    if job.status in TERMINAL_STATUSES:
        raise Conflict(
            f"job {job.id} is already {job.status}", param="id", code="job_not_cancellable"
        )
    if job.provider_job_id:
        enqueue(session, "jobs.cancel_at_provider", job.id)
    lifecycle.set_status(session, job, "cancelled", "Job cancelled at the team's request")
    return job


def request_control(session: Session, team: Team, job_id: str, action: str) -> Job:
    """Ask the worker to pause or resume a job at its provider (409 when it cannot be)."""
    get(session, team, job_id)
    job = repository.lock(session, job_id)
    assert job is not None
    wanted = {"pause": "running", "resume": "paused"}[action]
    if job.status != "running" or job.provider_job_id is None or job.provider_status != wanted:
        shown = job.provider_status if job.status == "running" else job.status
        raise Conflict(
            f"job {job.id} is {shown}; only a job whose provider status is {wanted} can be "
            f"{action}d",
            param="id",
            code={"pause": "job_not_pausable", "resume": "job_not_resumable"}[action],
        )
    enqueue(session, "jobs.control_at_provider", job.id, action)
    add_event(session, job, f"{action.capitalize()} requested; asking {job.provider}")
    return job


def retry(session: Session, team: Team, job_id: str, data: Any) -> Job:
    """A new job on a finished job's datasets, model and provider (`data`: a JobRetry), with
    the caller's hyperparameter changes, else the diagnosis's suggestion (409 while it runs)."""
    from ftq.shared.jobs import diagnosis
    from ftq.shared.jobs.schemas import Hyperparameters, JobEvalRequest, check_provider_settings

    old = get(session, team, job_id)
    if old.status not in TERMINAL_STATUSES:
        raise Conflict(
            f"job {old.id} is {old.status}; only a finished job can be retried",
            param="id",
            code="job_not_finished",
        )
    if data.hyperparameters is not None:
        changes = data.hyperparameters.model_dump(exclude_unset=True)
        source = "the caller's overrides"
    else:
        changes = diagnosis.suggested(old.diagnosis)
        names = ", ".join(diagnosis.kinds(old.diagnosis)) or "none"
        source = f"the diagnosis's suggestion (findings: {names})"
    method = Method.model_validate(old.method)
    base = method.hyperparameters.model_dump(exclude_none=True)
    if "learning_rate" in base and "learning_rate_multiplier" in changes:
        # A job that set Together's learning_rate: the multiplier applies to it ("auto" = 1.0).
        base["learning_rate"] = base["learning_rate"] * changes.pop("learning_rate_multiplier")
    method.hyperparameters = Hyperparameters.model_validate({**base, **changes})
    fallbacks = list(old.fallback_providers or [])
    request = JobCreate(
        model=old.model,
        training_dataset=old.training_dataset_id,
        validation_dataset=old.validation_dataset_id,
        provider=old.provider,
        method=method,
        suffix=old.suffix,
        seed=old.seed,
        metadata={key: str(value) for key, value in (old.job_metadata or {}).items()},
        webhook_url=old.webhook_url,
        eval=JobEvalRequest.model_validate(old.eval_request) if old.eval_request else None,
        fallback_providers=fallbacks,
        model_map={k: v for k, v in (old.model_map or {}).items() if k in fallbacks},
    )
    check_provider_settings(request, old.provider)
    job = create(session, team, request)
    shown = ", ".join(f"{name}={value}" for name, value in changes.items()) or "no changes"
    add_event(session, job, f"Retry of job {old.id} with {shown}, from {source}")
    add_event(session, old, f"Retried as job {job.id} with {shown}")
    return job


def events_page(
    session: Session, team: Team, job_id: str, *, limit: int, after: int | None
) -> tuple[list[JobEvent], bool]:
    """A page of a job's timeline, oldest first."""
    job = get(session, team, job_id)
    return repository.events_page(session, job.id, limit=limit, after=after)


def metrics(session: Session, team: Team, job_id: str) -> list[MetricPoint]:
    """Per-step metrics, one point per step, in step order."""
    job = get(session, team, job_id)
    return [
        MetricPoint(
            step=row.step,
            total_steps=row.total_steps,
            train_loss=row.train_loss,
            train_mean_token_accuracy=row.train_mean_token_accuracy,
            valid_loss=row.valid_loss,
            valid_mean_token_accuracy=row.valid_mean_token_accuracy,
            full_valid_loss=row.full_valid_loss,
            full_valid_mean_token_accuracy=row.full_valid_mean_token_accuracy,
        )
        for row in repository.metrics(session, job.id)
    ]


def checkpoints(session: Session, team: Team, job_id: str) -> list[Checkpoint]:
    """A job's checkpoints in step order."""
    job = get(session, team, job_id)
    return [
        Checkpoint(
            id=row.provider_checkpoint_id,
            step_number=row.step_number,
            fine_tuned_model_checkpoint=row.fine_tuned_model_checkpoint,
            metrics=row.metrics,
            created_at=(
                datetime.fromtimestamp(row.provider_created_at, UTC)
                if row.provider_created_at
                else as_utc(row.created_at)
            ),
        )
        for row in repository.checkpoints(session, job.id)
    ]


def result_blob(session: Session, team: Team, job_id: str) -> tuple[Job, str]:
    """A job and the blob key of its kept result file (404 when there is none yet)."""
    job = get(session, team, job_id)
    if not job.result_blob_key:
        raise NotFound(f"job {job_id} has no result file yet", param="id")
    return job, job.result_blob_key


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
    """Describe the upload of a job that holds a slot; None if there is nothing to do."""
    job = repository.lock(session, job_id)
    if job is None or job.status != "uploading":
        return None
    job.submit_attempts += 1
    training = session.get(Dataset, job.training_dataset_id)
    validation = (
        session.get(Dataset, job.validation_dataset_id) if job.validation_dataset_id else None
    )
    assert training is not None
    spec_base = {
        "model": job.model,
        "method": Method.model_validate(job.method).to_provider(job.provider),
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
    if job.provider_job_id not in (None, provider_job.id):
        # Compare-and-set: a second provider job for one ftq job is an orphan, never kept.
        log.warning(
            "job %s already has provider job %s; %s is an orphan and is cancelled",
            job.id,
            job.provider_job_id,
            provider_job.id,
        )
        return False
    job.provider_job_id = provider_job.id
    job.provider_created_at = provider_job.created_at
    if job.status in TERMINAL_STATUSES:
        return False  # cancelled (or failed) meanwhile: the caller cancels the provider job
    job.provider_status = provider_job.status
    job.next_poll_at = utcnow()
    job.poll_interval_seconds = get_settings().poll_interval_seconds
    message = f"Submitted to {job.provider} as {provider_job.id}"
    lifecycle.set_status(session, job, "submitted", message)
    return True


def fail_over(session: Session, job_id: str, exc: ProviderError) -> bool:
    """Move a job its provider refused to its next fallback provider; False if it cannot move."""
    reason = failover.reason_to_move(exc)
    if reason is None:
        return False
    return failover.fail_over(session, job_id, reason, configured_providers())


def unrecorded_submission(session: Session, job_id: str) -> str | None:
    """The provider of a finished job that may have a provider job ftq never stored, else None.

    A team cancels while the job uploads and the worker dies after the provider's create: the
    redelivered submit must find that provider job and cancel it.
    """
    job = session.get(Job, job_id)
    if job is None or job.status not in TERMINAL_STATUSES or job.provider_job_id is not None:
        return None
    return job.provider if job.submit_attempts > 0 else None


def apply_provider_state(
    session: Session, job_id: str, state: ProviderJob, events: list[ProviderEvent], **kwargs: Any
) -> bool:
    """Mirror the provider's job (see sync.apply_provider_state)."""
    return sync.apply_provider_state(session, job_id, state, events, **kwargs)


def provider_job_id_of(session: Session, job_id: str) -> tuple[str, str | None, str | None]:
    """A job's provider, provider job id and event cursor."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job.provider, job.provider_job_id, job.event_cursor


def job_for_provider_job(
    session: Session, providers: tuple[str, ...], provider_job_id: str
) -> str | None:
    """Our job id for a provider job id (provider webhooks name only theirs)."""
    query = select(Job.id).where(
        Job.provider.in_(providers), Job.provider_job_id == provider_job_id
    )
    return session.scalar(query)


def usage(session: Session, team: Team) -> TeamUsage:
    """The team's usage this calendar month: estimated spend against its budget, job counts."""
    start = scheduling.month_start()
    spent = scheduling.spent_this_month(session, team.id)
    counts = repository.month_counts(session, team.id, start)
    budget = team.monthly_budget_usd
    return TeamUsage(
        month=start.strftime("%Y-%m"),
        estimated_cost_usd=spent,
        budget_remaining_usd=max(budget - spent, 0) if budget is not None else None,
        jobs_created=sum(counts.values()),
        active_jobs=repository.count_active(session, team.id),
        queued_jobs=repository.count_queued(session, team.id),
    )
