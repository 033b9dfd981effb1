"""The provider side of a job: schedule, submit, sweep, poll, cancel, pause and resume.

- `jobs.schedule(provider, model)`: hand free provider slots to queued jobs, fairly.
- `jobs.submit(job_id)`: upload the files and create the provider job exactly once (find before
  create), retrying 429 / 5xx / connection errors with back-off that honours `retry-after`.
- `jobs.sweep` (beat): start due provider sweeps, catch up on scheduling, re-submit lost uploads.
- `jobs.sync_provider(provider)`: one list-based sweep of a provider's jobs.
- `jobs.poll(job_id)`: sync one job now (after OpenAI's webhook, or an action).
- `jobs.cancel_at_provider(job_id)`, `jobs.control_at_provider(job_id, action)`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from celery import Task

from ftq.services.worker.celery_app import celery_app
from ftq.services.worker.tasks.outbox import relay_now
from ftq.shared.credentials import service as credentials
from ftq.shared.credentials.service import CredentialRevoked
from ftq.shared.db import session_scope
from ftq.shared.jobs import lifecycle, repository, scheduling, service, sync
from ftq.shared.models import Dataset
from ftq.shared.providers.base import (
    TERMINAL_PROVIDER_STATUSES,
    Provider,
    ProviderError,
    ProviderJob,
    ProviderRejected,
    ProviderRetryable,
    ProviderUnavailable,
)
from ftq.shared.providers.plugins import Credential
from ftq.shared.providers.registry import get_provider
from ftq.shared.settings import get_settings
from ftq.shared.storage import get_blob_store
from ftq.shared.timeutil import utcnow

log = logging.getLogger(__name__)
MAX_SUBMIT_RETRIES = 8
MAX_BACKOFF_SECONDS = 60.0
MAX_RETRY_AFTER_SECONDS = 1800.0
LIST_PAGE = 100


def backoff_seconds(retries: int, exc: ProviderRetryable) -> float:
    """Exponential back-off (1, 2, 4 … 60 s), never shorter than the provider's retry-after."""
    base = min(2.0**retries, MAX_BACKOFF_SECONDS)
    return min(max(base, exc.retry_after or 0.0), MAX_RETRY_AFTER_SECONDS)


# -- scheduling ---------------------------------------------------------------------------


@celery_app.task(name="jobs.schedule")
def schedule(provider: str, model: str) -> int:
    """Admit queued jobs of (provider, model) into free slots."""
    with session_scope() as session:
        admitted = scheduling.schedule(session, provider, model)
        count = len(admitted)
    relay_now()
    return count


# -- submission ---------------------------------------------------------------------------


@celery_app.task(name="jobs.submit", bind=True, max_retries=MAX_SUBMIT_RETRIES)
def submit(self: Task, job_id: str) -> str | None:
    """Upload the files and create the provider job exactly once."""
    try:
        provider_job_id = submit_once(job_id)
    except ProviderRetryable as exc:
        if self.request.retries >= MAX_SUBMIT_RETRIES:
            _fail(job_id, "provider_failed", f"the provider kept failing: {exc.message}")
            return None
        with session_scope() as session:
            job = repository.lock(session, job_id)
            if job is not None:
                wait = backoff_seconds(self.request.retries, exc)
                lifecycle.add_event(
                    session,
                    job,
                    f"Provider busy or failing ({exc.status or 'connection'}: {exc.message}); "
                    f"retrying in {wait:.0f} s",
                    level="warn",
                )
        raise self.retry(exc=exc, countdown=backoff_seconds(self.request.retries, exc)) from exc
    except CredentialRevoked as exc:
        _fail(job_id, "provider_unavailable", exc.message)
        return None
    except ProviderUnavailable as exc:
        if not _moved(job_id, exc):
            _fail(
                job_id,
                "provider_unavailable",
                f"the provider refuses new fine-tuning jobs for this account: {exc.message}",
            )
        return None
    except ProviderRejected as exc:
        if not _moved(job_id, exc):
            _fail(job_id, "provider_rejected", exc.message)
        return None
    return provider_job_id


def _moved(job_id: str, exc: ProviderError) -> bool:
    """Whether the refused job moved to one of its fallback providers (issue 14, failover)."""
    with session_scope() as session:
        moved = service.fail_over(session, job_id, exc)
    if moved:
        relay_now()
    return moved


def submit_once(job_id: str) -> str | None:
    """One attempt, alone: two deliveries of one job's submit never both reach the provider."""
    with repository.submission_lock(job_id) as alone:
        if not alone:
            log.info("submission of %s is already in progress in another worker", job_id)
            return None
        return _submit_locked(job_id)


