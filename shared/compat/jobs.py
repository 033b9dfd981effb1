"""`/v1/fine_tuning/jobs`: OpenAI's job objects over ftq's jobs, one to one.

A compat job is an ordinary ftq job (the same row is `/v1/jobs/ftj_X` and
`/v1/fine_tuning/jobs/ftjob-X`), so validation, exactly-once submission, fair queueing, budgets,
webhooks and evals all apply. What differs is only the wire format: OpenAI's ids, statuses, list
order (newest first) and error words.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from ftq.shared.compat import findings, ids
from ftq.shared.compat.schemas import FineTuningJobCreate, OpenAIHyperparameters
from ftq.shared.credentials import service as credentials
from ftq.shared.datasets import repository as datasets_repo
from ftq.shared.datasets import service as datasets
from ftq.shared.errors import AppError, BadRequest, NotFound
from ftq.shared.jobs import repository as jobs_repo
from ftq.shared.jobs import service as jobs
from ftq.shared.jobs.schemas import JobCreate, check_provider_settings
from ftq.shared.models import Dataset, Job, JobCheckpoint, JobEvent, JobRecord, Team
from ftq.shared.providers.registry import check_configured, provider_names
from ftq.shared.settings import get_settings
from ftq.shared.timeutil import as_utc

PROVIDER_METADATA_KEY = "ftq_provider"
METRIC_KEYS = (
    "step",
    "total_steps",
    "train_loss",
    "train_mean_token_accuracy",
    "valid_loss",
    "valid_mean_token_accuracy",
)
ACTIONS = {"pause", "resume"}


# -- create -------------------------------------------------------------------------------------


def create(session: Session, team: Team, body: FineTuningJobCreate) -> Job:
    """Accept an OpenAI job request as an ftq job (checks first, then jobs.create)."""
    provider, model = choose_provider(body.model, body.metadata or {}, session, team)
    training = usable_file(session, team, body.training_file, "training_file")
    validation = (
        usable_file(session, team, body.validation_file, "validation_file")
        if body.validation_file
        else None
    )
    data = _job_create(body, provider, model, training, validation)
    check_provider_settings(data, provider)
    return jobs.create(session, team, data)


def choose_provider(
    model: str, metadata: dict[str, str], session: Session, team: Team
) -> tuple[str, str]:
    """(provider, model): `provider:model`, else metadata["ftq_provider"], else the default.

    A provider the server has no key for is usable by a team that registered its own."""
    prefix, colon, rest = model.partition(":")
    if colon and prefix in provider_names():
        provider, model, param = prefix, rest, "model"
    elif PROVIDER_METADATA_KEY in metadata:
        provider, param = metadata[PROVIDER_METADATA_KEY], f"metadata.{PROVIDER_METADATA_KEY}"
    else:
        provider, param = get_settings().provider, "model"
    try:
        own_key = credentials.active_id(session, team.id, provider) is not None
        check_configured(provider, team_credential=own_key)
    except AppError as exc:
        raise BadRequest(
            f"{exc.message}; name a provider as `provider:model` (providers: "
            f"{', '.join(provider_names())}) or in metadata[{PROVIDER_METADATA_KEY!r}]",
            param=param,
            code=exc.code,
        ) from exc
    return provider, model


def usable_file(session: Session, team: Team, file: str, param: str) -> Dataset:
    """The team's dataset behind a file id, refused (400) when it failed ftq's validation."""
    dataset = datasets_repo.get_for_team(session, team.id, ids.dataset_id(file, param))
    if dataset is None:
        raise NotFound(f"No such File object: {file}", param=param)
    if not datasets.fit_for(dataset, small_ok=param == "validation_file"):
        raise BadRequest(
            _invalid_file_message(dataset, file, param), param=param, code=_code(param)
        )
    return dataset


def _code(param: str) -> str:
    return "invalid_training_file" if param == "training_file" else "invalid_validation_file"


def _invalid_file_message(dataset: Dataset, file: str, param: str) -> str:
    return f"{param} {file} failed ftq's validation: {findings.summary(dataset)}"


def _job_create(
    body: FineTuningJobCreate,
    provider: str,
    model: str,
    training: Dataset,
    validation: Dataset | None,
) -> JobCreate:
    try:
        return JobCreate.model_validate(
            {
                "model": model,
                "training_dataset": training.id,
                "validation_dataset": validation.id if validation else None,
                "provider": provider,
                "method": _method(body),
                "suffix": body.suffix,
                "seed": body.seed,
                "metadata": body.metadata or {},
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first.get("loc", ())) or None
        raise BadRequest(f"{param}: {first.get('msg')}", param=param) from exc


def _method(body: FineTuningJobCreate) -> dict[str, Any]:
    """ftq's method from OpenAI's `method` and the legacy top-level `hyperparameters`."""
    kind = body.method.type if body.method else "supervised"
    if kind == "reinforcement":
        raise BadRequest(
            "method.type 'reinforcement' is not offered by ftq's providers; use supervised or dpo",
            param="method.type",
        )
    given = getattr(body.method, kind, None) if body.method else None
    params = given.hyperparameters if given else OpenAIHyperparameters()
    if body.hyperparameters is not None:
        if kind != "supervised":
            raise BadRequest(
                "top-level hyperparameters are the supervised method's; for dpo put them under "
                "method.dpo.hyperparameters",
                param="hyperparameters",
            )
        params = _merged(body.hyperparameters, params)
    return {"type": kind, "hyperparameters": params.model_dump(exclude_none=True)}


def _merged(legacy: OpenAIHyperparameters, method: OpenAIHyperparameters) -> OpenAIHyperparameters:
    """The top-level values under the method's; the same name given twice must agree."""
    merged = method.model_dump(exclude_none=True)
    for name, value in legacy.model_dump(exclude_none=True).items():
        if name in merged and merged[name] != value:
            raise BadRequest(
                f"hyperparameters.{name} is {value!r} but method.supervised.hyperparameters."
                f"{name} is {merged[name]!r}; give it once",
                param=f"hyperparameters.{name}",
            )
        merged[name] = value
    return OpenAIHyperparameters.model_validate(merged)


