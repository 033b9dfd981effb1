"""Mirroring provider jobs into ftq: status, events, metrics, checkpoints, result file, back-off.

The worker reads the provider (services/worker/tasks/jobs.py: one list-based sweep per provider,
or one job at a time after a provider webhook) and hands what it read to `apply_provider_state`,
which stores it under the job's row lock. Everything stored is keyed by the provider's ids (event
id, step, checkpoint id), so reading the same state twice, or from two workers, stores it once.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from ftq.shared.jobs import diagnosis, lifecycle, repository
from ftq.shared.jobs.schemas import TERMINAL_STATUSES
from ftq.shared.models import Dataset, Job, JobCheckpoint, JobEvent, JobMetric
from ftq.shared.providers.base import ProviderCheckpoint, ProviderEvent, ProviderJob
from ftq.shared.settings import get_settings
from ftq.shared.timeutil import as_utc, utcnow

PROVIDER_TO_STATUS = {
    "validating_files": "submitted",
    "queued": "submitted",
    "running": "running",
    "paused": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}
# Provider statuses whose progress shows only in events: checked on the back-off schedule even
# when the job list shows nothing new. Other statuses change only by changing status.
EVENTFUL_STATUSES = {"running"}
METRIC_FIELDS = (
    "total_steps",
    "train_loss",
    "train_mean_token_accuracy",
    "valid_loss",
    "valid_mean_token_accuracy",
    "full_valid_loss",
    "full_valid_mean_token_accuracy",
)
# Result CSV columns (OpenAI's names) -> metric fields.
CSV_COLUMNS = {
    "train_loss": "train_loss",
    "train_accuracy": "train_mean_token_accuracy",
    "train_mean_token_accuracy": "train_mean_token_accuracy",
    "valid_loss": "valid_loss",
    "valid_mean_token_accuracy": "valid_mean_token_accuracy",
    "valid_accuracy": "valid_mean_token_accuracy",
}
CHECKPOINT_HINTS = ("Checkpoint created", "New fine-tuned model created")


@dataclass(frozen=True)
class Tracked:
    """A job ftq follows at a provider, as the sweep needs it (read outside any lock)."""

    job_id: str
    provider_job_id: str
    fingerprint: str | None
    event_cursor: str | None
    due: bool
    has_result: bool
    provider_created_at: int | None


@dataclass(frozen=True)
class ResultFile:
    """A result file already written to blob storage."""

    file_id: str
    blob_key: str
    content: bytes


def tracked(
    session: Session, provider: str, now: datetime | None = None, job_id: str | None = None
) -> list[Tracked]:
    """The jobs ftq follows at `provider` (or just `job_id`, if ftq follows it)."""
    now = now or utcnow()
    return [
        Tracked(
            job_id=job.id,
            provider_job_id=str(job.provider_job_id),
            fingerprint=job.provider_fingerprint,
            event_cursor=job.event_cursor,
            due=job.next_poll_at is None or (as_utc(job.next_poll_at) or now) <= now,
            has_result=job.result_file_id is not None,
            provider_created_at=job.provider_created_at,
        )
        for job in repository.tracked(session, provider, job_id)
    ]


def needs_sync(job: Tracked, state: ProviderJob) -> bool:
    """Whether to read a job's events now: it moved, or it is running and its check is due."""
    return state.fingerprint != job.fingerprint or (job.due and state.status in EVENTFUL_STATUSES)


def wants_checkpoints(state: ProviderJob, events: Sequence[ProviderEvent]) -> bool:
    """Whether checkpoints may have appeared (announced by an event, or the job finished)."""
    if state.status == "succeeded":
        return True
    return any(e.message.startswith(CHECKPOINT_HINTS) for e in events)


def decode_result(data: bytes) -> bytes:
    """A result CSV's bytes (OpenAI serves it base64-encoded; plain CSV passes through)."""
    if data.lstrip().startswith(b"step"):
        return data
    try:
        decoded = base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        return data
    return decoded if decoded.lstrip().startswith(b"step") else data


def apply_provider_state(
    session: Session,
    job_id: str,
    state: ProviderJob,
    events: Sequence[ProviderEvent],
    *,
    checkpoints: Sequence[ProviderCheckpoint] = (),
    result: ResultFile | None = None,
    now: datetime | None = None,
) -> bool:
    """Mirror one read of a provider job; True when anything moved (polling resets then)."""
    job = repository.lock(session, job_id)
    if job is None or job.status in TERMINAL_STATUSES:
        return False
    now = now or utcnow()
    stored = _store_events(session, job, events)
    added = _store_metrics(session, job, _metric_points(events))
    _store_checkpoints(session, job, checkpoints)
    if result is not None and job.result_file_id is None:
        job.result_file_id, job.result_blob_key = result.file_id, result.blob_key
        job.result_bytes = len(result.content)
        added += _store_metrics(session, job, _csv_points(result.content))
    changed = stored > 0 or state.fingerprint != job.provider_fingerprint
    job.provider_status = state.status
    job.provider_fingerprint = state.fingerprint
    if state.created_at is not None:
        job.provider_created_at = state.created_at
    finishing = PROVIDER_TO_STATUS.get(state.status) in TERMINAL_STATUSES
    if added or finishing:  # before the status moves: the job.succeeded webhook carries it
        update_diagnosis(session, job, final=finishing)
    _apply_status(session, job, state)
    if job.status not in TERMINAL_STATUSES:
        schedule_next_poll(job, changed, now)
    session.flush()
    return changed