def _submit_locked(job_id: str) -> str | None:
    """Find or upload the files, find or create the provider job, store its id."""
    with session_scope() as session:
        plan = service.begin_submission(session, job_id)
        orphan_provider = service.unrecorded_submission(session, job_id) if plan is None else None
    if plan is None:
        if orphan_provider is not None:
            _cancel_orphan(_job_client(job_id, orphan_provider), job_id)
        return None
    provider = _job_client(job_id, plan.provider)
    closed = provider.closed_for_account(plan.spec_base["model"], utcnow().date())
    if closed is not None:  # before any upload: the job moves on or fails, nothing is spent
        raise ProviderUnavailable(closed, code="model_closed")
    training_file = ensure_uploaded(provider, plan.training)
    validation_file = ensure_uploaded(provider, plan.validation) if plan.validation else None
    # Look before creating: a crash after the provider accepted must not create a twin.
    existing = provider.find_job(job_id)
    created = existing or provider.create_job(
        service.build_spec(plan, training_file, validation_file)
    )
    with session_scope() as session:
        live = service.record_submission(session, job_id, created)
    if not live:
        _cancel_quietly(provider, created.id)
    relay_now()
    return created.id


def upload_name(dataset: Dataset) -> str:
    """The provider filename of a dataset: our id first, so an earlier upload is found again."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset.name.removesuffix(".jsonl"))[:80]
    return f"ftq-{dataset.id}-{stem}.jsonl"


def ensure_uploaded(provider: Provider, dataset: Dataset) -> str:
    """The dataset's file at the provider: the stored id, an earlier upload, or a new upload."""
    known = (dataset.provider_files or {}).get(provider.name)
    if known and provider.file_exists(known):
        return str(known)
    name = upload_name(dataset)
    file_id = provider.find_file(name, dataset.bytes)
    if file_id is None:
        file_id = provider.upload_file(get_blob_store().path(dataset.blob_key), name)
    with session_scope() as session:
        service.remember_file(session, dataset.id, provider.name, file_id)
    return file_id


def _cancel_quietly(provider: Provider, provider_job_id: str) -> None:
    try:
        provider.cancel_job(provider_job_id)
    except ProviderError as exc:
        log.warning("could not cancel %s: %s", provider_job_id, exc.message)


def _cancel_orphan(provider: Provider, job_id: str) -> None:
    """Cancel a provider job made for a job that finished before ftq stored its id."""
    found = provider.find_job(job_id)
    if found is not None and found.status not in TERMINAL_PROVIDER_STATUSES:
        log.warning("cancelling orphan provider job %s of finished job %s", found.id, job_id)
        _cancel_quietly(provider, found.id)


def _fail(job_id: str, code: str, message: str) -> None:
    with session_scope() as session:
        lifecycle.fail_by_id(session, job_id, code, message)
    relay_now()


def _client(name: str, credential: Credential | None) -> Provider:
    """The provider with a team's credential; without one, exactly the gateway's client."""
    return get_provider(name) if credential is None else get_provider(name, credential=credential)


def _job_client(job_id: str, name: str) -> Provider:
    """A job's provider client with the team credential it was made with (or CredentialRevoked)."""
    with session_scope() as session:
        credential = credentials.for_job_id(session, job_id)
    return _client(name, credential)


def _job_client_or_fail(job_id: str, name: str) -> Provider | None:
    """`_job_client`, or None after failing the job whose credential was revoked."""
    try:
        return _job_client(job_id, name)
    except CredentialRevoked as exc:
        _fail(job_id, "provider_unavailable", exc.message)
        return None


# -- following jobs -----------------------------------------------------------------------


@celery_app.task(name="jobs.sweep")
def sweep() -> int:
    """Start due provider sweeps; catch up on scheduling; re-submit uploads whose task was lost."""
    now = utcnow()
    interval = timedelta(seconds=get_settings().poll_interval_seconds)
    due: list[str] = []
    with session_scope() as session:
        for name in repository.providers_followed(session):
            row = repository.claim_sweep(session, name, now)
            if row is not None:
                row.next_sweep_at = now + interval
                due.append(name)
        service.release_missed(session)
        pairs = list(scheduling.pairs_to_schedule(session))
        stuck_since = now - timedelta(seconds=get_settings().submit_stuck_seconds)
        stuck = repository.stuck_uploads(session, stuck_since)
    for name in due:
        sync_provider.delay(name)
    for provider, model in pairs:
        schedule.delay(provider, model)
    for job_id in stuck:
        submit.delay(job_id)
    return len(due)


