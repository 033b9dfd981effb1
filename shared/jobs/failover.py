"""Failover: a job that its provider will not take moves to the next provider it lists.

A job may list `fallback_providers`. When its provider is closed to new jobs (a 403,
`provider_unavailable`, or a model past its provider's lifecycle dates at creation) or does not
offer its model (`model_not_available`, a 404), the job moves to the first listed provider that is
configured here and offers an equivalent model: `model_map[provider]` when the request gives one,
else the same name when that provider tunes it, else the catalog's equivalent. The datasets are
validated again against the new model's limits, the job goes back to `queued` on the new
provider (the fair scheduler admits it under that provider's capacity) and an event says why.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from ftq.shared import catalog
from ftq.shared.credentials import service as credentials
from ftq.shared.datasets.validation import validate_file
from ftq.shared.errors import AppError
from ftq.shared.jobs import lifecycle, repository
from ftq.shared.models import Dataset, Job
from ftq.shared.outbox import enqueue
from ftq.shared.providers.base import ProviderError, ProviderRejected, ProviderUnavailable
from ftq.shared.providers.local import models as local_models
from ftq.shared.providers.registry import get_plugin
from ftq.shared.storage import get_blob_store
from ftq.shared.timeutil import utcnow

MODEL_MISSING_CODES = frozenset({"model_not_available", "model_not_found", "invalid_model"})
OPENAI_FAMILY = frozenset({"emulator", "openai", "azure-openai"})


@dataclass(frozen=True)
class Target:
    """Where a job moves: the provider, the model name there, and what was skipped on the way."""

    provider: str
    model: str
    remaining: tuple[str, ...]
    skipped: tuple[str, ...] = ()


def reason_to_move(exc: ProviderError) -> str | None:
    """Why a refused submission may move to another provider, or None when it may not."""
    if isinstance(exc, ProviderUnavailable):
        return f"is closed to new fine-tuning jobs ({exc.message})"
    if isinstance(exc, ProviderRejected) and (
        exc.status == 404 or (exc.code or "") in MODEL_MISSING_CODES
    ):
        return f"does not offer the model ({exc.message})"
    return None


def offers(provider: str, model: str) -> bool:
    """Whether `provider` can tune a base model called `model` (as far as ftq can tell)."""
    if provider == "local":
        try:
            local_models.check_allowed(model)
        except AppError:
            return False
        return True
    listed = get_plugin(provider).capabilities.models
    if listed:
        return model in listed
    try:
        info = catalog.get_model(model)
    except AppError:
        return False
    providers = getattr(info, "providers", None) or OPENAI_FAMILY
    return provider in providers


def model_at(provider: str, model: str, model_map: dict[str, str]) -> str | None:
    """The model a job asks for at `provider`: the request's map, the same name, an equivalent."""
    if provider in model_map:
        return model_map[provider]
    if offers(provider, model):
        return model
    for equivalent in catalog.equivalents(model):
        if offers(provider, equivalent):
            return equivalent
    return None


def next_target(session: Session, job: Job, configured: list[str]) -> Target | list[str]:
    """The first listed provider that is configured (or that the team holds a key for) and offers
    an equivalent model, or why none."""
    remaining = list(job.fallback_providers or [])
    skipped: list[str] = []
    while remaining:
        name = remaining.pop(0)
        own_key = credentials.active_id(session, job.team_id, name) is not None
        if name not in configured and not own_key:
            skipped.append(f"{name} (not configured here)")
            continue
        model = model_at(name, job.model, dict(job.model_map or {}))
        if model is None:
            skipped.append(f"{name} (offers no equivalent of {job.model})")
            continue
        return Target(name, model, tuple(remaining), tuple(skipped))
    return skipped


def recheck_datasets(session: Session, job: Job, model: str) -> str | None:
    """Validate the job's datasets against `model`; the first problem, or None when they fit."""
    for dataset_id in (job.training_dataset_id, job.validation_dataset_id):
        dataset = session.get(Dataset, dataset_id) if dataset_id else None
        if dataset is None:
            continue
        path = get_blob_store().path(dataset.blob_key)
        report = validate_file(path, model=model, purpose=dataset.purpose)
        if not report.ok:
            first = report.errors.items[0] if report.errors.items else None
            where = f" (line {first.line}: {first.message})" if first and first.line else ""
            detail = f": {first.message}" if first and not where else where
            return f"dataset {dataset.id} does not fit {model}{detail}"
    return None


def move(session: Session, job: Job, target: Target, reason: str) -> None:
    """Put a locked job back in the queue on the target provider, with an event saying why."""
    old_provider, old_model, had_slot = job.provider, job.model, job.admitted_at is not None
    job.provider, job.model = target.provider, target.model
    job.credential_id = credentials.active_id(session, job.team_id, target.provider)
    job.fallback_providers = list(target.remaining)
    job.admitted_at, job.ready_at = None, utcnow()
    job.status = "queued"
    skipped = f"; skipped {', '.join(target.skipped)}" if target.skipped else ""
    lifecycle.add_event(
        session,
        job,
        f"Moved from {old_provider} ({old_model}) to {target.provider} ({target.model}): "
        f"{old_provider} {reason}{skipped}",
        level="warn",
    )
    if had_slot:
        enqueue(session, "jobs.schedule", old_provider, old_model)  # hand the old slot on
    enqueue(session, "jobs.schedule", job.provider, job.model)
    session.flush()


def fail_over(session: Session, job_id: str, reason: str, configured: list[str]) -> bool:
    """Move an uploading job whose provider refused it; False when there is nowhere to go."""
    job = repository.lock(session, job_id)
    if job is None or job.status != "uploading" or job.provider_job_id is not None:
        return False
    target = next_target(session, job, configured)
    if not isinstance(target, Target):
        if target:
            job.fallback_providers = []
            message = f"No fallback provider can take the job: {', '.join(target)}"
            lifecycle.add_event(session, job, message, level="warn")
        return False
    problem = recheck_datasets(session, job, target.model)
    if problem is not None:
        lifecycle.fail(
            session,
            job,
            "invalid_dataset",
            f"{job.provider} {reason}; fallback {target.provider} refused: {problem}",
        )
        return True
    move(session, job, target, reason)
    return True
