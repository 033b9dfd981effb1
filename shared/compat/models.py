"""`/v1/models`: the base models ftq's configured providers can tune, and the team's own models.

Ids are what a job's `model` takes: a hosted snapshot plain when the default provider tunes it,
`provider:model` for each provider when more than one can (or the default cannot), and
`local:<name>` for the local trainer's models. The team's fine-tuned models and checkpoints are
owned by the team id; one deleted at its provider is remembered as a `model_deleted` job event
and no longer listed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy.orm import Session

from ftq.shared import catalog
from ftq.shared.compat import ids
from ftq.shared.credentials import service as credentials
from ftq.shared.errors import BadRequest, Forbidden, NotFound, ServiceUnavailable
from ftq.shared.jobs import failover
from ftq.shared.jobs import repository as jobs_repo
from ftq.shared.models import Job, JobCheckpoint, JobEvent, Team
from ftq.shared.providers.base import (
    ProviderRejected,
    ProviderRetryable,
    ProviderUnavailable,
)
from ftq.shared.providers.local import models as local_models
from ftq.shared.providers.plugins import Credential
from ftq.shared.providers.registry import configured_providers, get_provider
from ftq.shared.settings import get_settings
from ftq.shared.timeutil import as_utc, utcnow

LOCAL = "local"
_SNAPSHOT_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})$")


# -- reading ------------------------------------------------------------------------------------


def list_models(session: Session, team: Team) -> list[dict[str, Any]]:
    """Base models first, then the team's fine-tuned models and checkpoints, newest job first."""
    return [*base_models(), *tuned_models(session, team)]


def get(session: Session, team: Team, model: str) -> dict[str, Any]:
    """One model by id, or OpenAI's 404 (also for another team's)."""
    base = next((m for m in base_models() if m["id"] == model), None)
    if base is not None:
        return base
    job, checkpoint = _own(session, team, model)
    return _tuned_object(model, job, checkpoint)


def base_models() -> list[dict[str, Any]]:
    """What each configured provider can tune, named as a job takes it."""
    providers = configured_providers()
    hosted = [name for name in providers if name != LOCAL]
    default = get_settings().provider
    today = utcnow().date()
    found: list[dict[str, Any]] = []
    every = [*catalog.list_models(), *catalog.TOGETHER_MODELS]
    for info in every:
        offering = [
            p
            for p in hosted
            if failover.offers(p, info.name)
            and catalog.lifecycle(info.name, p).closed_since(today) is None
        ]
        if default in offering:
            found.append(_base_object(info.name, info.name, default))
        if len(offering) > 1 or (offering and default not in offering):
            found.extend(_base_object(f"{p}:{info.name}", info.name, p) for p in offering)
    if LOCAL in providers:
        names = sorted(local_models.known_models())
        found.extend(_base_object(f"{LOCAL}:{name}", name, LOCAL) for name in names)
    return found


def _base_object(model_id: str, name: str, provider: str) -> dict[str, Any]:
    shutdown = catalog.lifecycle(name, provider).shutdown
    body: dict[str, Any] = {
        "id": model_id,
        "object": "model",
        "created": _snapshot_created(name),
        "owned_by": provider,
        "provider": provider,
    }
    if shutdown is not None:
        body["shutdown_date"] = shutdown.isoformat()
    return body


def _snapshot_created(name: str) -> int:
    """A snapshot's date as unix seconds (`gpt-4o-2024-08-06`); 0 when the name has none."""
    match = _SNAPSHOT_DATE.search(name)
    if match is None:
        return 0
    year, month, day = (int(part) for part in match.groups())
    return int(datetime(year, month, day, tzinfo=UTC).timestamp())


def tuned_models(session: Session, team: Team) -> list[dict[str, Any]]:
    """The team's fine-tuned models and checkpoints not deleted, each once."""
    gone = jobs_repo.deleted_models(session, team.id)
    shown: dict[str, dict[str, Any]] = {}
    for job in jobs_repo.tuned_jobs(session, team.id):
        name = job.fine_tuned_model
        if name and name not in gone:
            shown.setdefault(name, _tuned_object(name, job, None))
    for checkpoint, job in jobs_repo.team_checkpoints(session, team.id):
        name = checkpoint.fine_tuned_model_checkpoint
        if name not in gone:
            shown.setdefault(name, _tuned_object(name, job, checkpoint))
    return list(shown.values())


def _tuned_object(name: str, job: Job, checkpoint: JobCheckpoint | None) -> dict[str, Any]:
    return {
        "id": name,
        "object": "model",
        "created": _created(job, checkpoint),
        "owned_by": job.team_id,
        "provider": job.provider,
        "fine_tuning_job": ids.job_id(job.id),
    }


def _created(job: Job, checkpoint: JobCheckpoint | None) -> int:
    if checkpoint is not None and checkpoint.provider_created_at:
        return int(checkpoint.provider_created_at)
    moment = checkpoint.created_at if checkpoint is not None else job.finished_at
    moment = moment or job.created_at
    return int((as_utc(moment) or moment).timestamp())


def _own(session: Session, team: Team, model: str) -> tuple[Job, JobCheckpoint | None]:
    """The team's job behind a tuned model it has not deleted, or OpenAI's 404."""
    source = jobs_repo.tuned_model_source(session, team.id, model)
    if source is None or model in jobs_repo.deleted_models(session, team.id):
        raise not_found(model)
    return source


def not_found(model: str) -> NotFound:
    """OpenAI's 404 for a model."""
    return NotFound(
        f"The model '{model}' does not exist or you do not have access to it",
        param="model",
        code="model_not_found",
    )


# -- deleting -----------------------------------------------------------------------------------


def delete(session: Session, team: Team, model: str) -> dict[str, Any]:
    """Delete the team's fine-tuned model at its provider; base models are 403, others 404."""
    if any(m["id"] == model for m in base_models()):
        raise Forbidden(
            f"The model '{model}' is a base model: only fine-tuned models can be deleted",
            param="model",
        )
    job, _ = _own(session, team, model)
    _delete_at_provider(job.provider, model, partial(credentials.for_job, session, job))
    jobs_repo.add(
        session,
        JobEvent(
            job_id=job.id,
            source="ftq",
            level="info",
            type=jobs_repo.MODEL_DELETED,
            message=f"Model deleted: {model}",
            data={"model": model},
        ),
    )
    return {"id": model, "object": "model", "deleted": True}


def _delete_at_provider(
    provider: str, model: str, credential_of: Callable[[], Credential | None]
) -> None:
    """Ask the provider (with the key the job used); its 404 means the model is already gone."""
    try:
        get_provider(provider, credential=credential_of()).delete_model(model)
    except ProviderRejected as exc:
        if exc.status == 404:
            return
        if exc.code == "unsupported":
            raise BadRequest(
                f"the {provider} provider cannot delete models; {model} stays",
                param="model",
                code="unsupported",
            ) from exc
        raise BadRequest(f"{provider} refused: {exc.message}", param="model") from exc
    except ProviderUnavailable as exc:
        raise Forbidden(f"{provider} refused: {exc.message}", param="model") from exc
    except ProviderRetryable as exc:
        retry = {"retry-after": str(int(exc.retry_after))} if exc.retry_after else None
        raise ServiceUnavailable(
            f"{provider} could not delete {model} now; try again", headers=retry
        ) from exc