@dataclass
class SweepReport:
    """What one provider sweep did (calls are provider requests, counted here)."""

    provider: str
    tracked: int = 0
    list_calls: int = 0
    job_calls: int = 0
    synced: list[str] = field(default_factory=list)
    quiet: int = 0
    errors: int = 0

    @property
    def calls(self) -> int:
        """Every provider request of the sweep."""
        return self.list_calls + self.job_calls


@celery_app.task(name="jobs.sync_provider")
def sync_provider(provider_name: str) -> int:
    """One list-based sweep of a provider's jobs (see sweep_provider)."""
    report = sweep_provider(provider_name)
    with session_scope() as session:
        repository.record_sweep(session, provider_name, utcnow(), report.calls)
    return report.calls


def sweep_provider(
    provider_name: str, *, provider: Provider | None = None, now: datetime | None = None
) -> SweepReport:
    """Read a provider's job list (pages of 100, newest first) until every followed job is seen;
    read events only for jobs that moved, or that run and whose back-off check is due. Jobs made
    with a team's credential are listed with that key, one list per key."""
    now = now or utcnow()
    report = SweepReport(provider_name)
    with session_scope() as session:
        jobs = sync.tracked(session, provider_name, now)
    report.tracked = len(jobs)
    for credential, group in _by_credential(provider_name, jobs):
        _sweep_group(provider or _client(provider_name, credential), group, report, now)
    return report


def _by_credential(
    provider_name: str, jobs: list[sync.Tracked]
) -> list[tuple[Credential | None, list[sync.Tracked]]]:
    """The followed jobs grouped by the key that follows them; a revoked key fails its jobs."""
    grouped: dict[str | None, list[sync.Tracked]] = {}
    groups: list[tuple[Credential | None, list[sync.Tracked]]] = []
    revoked: list[tuple[str, str]] = []
    with session_scope() as session:
        ids = credentials.credential_ids_of_jobs(session, [job.job_id for job in jobs])
        for job in jobs:
            grouped.setdefault(ids.get(job.job_id), []).append(job)
        for credential_id, group in grouped.items():
            try:
                key = credentials.load(session, credential_id, provider_name)
            except CredentialRevoked as exc:
                revoked += [(job.job_id, exc.message) for job in group]
                continue
            groups.append((key, group))
    for job_id, reason in revoked:
        _fail(job_id, "provider_unavailable", reason)
    return groups


def _sweep_group(
    provider: Provider, jobs: list[sync.Tracked], report: SweepReport, now: datetime
) -> None:
    """One sweep over the jobs one key follows (see sweep_provider)."""
    by_id = {job.provider_job_id: job for job in jobs}
    try:
        states, missing = _list_states(provider, jobs, report)
    except ProviderError as exc:
        log.warning("sweep of %s stopped: %s", report.provider, exc.message)
        report.errors += 1
        return
    for provider_job_id in missing:
        try:
            report.job_calls += 1
            states[provider_job_id] = provider.get_job(provider_job_id)
        except ProviderError as exc:
            log.warning("could not read %s: %s", provider_job_id, exc.message)
            report.errors += 1
    quiet = []
    for provider_job_id, state in states.items():
        job = by_id[provider_job_id]
        if sync.needs_sync(job, state):
            if sync_job(provider, job, state, now=now, report=report):
                report.synced.append(job.job_id)
        elif job.due:
            quiet.append(job.job_id)
    if quiet:
        with session_scope() as session:
            sync.note_quiet(session, quiet, now)
    report.quiet += len(quiet)


def _list_states(
    provider: Provider, jobs: list[sync.Tracked], report: SweepReport
) -> tuple[dict[str, ProviderJob], set[str]]:
    """States from the job list, and the followed jobs it did not show (read one by one)."""
    if not provider.lists_jobs:
        return {}, {job.provider_job_id for job in jobs if job.due}
    pending = {job.provider_job_id for job in jobs}
    known_ages = [job.provider_created_at for job in jobs if job.provider_created_at]
    oldest = min(known_ages) if len(known_ages) == len(jobs) else None
    states: dict[str, ProviderJob] = {}
    after: str | None = None
    while pending:
        page = provider.list_jobs(after, LIST_PAGE)
        report.list_calls += 1
        for state in page.jobs:
            if state.id in pending:
                states[state.id] = state
                pending.discard(state.id)
        if not page.has_more or not page.jobs:
            break
        last = page.jobs[-1]
        if oldest is not None and last.created_at is not None and last.created_at < oldest:
            break  # older than every job we follow: the rest of the list is history
        after = last.id
    return states, pending