# -- reading ------------------------------------------------------------------------------------


def get(session: Session, team: Team, job: str) -> Job:
    """A team's job by its `ftjob-` id, or OpenAI's 404."""
    try:
        return jobs.get(session, team, ftq_id(job))
    except NotFound as exc:
        raise job_not_found(job) from exc


def ftq_id(job: str) -> str:
    """The ftq job id behind an `ftjob-` id, or OpenAI's 404."""
    try:
        return ids.ftq_job_id(job)
    except NotFound as exc:
        raise job_not_found(job) from exc


def job_not_found(job: str) -> NotFound:
    """OpenAI's 404 for an `ftjob-` id the team has no job for."""
    return NotFound(
        f"Could not find fine tune: {job}", param="fine_tuning_job_id", code="fine_tune_not_found"
    )


def list_page(
    session: Session, team: Team, *, after: str | None, limit: int, metadata: dict[str, str]
) -> tuple[list[Job], bool]:
    """A page of the team's jobs, newest first; `after` is an `ftjob-` id."""
    cursor = ids.ftq_job_id(after) if after else None
    return jobs.list_page(session, team, status=None, limit=limit, after=cursor, metadata=metadata)


def cancel(session: Session, team: Team, job: str) -> Job:
    """Cancel a job (also at the provider)."""
    return jobs.cancel(session, team, get(session, team, job).id)


def control(session: Session, team: Team, job: str, action: str) -> Job:
    """Pause or resume a job at its provider."""
    assert action in ACTIONS
    return jobs.request_control(session, team, get(session, team, job).id, action)


def events_page(
    session: Session, team: Team, job: str, *, after: str | None, limit: int
) -> tuple[list[JobEvent], bool]:
    """A page of the job's events, newest first; `after` is an `ftevent-` id."""
    row = get(session, team, job)
    before = ids.event_number(after)
    return jobs_repo.events_newest_first(session, row.id, limit=limit, before=before)


def checkpoints_page(
    session: Session, team: Team, job: str, *, after: str | None, limit: int
) -> tuple[list[JobCheckpoint], bool]:
    """A page of the job's checkpoints, newest first; `after` is an `ftckpt_` id."""
    row = get(session, team, job)
    newest = sorted(jobs_repo.checkpoints(session, row.id), key=lambda c: (-c.step_number, -c.id))
    cursor = ids.checkpoint_number(after)
    if cursor is not None:
        at = next((i for i, c in enumerate(newest) if c.id == cursor), None)
        newest = newest[at + 1 :] if at is not None else []
    return newest[:limit], len(newest) > limit