def note_quiet(session: Session, job_ids: Iterable[str], now: datetime | None = None) -> None:
    """Back off jobs that were due and showed nothing new (without reading their events)."""
    now = now or utcnow()
    for job_id in job_ids:
        job = repository.lock(session, job_id)
        if job is not None and job.status not in TERMINAL_STATUSES:
            schedule_next_poll(job, False, now)
    session.flush()


def schedule_next_poll(job: Job, changed: bool, now: datetime | None = None) -> None:
    """15 s after a change, doubling while quiet up to the maximum (10 min)."""
    settings = get_settings()
    base = settings.poll_interval_seconds
    interval = (
        base if changed else min(job.poll_interval_seconds * 2, settings.poll_max_interval_seconds)
    )
    job.poll_interval_seconds = max(interval, base)
    job.next_poll_at = (now or utcnow()) + timedelta(seconds=job.poll_interval_seconds)


def _apply_status(session: Session, job: Job, state: ProviderJob) -> None:
    status = PROVIDER_TO_STATUS.get(state.status, job.status)
    if status == "succeeded":
        if job.status != "running":  # it ran between two reads: say so before it finished
            lifecycle.set_status(session, job, "running", "Training started at the provider")
        job.fine_tuned_model, job.trained_tokens = state.fine_tuned_model, state.trained_tokens
        lifecycle.set_status(
            session, job, "succeeded", f"Fine-tuned model ready: {state.fine_tuned_model}"
        )
    elif status == "failed":
        message = state.error_message or "the provider reported the job failed"
        if state.error_code:
            message = f"{message} (provider code {state.error_code})"
        lifecycle.fail(session, job, "provider_failed", message)
    elif status == "cancelled":
        lifecycle.set_status(session, job, "cancelled", "Job was cancelled at the provider")
    elif status == "running":
        lifecycle.set_status(session, job, "running", "Training started at the provider")


def _store_events(session: Session, job: Job, events: Sequence[ProviderEvent]) -> int:
    known = repository.known_provider_event_ids(session, job.id, (e.id for e in events))
    fresh: dict[str, ProviderEvent] = {}
    for event in events:
        if event.id not in known:
            fresh.setdefault(event.id, event)
    for event in fresh.values():
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


def _metric_points(events: Sequence[ProviderEvent]) -> list[dict[str, Any]]:
    return [
        e.data
        for e in events
        if e.type == "metrics" and e.data and isinstance(e.data.get("step"), int)
    ]


def _csv_points(content: bytes) -> list[dict[str, Any]]:
    """Per-step metrics from a result CSV (fills steps whose events were never seen)."""
    points: list[dict[str, Any]] = []
    try:
        reader = csv.DictReader(io.StringIO(content.decode("utf-8", errors="replace")))
        for row in reader:
            step = row.get("step")
            if not step or not step.strip().isdigit():
                continue
            point: dict[str, Any] = {"step": int(step)}
            for column, field in CSV_COLUMNS.items():
                value = (row.get(column) or "").strip()
                if value:
                    point[field] = float(value)
            points.append(point)
    except (csv.Error, ValueError):
        return points
    return points


def update_diagnosis(session: Session, job: Job, *, final: bool = False) -> None:
    """Diagnose the job's stored metrics again; a `warn` event for each kind new to the job.

    At the end (`final`) one more event gives the final diagnosis, whatever it found.
    """
    rows = repository.metrics(session, job.id)
    if not rows and not final:
        return
    dataset = session.get(Dataset, job.training_dataset_id)
    found = diagnosis.diagnose(
        [diagnosis.point_of(row) for row in rows],
        final=final,
        hyperparameters=(job.method or {}).get("hyperparameters") or {},
        auto_epochs=(dataset.report or {}).get("auto_n_epochs") if dataset else None,
    )
    known = set(diagnosis.kinds(job.diagnosis))
    job.diagnosis = found
    for finding in found["findings"]:
        if finding["kind"] not in known:
            message = f"Diagnosis: {finding['kind']}: {finding['message']}"
            _diagnosis_event(session, job, "warn", message, finding)
    if final and rows:
        names = ", ".join(diagnosis.kinds(found)) or "no problem found"
        _diagnosis_event(session, job, "info", f"Final diagnosis: {names}", found)


def _diagnosis_event(
    session: Session, job: Job, level: str, message: str, data: dict[str, Any]
) -> None:
    event = JobEvent(
        job_id=job.id, source="ftq", level=level, type="diagnosis", message=message, data=data
    )
    session.add(event)


def _store_metrics(session: Session, job: Job, points: Sequence[dict[str, Any]]) -> int:
    by_step: dict[int, dict[str, Any]] = {}
    for point in points:
        by_step.setdefault(int(point["step"]), point)
    known = repository.known_steps(session, job.id, by_step)
    added = 0
    for step, point in by_step.items():
        if step in known:
            continue
        added += 1
        values = {name: _number(point.get(name)) for name in METRIC_FIELDS}
        total = values.pop("total_steps")
        session.add(
            JobMetric(job_id=job.id, step=step, total_steps=int(total) if total else None, **values)
        )
    session.flush()
    return added


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _store_checkpoints(
    session: Session, job: Job, checkpoints: Sequence[ProviderCheckpoint]
) -> None:
    known = repository.known_checkpoint_ids(session, job.id, (c.id for c in checkpoints))
    for checkpoint in {c.id: c for c in checkpoints}.values():
        if checkpoint.id in known:
            continue
        session.add(
            JobCheckpoint(
                job_id=job.id,
                provider_checkpoint_id=checkpoint.id,
                step_number=checkpoint.step_number,
                fine_tuned_model_checkpoint=checkpoint.fine_tuned_model_checkpoint,
                metrics=dict(checkpoint.metrics),
                provider_created_at=checkpoint.created_at,
            )
        )
    session.flush()
