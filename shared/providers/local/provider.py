"""LocalProvider: the Provider interface over local runs (see service.py for their life)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError

from ftq.shared.db import session_scope
from ftq.shared.providers.base import (
    ChatResult,
    JobPage,
    JobSpec,
    ProviderBase,
    ProviderCheckpoint,
    ProviderEvent,
    ProviderJob,
    ProviderRejected,
    piece_events,
    sampling,
)
from ftq.shared.providers.local import models, repository, service
from ftq.shared.settings import get_settings
from ftq.shared.storage import get_blob_store
from ftq.shared.timeutil import as_utc

FILE_PREFIX = "file-local-"
RESULT_PREFIX = "file-local-result-"
EVENT_PREFIX = "levt-"
METHODS = ("supervised", "dpo")


class LocalProvider(ProviderBase):
    """Self-hosted LoRA training: files in blob storage, runs in the database, a `gpu` queue."""

    name = "local"
    lists_jobs = True

    def upload_file(self, path: Path, filename: str) -> str:
        """Copy a training file into blob storage under its upload name."""
        target = get_blob_store().path(_file_key(filename))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        return FILE_PREFIX + filename

    def find_file(self, filename: str, size: int) -> str | None:
        """An earlier copy of the same name and size."""
        target = get_blob_store().path(_file_key(filename))
        return (
            FILE_PREFIX + filename if target.is_file() and target.stat().st_size == size else None
        )

    def file_exists(self, file_id: str) -> bool:
        """Whether an uploaded file is still stored."""
        return file_path(file_id).is_file()

    def file_content(self, file_id: str) -> bytes:
        """A run's metrics CSV (its result file)."""
        if not file_id.startswith(RESULT_PREFIX):
            raise ProviderRejected(f"no result file {file_id}", code="not_found", status=404)
        path = get_blob_store().path(f"local/results/{file_id.removeprefix(RESULT_PREFIX)}.csv")
        if not path.is_file():
            raise ProviderRejected(f"no result file {file_id}", code="not_found", status=404)
        return path.read_bytes()

    def find_job(self, ftq_job_id: str) -> ProviderJob | None:
        """The run created for our job, if any."""
        with session_scope() as session:
            run = repository.by_ftq_job(session, ftq_job_id)
            return service.to_provider_job(run) if run else None

    def create_job(self, spec: JobSpec) -> ProviderJob:
        """Record a run and enqueue `local.train` (in one transaction, through the outbox)."""
        method = spec.method.get("type", "supervised")
        if method not in METHODS:
            raise ProviderRejected(f"the local provider trains {METHODS}, not {method!r}")
        models.locate(spec.model)
        if not file_path(spec.training_file).is_file():
            raise ProviderRejected(f"training file {spec.training_file} is gone", status=404)
        try:
            with session_scope() as session:
                return service.to_provider_job(service.create(session, spec))
        except IntegrityError:  # a concurrent submit of the same job won: return its run
            found = self.find_job(spec.ftq_job_id)
            if found is None:
                raise
            return found

    def get_job(self, provider_job_id: str) -> ProviderJob:
        """A run's state."""
        with session_scope() as session:
            return service.to_provider_job(_run(session, provider_job_id))

    def list_jobs(self, after: str | None = None, limit: int = 100) -> JobPage:
        """Runs newest first; restarts runs whose worker died on the way."""
        with session_scope() as session:
            if after is None:
                service.revive(session)
            rows, more = repository.page(session, after, limit)
            return JobPage([service.to_provider_job(r) for r in rows], more)

    def events_after(self, provider_job_id: str, cursor: str | None) -> list[ProviderEvent]:
        """Events after the cursor event, oldest first."""
        after = int(cursor.removeprefix(EVENT_PREFIX)) if cursor else 0
        with session_scope() as session:
            _run(session, provider_job_id)
            return [
                ProviderEvent(
                    id=f"{EVENT_PREFIX}{e.id}",
                    created_at=int((as_utc(e.created_at) or e.created_at).timestamp()),
                    level=e.level,
                    message=e.message,
                    type=e.type,
                    data=e.data,
                )
                for e in repository.events_after(session, provider_job_id, after)
            ]

    def list_checkpoints(self, provider_job_id: str) -> list[ProviderCheckpoint]:
        """The kept checkpoints (the last three), oldest first."""
        with session_scope() as session:
            run = _run(session, provider_job_id)
            name = service.model_name(run)
            return [
                ProviderCheckpoint(
                    id=f"lckpt-{run.id}-{c.step}",
                    step_number=c.step,
                    fine_tuned_model_checkpoint=f"{name}:ckpt-step-{c.step}",
                    metrics=dict(c.metrics),
                    created_at=int((as_utc(c.created_at) or c.created_at).timestamp()),
                )
                for c in repository.checkpoints(session, run.id)
            ]

    def cancel_job(self, provider_job_id: str) -> ProviderJob:
        """Ask the training to stop (within a step or two)."""
        with session_scope() as session:
            run = service.request_cancel(session, provider_job_id)
            if run is None:
                raise ProviderRejected(f"no job {provider_job_id}", code="not_found", status=404)
            return service.to_provider_job(run)

    def complete_chat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> ChatResult:
        """Generate with a base model or a `local:` fine-tuned model (base + adapter, cached):
        at the serving worker when FTQ_LOCAL_SERVING_URL names one, else in this process."""
        settings = get_settings()
        if settings.local_serving_url:
            from ftq.shared.providers.local import serving_client

            return serving_client.complete(
                settings, model, messages, max_tokens=max_tokens, temperature=temperature
            )
        from ftq.shared.providers.local import inference

        return inference.complete(model, messages, max_tokens=max_tokens, temperature=temperature)

    def chat_completion_stream(self, body: dict[str, Any]) -> Iterator[bytes]:
        """OpenAI's events as the reply is generated: relayed from the serving worker when
        FTQ_LOCAL_SERVING_URL names one, else generated in this process."""
        settings = get_settings()
        if settings.local_serving_url:
            from ftq.shared.providers.local import serving_client

            return serving_client.stream(settings, body)
        from ftq.shared.providers.local import inference

        pieces = inference.stream(body["model"], body["messages"], **sampling(body))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return piece_events(body["model"], pieces, include_usage=include_usage)


def _run(session: Any, run_id: str) -> Any:
    run = repository.get(session, run_id)
    if run is None:
        raise ProviderRejected(f"no job {run_id}", code="not_found", status=404)
    return run


def _file_key(filename: str) -> str:
    return f"local/files/{filename}"


def file_path(file_id: str) -> Path:
    """The stored path of an uploaded file id."""
    return get_blob_store().path(_file_key(file_id.removeprefix(FILE_PREFIX)))