# -- objects ------------------------------------------------------------------------------------


def status_of(job: JobRecord) -> str:
    """OpenAI's status: `validating_files` until ftq released the job, then `queued`..."""
    if job.status == "queued":
        return "validating_files" if job.ready_at is None else "queued"
    if job.status in ("uploading", "submitted"):
        return "queued"
    return job.status


def job_object(job: JobRecord) -> dict[str, Any]:
    """The `fine_tuning.job` object of a job."""
    method = job.method or {"type": "supervised", "hyperparameters": {}}
    kind = method.get("type", "supervised")
    params = {k: v for k, v in (method.get("hyperparameters") or {}).items() if v is not None}
    if kind != "dpo":
        params.pop("beta", None)
    return {
        "id": ids.job_id(job.id),
        "object": "fine_tuning.job",
        "created_at": _unix(job.created_at),
        "error": _error(job),
        "fine_tuned_model": job.fine_tuned_model,
        "finished_at": _unix(job.finished_at),
        "hyperparameters": {k: params.get(k, "auto") for k in _BASIC},
        "model": job.model,
        "organization_id": job.team_id,
        "result_files": [],
        "seed": job.seed if job.seed is not None else _seed_of(job.id),
        "status": status_of(job),
        "trained_tokens": job.trained_tokens,
        "training_file": ids.file_id(job.training_dataset_id),
        "validation_file": (
            ids.file_id(job.validation_dataset_id) if job.validation_dataset_id else None
        ),
        "estimated_finish": None,
        "integrations": [],
        "metadata": dict(job.job_metadata or {}),
        "method": {"type": kind, kind: {"hyperparameters": params}},
        "user_provided_suffix": job.suffix,
        # ftq's additions (the SDK keeps unknown fields): where the job runs and its ftq id.
        "provider": job.provider,
        "provider_status": job.provider_status,
        "ftq_job_id": job.id,
    }


_BASIC = ("batch_size", "learning_rate_multiplier", "n_epochs")


def _error(job: JobRecord) -> dict[str, Any] | None:
    """`null` unless the job failed (never an object of nulls)."""
    if job.status != "failed":
        return None
    return {
        "code": job.error_code or "failed",
        "message": job.error_message or "",
        "param": _error_param(job.error_code),
    }


def _error_param(code: str | None) -> str | None:
    return "training_file" if code == "invalid_dataset" else None


def _seed_of(job_id: str) -> int:
    """A stable seed for a job that was given none (OpenAI always reports one)."""
    return int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:4], "big") & 0x7FFFFFFF


def _unix(moment: Any) -> int | None:
    if moment is None:
        return None
    return int((as_utc(moment) or moment).timestamp())


def event_object(event: JobEvent) -> dict[str, Any]:
    """The `fine_tuning.job.event` object of a job event."""
    metrics = event.type == "metrics"
    data = dict(event.data or {})
    if metrics:
        data = {**{key: data.get(key) for key in METRIC_KEYS}, **data}
    return {
        "id": ids.event_id(event.id),
        "object": "fine_tuning.job.event",
        "created_at": _unix(event.created_at),
        "level": event.level if event.level in ("info", "warn", "error") else "info",
        "message": event.message,
        "type": "metrics" if metrics else "message",
        "data": data,
    }


def checkpoint_object(checkpoint: JobCheckpoint) -> dict[str, Any]:
    """The `fine_tuning.job.checkpoint` object of a checkpoint."""
    created = checkpoint.provider_created_at or _unix(checkpoint.created_at)
    return {
        "id": ids.checkpoint_id(checkpoint.id),
        "object": "fine_tuning.job.checkpoint",
        "created_at": created,
        "fine_tuned_model_checkpoint": checkpoint.fine_tuned_model_checkpoint,
        "fine_tuning_job_id": ids.job_id(checkpoint.job_id),
        "metrics": {"step": checkpoint.step_number, **dict(checkpoint.metrics or {})},
        "step_number": checkpoint.step_number,
    }