def sync_job(
    provider: Provider,
    job: sync.Tracked,
    state: ProviderJob,
    *,
    now: datetime | None = None,
    report: SweepReport | None = None,
) -> bool:
    """Read a job's new events (and checkpoints, and its result file once it succeeded); store."""
    calls = 0
    try:
        events = provider.events_after(job.provider_job_id, job.event_cursor)
        calls += 1
        checkpoints = []
        if sync.wants_checkpoints(state, events):
            checkpoints = provider.list_checkpoints(job.provider_job_id)
            calls += 1
        result = None
        if state.status == "succeeded" and state.result_files and not job.has_result:
            result = _keep_result(provider, job.job_id, state.result_files[0])
            calls += 1
    except ProviderError as exc:
        log.warning("sync of %s failed: %s", job.job_id, exc.message)
        if report is not None:
            report.errors += 1
            report.job_calls += calls + 1
        return False
    if report is not None:
        report.job_calls += calls
    with session_scope() as session:
        sync.apply_provider_state(
            session, job.job_id, state, events, checkpoints=checkpoints, result=result, now=now
        )
    relay_now()
    return True


def _keep_result(provider: Provider, job_id: str, file_id: str) -> sync.ResultFile | None:
    """Fetch the result file into blob storage (a vanished file is logged, not retried)."""
    try:
        data = sync.decode_result(provider.file_content(file_id))
    except ProviderRejected as exc:
        log.warning("result file %s of %s is gone: %s", file_id, job_id, exc.message)
        return None
    key = f"results/{job_id}/{file_id}.csv"
    get_blob_store().write_bytes(key, data)
    return sync.ResultFile(file_id=file_id, blob_key=key, content=data)


@celery_app.task(name="jobs.poll")
def poll(job_id: str) -> str | None:
    """Sync one job now: its state, new events, checkpoints and result file."""
    with session_scope() as session:
        provider_name, provider_job_id, _ = service.provider_job_id_of(session, job_id)
        tracked = sync.tracked(session, provider_name, job_id=job_id)
    if provider_job_id is None or not tracked:
        return None
    provider = _job_client_or_fail(job_id, provider_name)
    if provider is None:
        return None
    try:
        state = provider.get_job(provider_job_id)
    except ProviderError as exc:
        log.warning("poll of %s failed: %s", job_id, exc.message)
        return None  # the provider sweep reads it again
    sync_job(provider, tracked[0], state)
    return state.status


@celery_app.task(name="jobs.cancel_at_provider", bind=True, max_retries=MAX_SUBMIT_RETRIES)
def cancel_at_provider(self: Task, job_id: str) -> Any:
    """Cancel the provider job of a job the team cancelled."""
    with session_scope() as session:
        provider_name, provider_job_id, _ = service.provider_job_id_of(session, job_id)
    if provider_job_id is None:
        return None
    try:
        return _job_client(job_id, provider_name).cancel_job(provider_job_id).status
    except ProviderRetryable as exc:
        raise self.retry(exc=exc, countdown=backoff_seconds(self.request.retries, exc)) from exc
    except CredentialRevoked as exc:
        log.warning("could not cancel %s at %s: %s", job_id, provider_name, exc.message)
        return None
    except (ProviderRejected, ProviderUnavailable):
        return None  # already finished at the provider


@celery_app.task(name="jobs.control_at_provider", bind=True, max_retries=MAX_SUBMIT_RETRIES)
def control_at_provider(self: Task, job_id: str, action: str) -> str | None:
    """Pause or resume a job at its provider, then mirror what the provider answered."""
    with session_scope() as session:
        provider_name, provider_job_id, cursor = service.provider_job_id_of(session, job_id)
    if provider_job_id is None:
        return None
    provider = _job_client_or_fail(job_id, provider_name)
    if provider is None:
        return None
    try:
        call = provider.pause_job if action == "pause" else provider.resume_job
        state = call(provider_job_id)
        events = provider.events_after(provider_job_id, cursor)
    except ProviderRetryable as exc:
        raise self.retry(exc=exc, countdown=backoff_seconds(self.request.retries, exc)) from exc
    except (ProviderRejected, ProviderUnavailable) as exc:
        with session_scope() as session:
            job = repository.lock(session, job_id)
            if job is not None:
                lifecycle.add_event(
                    session, job, f"The provider refused to {action}: {exc.message}", level="warn"
                )
        return None
    with session_scope() as session:
        sync.apply_provider_state(session, job_id, state, events)
        job = repository.lock(session, job_id)
        if job is not None:
            done = "Paused" if action == "pause" else "Resumed"
            lifecycle.add_event(session, job, f"{done} at {provider_name} ({state.status})")
    relay_now()
    return state.status
